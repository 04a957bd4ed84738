"""A synthetic multi-session conversation benchmark for memory retrieval, generated from a seed.

``python bench/retrieval_data.py`` writes ``bench/data/retrieval.json``; ``--check`` exits 1 when
the committed file differs from what the seed generates. Pure stdlib: templates and vocabulary
lists (:mod:`retrieval_vocab`) drawn with ``random.Random(seed)``; no model, no network.

Design. Ten conversations, one user each talking to an assistant, 24-30 sessions 3-10 days apart
(naive ISO local times, treat as UTC), 18-24 alternating turns per session (user first). Every
turn is meant to be one memory record, each conversation its own scope. Most turns are chit-chat
on eight topics (work, family, food, travel, pets, hobbies, health, home); assistant replies
echo the topic of the user turn before them (and sometimes a relative's name) but never a fact.
Facts are planted in user turns, sometimes mid-sentence between chit-chat clauses. Within a
conversation every value (name, city, job, restaurant, ...) is drawn without replacement, so no
value names two facts, and every turn text is unique (a store that merges equal texts keeps all).

Question types (about 110 per conversation; ``evidence`` are turn ids, all user turns):

- ``single-hop``: one fact turn about a named relative or the user ("My cousin Theo works as a
  dentist." -> "What does my cousin Theo do for a living?").
- ``multi-hop``: two or three turns in different sessions linked by a person: "My aunt Vera lives
  in Porto." (s03), "Vera's son Leo just started school." (s17) -> "What is the name of the son of
  my aunt who lives in Porto?"; three hops go through the relative's partner.
- ``temporal``: eight kinds of events (hikes, restaurants, films, gigs, museums, dinners cooked,
  tennis partners, flea-market finds) recur about five times each with different details; the
  event turn says "today" or "yesterday" (the event's date is the session's date or the day
  before) and never a date. Half the questions name an absolute day or month ("on March 3,
  2024", "in March 2024"), half are relative to ``asked_at`` ("yesterday", "N days ago", "last
  weekend", "last Saturday", "last week", "two weeks ago", "last month"). Exactly one event of
  the kind lies in the window (weeks are Monday-Sunday; week windows are also unique with two
  days of margin); events after ``asked_at`` exist in the scope and must be ignored.
- ``update``: a value of the user or of a relative changes (home city, employer, job, car, phone,
  laptop, favourite food, gym days, coffee order, commute, running distance, bedtime); old and new
  turns use the same statement templates, so only recency separates them. ``stale``: the
  superseded turns (one or two).
- ``paraphrase``: the question shares at most one content word with its evidence turn (asserted):
  "I adopted a beagle puppy named Biscuit." -> "What did I call the young dog I took in?"
- ``unanswerable`` (evidence [], answer null): an attribute never stated for a relative who exists,
  a relation the conversation never mentions, a user fact no turn states (checked with a pattern),
  and temporal questions whose window holds no event of the kind.

``asked_at`` is a day after the last session, except for relative temporal questions, where it is
the time the expression is resolved against. ``temporal`` is "absolute", "relative" or null (set
on the unanswerable temporal questions too). Every guarantee above is asserted at generation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from random import Random
from typing import Any

import retrieval_vocab as V
from retrieval_vocab import DAY, RELATIVE, article, asked_day, content, month_of, window

OUT = Path(__file__).parent / "data" / "retrieval.json"
SEED = 7
N_CONV = 10
# per conversation: single-hop; two- and three-hop; absolute and relative temporal; updates of
# the user and of relatives; paraphrase; unanswerable: a relative's unstated attribute, an absent
# relation, a never-stated user fact, an empty time window
PLAN = {"single": 27, "hop2": 11, "hop3": 5, "abs": 11, "rel": 11, "upd_user": 10}
PLAN |= {"upd_person": 7, "para": 17, "no_attr": 3, "no_rel": 2, "no_fact": 3, "no_time": 3}


Row = dict[str, Any]  # a turn, session, conversation or question of the JSON file


@dataclass
class Fact:
    text: str
    session: int
    topic: str
    name: str = ""  # the relative an assistant reply may greet
    tid: str = ""


@dataclass
class Event:
    kind: str
    value: str
    day: date
    fact: Fact


@dataclass
class Question:
    type: str
    question: str
    answer: str | None
    evidence: list[Fact] = field(default_factory=list)
    stale: list[Fact] = field(default_factory=list)
    asked: datetime | None = None  # None: a day after the last session
    temporal: str | None = None
    kind: str = ""  # temporal: the event kind, the days asked about, the relative expression
    window: tuple[date, date] | None = None
    expr: str = ""


class Conv:
    """One conversation being planned: sessions, planted facts, people, events, questions."""

    def __init__(self, rng: Random, idx: int) -> None:
        self.rng, self.cid, self.user = rng, f"c{idx:02d}", V.USERS[idx]
        self.left = {k: rng.sample(v, len(v)) for k, v in sorted(V.POOLS.items())}
        neutral = sorted(set(V.RELS) - V.FEMALE_RELS - V.MALE_RELS)
        rels = rng.sample(neutral, 3)
        self.rels = rels + rng.sample([r for r in V.RELS if r not in rels], 8)
        start = datetime(2024, 1, 3) + rng.randrange(40) * DAY
        self.dates: list[datetime] = []
        for _ in range(rng.randint(24, 30)):
            self.dates.append(start + timedelta(minutes=rng.randrange(12 * 60, 22 * 60 + 31, 15)))
            start += rng.randint(3, 10) * DAY
        self.n_turns = [rng.choice((18, 20, 22, 24)) for _ in self.dates]
        self.cap = [n // 2 - 2 for n in self.n_turns]  # user turns still free for facts
        self.facts: list[list[Fact]] = [[] for _ in self.dates]
        self.people: dict[str, tuple[str, set[str], int]] = {}  # name: rel, attributes, session
        self.events: list[Event] = []
        self.questions: list[Question] = []

    def draw(self, pool: str) -> str:
        return self.left[pool].pop()

    def sessions(self, k: int, gap: int = 3) -> list[int]:
        """k sessions with room for a fact, at least ``gap`` apart, in order."""
        free = [s for s, n in enumerate(self.cap) if n > 0]
        for _ in range(500):
            pick = sorted(self.rng.sample(free, k))
            if all(b - a >= gap for a, b in itertools.pairwise(pick)):
                for s in pick:
                    self.cap[s] -= 1
                return pick
        raise AssertionError(f"{self.cid}: no room for {k} sessions")

    def plant(self, s: int, template: str, topic: str, person: str = "", **slots: str) -> Fact:
        """A user turn stating a fact, sometimes between two chit-chat clauses."""
        text = template.format(av=article(slots.get("v", "")), **slots)
        if self.rng.random() < 0.3:
            wrap = self.rng.choice(V.WRAPS)
            after_stop = wrap.split("{fact}")[0].rstrip().endswith(".")
            if not after_stop and not template.startswith(("{", "I ", "I'm")):
                text = text[0].lower() + text[1:]
            text = wrap.format(fact=text)
        fact = Fact(text, s, topic, person)
        self.facts[s].append(fact)
        return fact

    def person(self, s: int) -> tuple[str, str]:
        name = self.draw("names")
        other = V.MALE_RELS if name in V.FEMALE else V.FEMALE_RELS
        rel = self.rng.choice([r for r in self.rels if r not in other])
        self.people[name] = (rel, set(), s)
        return rel, name

    def person_fact(self, s: int, rel: str, name: str, attr: str) -> tuple[Fact, str]:
        pool, topic, templates, _, _ = V.PERSON_ATTRS[attr]
        v, pet = self.draw(pool), article(self.rng.choice(V.SPECIES))
        template = self.rng.choice(templates)
        fact = self.plant(s, template, topic, name, rel=rel, name=name, v=v, asp=pet)
        self.people[name][1].add(attr)
        return fact, v

    def ask(self, qtype: str, question: str, answer: str | None, *evidence: Fact) -> Question:
        q = Question(qtype, question, answer, list(evidence))
        self.questions.append(q)
        return q


def plan_single(c: Conv) -> None:
    for pool, topic, templates, question in c.rng.sample(V.USER_FACTS, 3):
        v = c.draw(pool)
        c.ask(
            "single-hop",
            question,
            v,
            c.plant(c.sessions(1)[0], c.rng.choice(templates), topic, v=v),
        )
    done = 3
    while done < PLAN["single"]:  # a quarter of the relatives get a second fact, later
        first, second = c.sessions(2)
        rel, name = c.person(first)
        two = c.rng.random() < 0.25 and done < PLAN["single"] - 1
        for s, attr in zip(
            (first, second), c.rng.sample(sorted(V.PERSON_ATTRS), 1 + two), strict=False
        ):
            fact, v = c.person_fact(s, rel, name, attr)
            c.ask("single-hop", V.PERSON_ATTRS[attr][3].format(rel=rel, name=name), v, fact)
            done += 1
        c.cap[second] += not two


def plan_multi(c: Conv) -> None:
    for i in range(PLAN["hop2"] + PLAN["hop3"]):
        three = i >= PLAN["hop2"]
        ss = c.sessions(3 if three else 2)
        rel, name = c.person(ss[0])
        attr = c.rng.choice(["job", "city", "hobby", "instrument"])
        link, lv = c.person_fact(ss[0], rel, name, attr)
        who = V.PERSON_ATTRS[attr][4].format(v=lv, av=article(lv))
        if three:  # through the relative's partner
            partner = c.draw("names")
            c.people[name][1].add("partner")
            f2 = c.plant(ss[1], c.rng.choice(V.PARTNER), "family", name, name=name, v=partner)
            pool, topic, templates, question = V.PARTNER_HOPS[c.rng.choice(sorted(V.PARTNER_HOPS))]
            v = c.draw(pool)
            f3 = c.plant(ss[2], c.rng.choice(templates), topic, partner, name=partner, v=v)
            c.ask("multi-hop", question.format(rel=rel, who=who), v, link, f2, f3)
            continue
        hop = c.rng.choice(sorted(V.HOPS))
        pool, topic, templates, question = V.HOPS[hop]
        v, sp = c.draw(pool), c.rng.choice(V.SPECIES)
        kid = "daughter" if v in V.FEMALE else "son"
        c.people[name][1].add({"move": "city"}.get(hop, hop))
        slots = {"name": name, "v": v, "sp": sp, "asp": article(sp), "kid": kid}
        f2 = c.plant(ss[1], c.rng.choice(templates), topic, name, act=c.draw("activities"), **slots)
        c.ask("multi-hop", question.format(rel=rel, who=who, kid=kid), v, link, f2)


def plan_updates(c: Conv) -> None:
    """Values that change; old and new turns share their templates. Some change twice."""
    for key in c.rng.sample(sorted(V.UPDATES), PLAN["upd_user"]):
        pool, topic, templates, question = V.UPDATES[key]
        ss = c.sessions(3 if c.rng.random() < 0.3 else 2)
        values = [c.draw(pool) for _ in ss]
        facts = [
            c.plant(s, c.rng.choice(templates), topic, v=v) for s, v in zip(ss, values, strict=True)
        ]
        c.ask("update", question, values[-1], facts[-1]).stale = facts[:-1]
    for _ in range(PLAN["upd_person"]):
        ss = c.sessions(3 if c.rng.random() < 0.3 else 2)
        rel, name = c.person(ss[0])
        attr = c.rng.choice(sorted(V.PERSON_UPDATE_Q))
        said = [c.person_fact(s, rel, name, attr) for s in ss]
        question = V.PERSON_UPDATE_Q[attr].format(rel=rel, name=name)
        c.ask("update", question, said[-1][1], said[-1][0]).stale = [f for f, _ in said[:-1]]


def plan_events(c: Conv) -> None:
    """Each kind of event five times, on the session's day ("today") or the day before."""
    for kind in sorted(V.EVENTS):
        pool, topic, today, yesterday, _ = V.EVENTS[kind]
        for s in c.sessions(5):
            v, day, before = c.draw(pool), c.dates[s].date(), c.rng.random() < 0.35
            fact = c.plant(s, c.rng.choice(yesterday if before else today), topic, v=v)
            c.events.append(Event(kind, v, day - DAY * before, fact))


def in_window(c: Conv, kind: str, win: tuple[date, date], pad: int = 0) -> list[Event]:
    lo, hi = win[0] - pad * DAY, win[1] + pad * DAY
    return [e for e in c.events if e.kind == kind and lo <= e.day <= hi]


def at_time(rng: Random, d: date) -> datetime:
    return datetime.combine(d, time()) + timedelta(minutes=rng.randrange(9 * 60, 22 * 60, 5))


def temporal_q(c: Conv, e: Event | None, kind: str, when: str, win: tuple[date, date]) -> Question:
    q = c.ask("temporal" if e else "unanswerable", V.EVENTS[kind][4].format(when=when), None)
    if e is not None:
        q.answer, q.evidence = e.value, [e.fact]
    q.temporal, q.kind, q.window = "absolute", kind, win
    return q


def plan_temporal(c: Conv) -> None:
    """Absolute questions name a day or a month; relative ones rotate through RELATIVE. The window
    holds exactly one event of the kind (week-like windows even with two days of margin)."""
    events = c.rng.sample(c.events, len(c.events))
    for e in events[: PLAN["abs"]]:
        month = month_of(e.day)
        if c.rng.random() < 0.5 and len(in_window(c, e.kind, month)) == 1:
            temporal_q(c, e, e.kind, f"in {e.day:%B} {e.day.year}", month)
        else:
            temporal_q(c, e, e.kind, f"on {e.day:%B} {e.day.day}, {e.day.year}", (e.day, e.day))
    events, made = events[PLAN["abs"] :], 0
    for i in range(200):
        if made == PLAN["rel"]:
            break
        for e in events:
            got = asked_day(c.rng, RELATIVE[i % len(RELATIVE)], e.day)
            win = got and window(*got)
            if not got or not win or in_window(c, e.kind, win, 2 * ("week" in got[0])) != [e]:
                continue
            asked = at_time(c.rng, got[1])
            if asked > c.dates[e.fact.session] + timedelta(hours=2):
                q = temporal_q(c, e, e.kind, got[0], win)
                q.asked, q.expr, q.temporal = asked, got[0], "relative"
                events.remove(e)
                made += 1
                break
    assert made == PLAN["rel"], f"{c.cid}: only {made} relative questions"


def plan_paraphrase(c: Conv) -> None:
    for pool, topic, templates, question in c.rng.sample(V.PARAPHRASES, PLAN["para"]):
        v, template = c.draw(pool), c.rng.choice(templates)
        fact = c.plant(c.sessions(1)[0], template, topic, v=v)
        if len(content(question) & content(fact.text)) > 1:
            fact.text = template.format(v=v)  # the wrapper brought shared words
        c.ask("paraphrase", question, v, fact)


def chat(c: Conv, s: int, seen: set[str], greet: bool) -> tuple[str, str]:
    """A chit-chat user turn not said before in the conversation, and its topic."""
    known = sorted(n for n, (_, _, first) in c.people.items() if first <= s)
    for _ in range(1000):
        if known and c.rng.random() < 0.12:  # a relative already introduced, no fact
            name, topic = c.rng.choice(known), "family"
            body = c.rng.choice(V.PERSON_FILLER).format(rel=c.people[name][0], name=name)
        else:
            topic = c.rng.choice(V.TOPICS)
            day = f"{date(2024, 1, c.rng.randint(1, 7)):%A}"
            body = c.rng.choice(V.FILLER[topic]).format(rel=c.rng.choice(c.rels), day=day)
        opener = c.rng.choice(V.GREETINGS if greet else V.OPENERS)
        if not opener or opener.endswith((".", "!")):
            body = body[0].upper() + body[1:]
        text = f"{opener} {body} {c.rng.choice(V.CLOSERS)}".strip()
        if text not in seen and f"{s}:{body}" not in seen:  # no body twice in a session
            seen |= {text, f"{s}:{body}"}
            return text, topic
    raise AssertionError("chit-chat exhausted")


def reply(c: Conv, topic: str, name: str, seen: set[str]) -> str:
    """An assistant turn echoing the topic (or greeting the relative), never a fact."""
    for _ in range(1000):
        if name and c.rng.random() < 0.3:
            text = c.rng.choice(V.PERSON_REPLIES).format(name=name)
        else:
            text = c.rng.choice(V.REPLIES[topic])
        text = f"{text} {c.rng.choice(V.REPLY_TAILS)}"
        if text not in seen:
            seen.add(text)
            return text
    raise AssertionError("replies exhausted")


def layout(c: Conv) -> list[Row]:
    """Sessions of alternating turns: a greeting, then facts at random user turns, chit-chat
    in the others, an assistant reply after each."""
    seen: set[str] = set()
    sessions: list[Row] = []
    for s, when in enumerate(c.dates):
        n_user, sid = c.n_turns[s] // 2, f"{c.cid}-s{s + 1:02d}"
        slots = c.rng.sample(range(1, n_user), len(c.facts[s]))
        at = dict(zip(slots, c.facts[s], strict=True))
        turns: list[Row] = []
        for u in range(n_user):
            fact = at.get(u)
            if fact is None:
                (text, topic), name = chat(c, s, seen, u == 0), ""
            else:
                assert fact.text not in seen, fact.text
                seen.add(fact.text)
                text, topic, name = fact.text, fact.topic, fact.name
                fact.tid = f"{sid}-t{len(turns) + 1:02d}"
            for speaker, said in (("user", text), ("assistant", reply(c, topic, name, seen))):
                turns.append(
                    {"id": f"{sid}-t{len(turns) + 1:02d}", "speaker": speaker, "text": said}
                )
        sessions.append({"id": sid, "date": when.isoformat(), "turns": turns})
    return sessions


def plan_unanswerable(c: Conv, texts: str) -> None:
    for name in c.rng.sample(sorted(c.people), PLAN["no_attr"]):
        rel, attrs, _ = c.people[name]
        work = {"job", "employer"}  # either one answers "what does X do"
        attr = c.rng.choice(sorted(set(V.PERSON_ATTRS) - attrs - (work if attrs & work else set())))
        c.ask("unanswerable", V.PERSON_ATTRS[attr][3].format(rel=rel, name=name), None)
    absent = [r for r in V.RELS if not re.search(rf"\b{re.escape(r)}\b", texts, re.I)]
    for rel in c.rng.sample(absent, PLAN["no_rel"]):
        c.ask("unanswerable", c.rng.choice(V.NO_SUCH_REL).format(rel=rel), None)
    never = [q for q, pattern in V.NEVER_STATED if not re.search(pattern, texts, re.I)]
    for question in c.rng.sample(never, PLAN["no_fact"]):
        c.ask("unanswerable", question, None)
    made, win = 0, None
    while made < PLAN["no_time"]:  # a window without an event of the kind, two days' margin
        kind, d = c.rng.choice(sorted(V.EVENTS)), c.rng.choice(c.dates[3:]).date()
        if made == 0:  # a day with a session
            when, win, asked = f"on {d:%B} {d.day}, {d.year}", (d, d), None
        else:
            d += c.rng.randrange(8) * DAY
            when = c.rng.choice(RELATIVE).replace("days", f"{c.rng.randint(2, 6)} days")
            win, asked = window(when, d), at_time(c.rng, d)
        if win is None or in_window(c, kind, win, 2):
            continue
        q = temporal_q(c, None, kind, when, win)
        q.asked, q.expr, q.temporal = asked, when, "absolute" if asked is None else "relative"
        made += 1


def conversation(rng: Random, idx: int) -> tuple[Conv, Row]:
    c = Conv(rng, idx)
    for plan in (plan_events, plan_multi, plan_updates, plan_single, plan_paraphrase):
        plan(c)
    plan_temporal(c)
    sessions = layout(c)
    plan_unanswerable(c, "\n".join(t["text"] for s in sessions for t in s["turns"]))
    c.rng.shuffle(c.questions)
    return c, {"id": c.cid, "user": c.user, "sessions": sessions}


def question_row(c: Conv, q: Question, n: int) -> Row:
    end = datetime.combine(c.dates[-1].date() + DAY, time(10))
    asked = q.asked or end + timedelta(minutes=c.rng.randrange(0, 600, 5))
    return {
        "id": f"q{n:04d}", "conversation": c.cid, "type": q.type, "question": q.question,
        "asked_at": asked.isoformat(), "evidence": [f.tid for f in q.evidence],
        "stale": [f.tid for f in q.stale], "answer": q.answer, "temporal": q.temporal,
    }  # fmt: skip


def check(c: Conv, conv: Row, rows: list[Row]) -> None:
    """The guarantees of the module's docstring, for one conversation."""
    sessions = conv["sessions"]
    assert 24 <= len(sessions) <= 30 and all(18 <= len(s["turns"]) <= 24 for s in sessions)
    turns = {t["id"]: (t, datetime.fromisoformat(s["date"])) for s in sessions for t in s["turns"]}
    texts = [t["text"] for t, _ in turns.values()]
    assert len(set(texts)) == len(texts), "a turn text repeats"
    for q, row in zip(c.questions, rows, strict=True):
        ids, asked = row["evidence"] + row["stale"], datetime.fromisoformat(row["asked_at"])
        assert all(turns[i][0]["speaker"] == "user" and turns[i][1] < asked for i in ids), row
        assert (q.answer is None) == (q.type == "unanswerable") == (not q.evidence), row
        if q.answer is not None:
            assert q.answer in q.evidence[-1].text, row
            assert not any(re.search(rf"\b{re.escape(q.answer)}\b", f.text) for f in q.stale)
        if q.type == "paraphrase":
            assert len(content(q.question) & content(q.evidence[0].text)) <= 1, row
        if q.window is not None:
            if q.temporal == "relative":
                assert q.expr in q.question and window(q.expr, asked.date()) == q.window, row
            pad = 2 if q.type == "unanswerable" or "week" in q.expr else 0
            found = [e.fact for e in in_window(c, q.kind, q.window, pad)]
            assert found == q.evidence == [e.fact for e in in_window(c, q.kind, q.window)], row


def build(seed: int) -> tuple[list[Row], list[Row]]:
    rng, convs, rows = Random(seed), list[Row](), list[Row]()
    for idx in range(N_CONV):
        c, conv = conversation(rng, idx)
        mine = [question_row(c, q, len(rows) + i + 1) for i, q in enumerate(c.questions)]
        check(c, conv, mine)
        convs.append(conv)
        rows += mine
    ids = [t["id"] for c in convs for s in c["sessions"] for t in s["turns"]]
    ids += [c["id"] for c in convs] + [q["id"] for q in rows]
    assert len(ids) == len(set(ids)), "an id repeats"
    assert len(ids) - len(convs) - len(rows) >= 5000 and len(rows) >= 1000
    return convs, rows


def dump(seed: int, convs: list[Row], rows: list[Row]) -> str:
    """Compact JSON, one conversation or question a line."""
    one = json.JSONEncoder(separators=(",", ":")).encode
    convs_text, rows_text = ",\n".join(map(one, convs)), ",\n".join(map(one, rows))
    head = f'{{"version":1,"seed":{seed},\n'
    return f'{head}"conversations":[\n{convs_text}\n],\n"questions":[\n{rows_text}\n]}}\n'


def summary(convs: list[Row], rows: list[Row]) -> str:
    sessions = [s for c in convs for s in c["sessions"]]
    n_turns = sum(len(s["turns"]) for s in sessions)
    kinds: dict[str, int] = {}
    for q in rows:
        key = q["type"] + (f" ({q['temporal']})" if q["temporal"] else "")
        kinds[key] = kinds.get(key, 0) + 1
    lines = [f"{len(convs)} conversations, {len(sessions)} sessions, {n_turns} turns"]
    lines += [f"  {k:26} {v:5}  {v / len(rows):4.0%}" for k, v in sorted(kinds.items())]
    return "\n".join([*lines, f"  {'questions':26} {len(rows):5}"])


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="exit 1 if --out differs")
    args = ap.parse_args()
    convs, rows = build(args.seed)
    text = dump(args.seed, convs, rows)
    if args.check:
        same = args.out.exists() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if same else 'differs from what the seed generates'}")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(text.encode()) / 1e6:.2f} MB)\n{summary(convs, rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

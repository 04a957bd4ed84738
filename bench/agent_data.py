"""Synthetic multi-session conversations for bench/agent_memory.py, generated from a seed
(nothing downloaded).

Each persona has eight possible attributes (city, job, pet, ...) and states five of them, spread
over the sessions but the last, as self-contained user turns ("I live in Lisbon."). About half of
the stated facts change in a later session ("Actually I moved to Oslo last month."). Chit-chat
turns from :mod:`research_data` fill every session; they mention none of the attribute values.

Questions, per persona:

- ``single``: a stated fact that never changed (evidence: the turn that stated it);
- ``update``: a fact that changed (evidence: the update turn; the old value is the stale one);
- ``two``: two stated facts in one question (evidence: both current turns);
- ``none``: an attribute this persona never mentioned (the same question other personas can
  answer); the correct answer is an abstention.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from research_data import CHITCHAT, _fill

# name: (statement, update, question, clause for two-fact questions, values); a value's answer key
# is its last word unless KEY_OF says otherwise
ATTRIBUTES: dict[str, tuple[str, str, str, str, list[str]]] = {
    "city": (
        "I live in {v}.",
        "Actually I moved to {v} last month.",
        "Remind me, which city is my home now?",
        "which city I live in now",
        ["Lisbon", "Oslo", "Denver", "Kyoto", "Nairobi", "Hamburg", "Quito"],
    ),
    "job": (
        "I work as a {v}.",
        "I changed careers; I am a {v} now.",
        "What is my current profession?",
        "what my job is",
        ["nurse", "carpenter", "pilot", "teacher", "chemist", "baker"],
    ),
    "pet": (
        "I have {v} at home.",
        "Sadly that changed; now I only have {v}.",
        "What animals live with me?",
        "which pet I have",
        ["a beagle", "two cats", "a parrot", "a tortoise", "a rabbit", "a hamster"],
    ),
    "sport": (
        "I stay fit with {v}, three times a week.",
        "I gave up my old sport and took up {v} instead.",
        "Which sport am I doing at the moment?",
        "which sport I do",
        ["swimming", "rowing", "climbing", "tennis", "judo", "fencing"],
    ),
    "vehicle": (
        "I drive {v} to get around.",
        "I sold it; now I get around with {v}.",
        "How do I get around these days?",
        "how I get around",
        ["a red hatchback", "an old van", "a blue sedan", "an electric scooter", "a pickup truck"],
    ),
    "instrument": (
        "I play the {v} in a small band.",
        "I switched instruments; I play the {v} now.",
        "Which instrument do I play?",
        "which instrument I play",
        ["cello", "trumpet", "banjo", "harp", "flute", "accordion"],
    ),
    "language": (
        "I am learning {v} in the evenings.",
        "I dropped that course; now I am learning {v}.",
        "Which language am I studying?",
        "which language I am learning",
        ["Japanese", "Greek", "Swahili", "Polish", "Korean", "Turkish"],
    ),
    "diet": (
        "I eat a {v} diet.",
        "My doctor changed my diet; it is {v} now.",
        "What kind of diet am I on?",
        "what diet I follow",
        ["vegan", "vegetarian", "gluten-free", "low-salt", "pescatarian"],
    ),
}
KEY_OF = {"two cats": "cat", "a pickup truck": "pickup"}


def key_of(value: str) -> str:
    """The word an answer must contain to name ``value``."""
    return KEY_OF.get(value, value.split()[-1])


KEYS = sorted({key_of(v).lower() for *_, values in ATTRIBUTES.values() for v in values})


def mentions(text: str, key: str) -> bool:
    """Whether ``text`` names ``key`` as a word (case-insensitive; a plural -s/-es counts)."""
    return re.search(rf"\b{re.escape(key)}(?:s|es)?\b", text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Turn:
    index: int  # position in the persona's history
    session: int
    text: str
    attribute: str | None = None  # None for chit-chat
    kind: str = "chitchat"  # chitchat, fact, update


@dataclass
class Question:
    user: str
    kind: str  # single, update, two, none
    text: str
    expected: list[str]  # answer keys that must all appear (empty for "none")
    evidence: list[int]  # turn indexes in the persona's history
    stale: str | None = None  # the superseded value's key ("update" questions)
    stale_evidence: int | None = None
    attributes: list[str] = field(default_factory=list)


@dataclass
class Persona:
    user: str
    turns: list[Turn]
    sessions: int


def personas(
    n: int,
    *,
    sessions: int = 3,
    facts: int = 5,
    chitchat: int = 3,
    update_rate: float = 0.5,
    two_fact: int = 2,
    no_answer: int = 2,
    seed: int = 0,
) -> tuple[list[Persona], list[Question]]:
    """``n`` personas with their turns (in order) and the questions about them."""
    if sessions < 2 or not 1 <= facts <= len(ATTRIBUTES) - no_answer or chitchat > len(CHITCHAT):
        raise ValueError(
            f"need sessions >= 2, facts + no_answer <= {len(ATTRIBUTES)}, chitchat <= "
            f"{len(CHITCHAT)}"
        )
    rng = random.Random(seed)
    out: list[Persona] = []
    questions: list[Question] = []
    for p in range(n):
        user = f"user{p:03d}"
        names = list(ATTRIBUTES)
        rng.shuffle(names)
        stated, unstated = names[:facts], names[facts:]
        by_session: list[list[tuple[str, str | None, str]]] = [[] for _ in range(sessions)]
        current: dict[str, tuple[str, str]] = {}  # attribute -> (key, kind of its last turn)
        old: dict[str, str] = {}
        for attr in stated:
            state, update, *_, values = ATTRIBUTES[attr]
            v1, v2 = rng.sample(values, 2)
            k1, k2 = key_of(v1), key_of(v2)
            first = rng.randrange(sessions - 1)
            by_session[first].append((state.format(v=v1), attr, "fact"))
            current[attr] = (k1, "fact")
            if rng.random() < update_rate:
                later = rng.randrange(first + 1, sessions)
                by_session[later].append((update.format(v=v2), attr, "update"))
                current[attr], old[attr] = (k2, "update"), k1
        seen: set[str] = set()
        for s in range(sessions):
            templates = rng.sample([reply for _, reply in CHITCHAT], chitchat)
            for template in templates:
                text = _fill(template, rng)
                while text in seen or any(mentions(text, key) for key in KEYS):
                    text = _fill(template, rng)
                seen.add(text)
                by_session[s].append((text, None, "chitchat"))
            rng.shuffle(by_session[s])
        turns = [
            Turn(i, s, text, attr, kind)
            for i, (s, (text, attr, kind)) in enumerate(
                (s, t) for s, items in enumerate(by_session) for t in items
            )
        ]
        out.append(Persona(user, turns, sessions))
        last = {t.attribute: t.index for t in turns if t.attribute}  # the current value's turn
        first_turn = {}
        for t in turns:
            if t.attribute and t.attribute not in first_turn:
                first_turn[t.attribute] = t.index
        for attr in stated:
            key, kind = current[attr]
            questions.append(
                Question(
                    user, "update" if kind == "update" else "single", ATTRIBUTES[attr][2], [key],
                    [last[attr]], old.get(attr), first_turn[attr] if kind == "update" else None,
                    [attr],
                )
            )  # fmt: skip
        pairs = [(a, b) for i, a in enumerate(stated) for b in stated[i + 1 :]]
        for a, b in rng.sample(pairs, min(two_fact, len(pairs))):
            text = f"Remind me of two things: {ATTRIBUTES[a][3]}, and {ATTRIBUTES[b][3]}."
            questions.append(
                Question(
                    user, "two", text, [current[a][0], current[b][0]], [last[a], last[b]],
                    attributes=[a, b],
                )
            )  # fmt: skip
        for attr in rng.sample(unstated, min(no_answer, len(unstated))):
            questions.append(Question(user, "none", ATTRIBUTES[attr][2], [], [], attributes=[attr]))
    return out, questions

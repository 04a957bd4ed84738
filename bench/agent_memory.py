"""The memory agent (memora.agents.MemoryAgent) on synthetic multi-session conversations.

Every persona's sessions go through a MemoryAgent with fact extraction on (one store file, one
user_id per persona, one agent and session_id per session). Then every question is asked
three ways with the same model and the same greedy sampling:

(a) the memory agent: its hybrid retrieval (k = 5) and its prompt (``agent.recall`` +
    ``agent.prompt``), then ``llm.generate``;
(b) the whole history in context (every user turn and the agent's short reply, in order, as
    chat messages, then the question): the baseline;
(c) no memory at all (the question alone): the floor.

A diagnostic beside (a), on the same retrieved memories: ``agent_notes``, the memories read as
bare notes under a one-line system text (the reader prompt of bench/research_memories.py).
Questions are asked in a session of their own, so the agent's recent turns (this session's)
are empty: earlier sessions reach the prompt only through retrieval.

Measured in the same run: recall@1/@3/@5 of the evidence turns for hybrid, dense and lexical
retrieval and for raw messages only vs extracted facts only; answer accuracy, stale answers on
updated facts, abstentions on questions with no answer; prompt tokens; p50/p95 latency.

    python bench/agent_memory.py [--personas 5] [--sessions 3] [--chitchat 2] [--threads 1]

Data: bench/agent_data.py (seeded). Ctrl-C stops and still writes what finished ("partial").
Writes bench/results/agent_memory.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agent_data import Persona, Question, mentions, personas  # noqa: E402
from memora.agents import DEFAULT_SYSTEM, ExtractionError, MemoryAgent  # noqa: E402

from memora.embed import load_embedder  # noqa: E402
from memora.memory.store import MemoryStore  # noqa: E402

RESULTS = HERE / "results" / "agent_memory.json"
KS = (1, 3, 5)
# Baselines (b) and (c): the agent's system text without its memory sections, same instruction
# to abstain, so the three prompts differ only in what they hold of the history.
BASE_SYSTEM = (
    "You are a helpful assistant. Use the conversation so far when it answers the question. "
    "If it does not contain the answer, say you do not know. Answer briefly."
)
# An answer abstains when it matches one of these (case-insensitive, curly apostrophes made
# straight). Written for the phrasings the instruction asks for and their usual variants.
NOTES_SYSTEM = (
    "Answer the question from the notes. If the notes do not contain the answer, say you do "
    "not know. Be brief."
)
METHODS = ("agent", "agent_notes", "full_history", "no_memory")
ABSTAIN_PATTERNS = [
    r"\bdo\s*n[o']?t\s+know\b",  # don't know, do not know, dont know
    r"\bnot\s+sure\b",
    r"\bno\s+(?:information|info|idea|record|records|memory|memories|mention|details?)\b",
    r"\bdo\s*n[o']?t\s+have\s+(?:any\s+)?(?:information|info|details?|records?|memor(?:y|ies))",
    r"\b(?:cannot|can\s*not|can't|unable\s+to)\s+(?:tell|say|answer|determine|recall|remember"
    r"|find|know)\b",
    r"\b(?:not|never)\s+(?:been\s+)?(?:mentioned|told|stated|shared|specified|provided)\b",
    r"\b(?:did\s*n[o']?t|haven't|have\s+not)\s+(?:told|tell|mention|mentioned|say|said|share"
    r"|shared)\b",
    r"\bdo\s*n[o']?t\s+(?:remember|recall|have\s+(?:the\s+ability\s+to\s+(?:remember|recall|know)"
    r"|access\s+to))",
    r"\bunknown\b",
]
ABSTAIN = re.compile("|".join(ABSTAIN_PATTERNS), re.IGNORECASE)


def abstains(text: str) -> bool:
    return ABSTAIN.search(text.replace("\u2019", "'").replace("\u2018", "'")) is not None


ABSTAIN_EXAMPLES = {  # checked at start-up
    "I don't know.": True,
    "I do not know where you live.": True,
    "I\u2019m not sure which sport you do.": True,
    "There is no information about your diet.": True,
    "You haven't told me that.": True,
    "I don't have access to your personal details.": True,
    "I cannot tell from our conversation.": True,
    "You live in Oslo.": False,
    "I know you play the harp.": False,
    "A diet is a plan for eating well.": False,
    "Surely you are a pilot now.": False,
}


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


# -- ingestion ---------------------------------------------------------------------------------


def ingest(
    llm: Any, store: MemoryStore, people: list[Persona], args: argparse.Namespace,
    turn_ids: dict[tuple[str, int], int], log: list[dict[str, Any]],
) -> None:  # fmt: skip
    """Every persona's sessions through a MemoryAgent with extraction on; each turn's
    extraction is waited for before the next turn (so the next reply sees its facts)."""
    total = sum(len(p.turns) for p in people)
    started = time.perf_counter()
    for person in people:
        for session in range(person.sessions):
            agent = MemoryAgent(
                llm, store, user_id=person.user, session_id=f"{person.user}-s{session}",
                max_tokens=args.ingest_tokens,
            )  # fmt: skip
            try:
                for turn in (t for t in person.turns if t.session == session):
                    t0 = time.perf_counter()
                    reply = agent.chat(turn.text)
                    t1 = time.perf_counter()
                    row: dict[str, Any] = {
                        "user": person.user, "index": turn.index, "session": session,
                        "kind": turn.kind, "attribute": turn.attribute, "text": turn.text,
                        "turn_id": reply.turn_id, "reply": reply.text,
                        "reply_s": round(t1 - t0, 3),
                    }  # fmt: skip
                    turn_ids[(person.user, turn.index)] = reply.turn_id
                    try:
                        assert reply.extraction is not None
                        done = reply.extraction.result()
                        row.update(status="done", attempts=done.attempts, actions=[
                            {"kind": a.kind, "text": a.text, "old_text": a.old_text}
                            for a in done.actions])  # fmt: skip
                    except ExtractionError as exc:
                        row.update(status="failed", error=str(exc), actions=[])
                    row["extract_s"] = round(time.perf_counter() - t1, 3)
                    log.append(row)
                    elapsed = time.perf_counter() - started
                    kinds = ",".join(a["kind"] for a in row["actions"]) or row["status"]
                    print(
                        f"[ingest {len(log)}/{total}] {person.user} s{session} {turn.kind:8s} "
                        f"reply {row['reply_s']:.1f}s extract {row['extract_s']:.1f}s "
                        f"({kinds}) eta {elapsed / len(log) * (total - len(log)):.0f}s",
                        flush=True,
                    )
                with contextlib.suppress(ExtractionError):
                    agent.wait()  # already finished; raises a failed turn's error again
            finally:
                agent.close()  # after a running extraction (at most one: each turn waits)


def extraction_summary(
    log: list[dict[str, Any]], people: list[Persona], store: MemoryStore, llm: Any
) -> dict[str, Any]:
    actions = Counter(a["kind"] for row in log for a in row["actions"])
    extract_s = [row["extract_s"] for row in log]
    by_kind: dict[str, Any] = {}
    for kind in ("fact", "update", "chitchat"):
        rows = [r for r in log if r["kind"] == kind]
        if not rows:
            continue
        entry: dict[str, Any] = {
            "turns": len(rows),
            "failed": sum(r["status"] == "failed" for r in rows),
            "actions": dict(Counter(a["kind"] for r in rows for a in r["actions"])),
            "turns_with_a_stored_fact": sum(
                any(a["kind"] in ("add", "update") for a in r["actions"]) for r in rows
            ),
        }
        if kind != "chitchat":  # did a stored fact keep the value?
            entry["turns_whose_value_was_stored_as_a_fact"] = sum(
                any(a["kind"] in ("add", "update") and mentions(a["text"], r["value"])
                    for a in r["actions"]) for r in rows
            )  # fmt: skip
        if kind == "update":  # did it replace the fact holding the old value?
            entry["turns_that_replaced_the_old_value"] = sum(
                any(a["kind"] == "update" and mentions(a["old_text"] or "", r["old_value"])
                    for a in r["actions"]) for r in rows
            )  # fmt: skip
        by_kind[kind] = entry
    failures = [r for r in log if r["status"] == "failed"]
    journal: Counter[str] = Counter()
    facts = 0
    for person in people:
        agent = MemoryAgent(llm, store, user_id=person.user, extract=False, store_messages=False)
        journal.update(t.status for t in agent.history())
        facts += sum(r.metadata.get("kind") == "fact" for r in store.list(agent.memory_scope))
        agent.close()
    return {
        "turns": len(log),
        "done": sum(r["status"] == "done" for r in log),
        "failed": len(failures),
        "journal_status": dict(journal),
        "actions": dict(actions),
        "attempts": dict(Counter(r.get("attempts", 0) for r in log)),
        "facts_stored": facts,
        "by_turn_kind": by_kind,
        "seconds_per_extraction": {
            "mean": mean(extract_s),
            "p50": round(pct(extract_s, 0.5), 3) if extract_s else None,
            "p95": round(pct(extract_s, 0.95), 3) if extract_s else None,
        },
        "seconds_per_reply_p50": round(pct([r["reply_s"] for r in log], 0.5), 3) if log else None,
        "failure_messages": [r["error"] for r in failures][:10],
    }


# -- questions ---------------------------------------------------------------------------------


def ranks(hits: list[Any], turn_ids: list[int]) -> list[int | None]:
    """1-based rank of the first hit from each turn (None: not in the hits)."""
    out: list[int | None] = []
    for tid in turn_ids:
        found = [i for i, h in enumerate(hits, 1) if h.record.metadata.get("turn_id") == tid]
        out.append(found[0] if found else None)
    return out


def generate(llm: Any, messages: list[dict[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    done = llm.generate(
        messages, max_tokens=args.answer_tokens, temperature=0.0, seed=0,
        repeat_penalty=args.repeat_penalty,
    )  # fmt: skip
    return {
        "text": done.text.strip(),
        "generate_s": time.perf_counter() - t0,
        "prompt_tokens": done.usage.prompt_tokens,
        "evaluated_tokens": done.usage.evaluated_prompt_tokens,
        "completion_tokens": done.usage.completion_tokens,
    }


def score(answer: str, q: Question) -> dict[str, Any]:
    found = [mentions(answer, key) for key in q.expected]
    out: dict[str, Any] = {"abstained": abstains(answer)}
    if q.kind == "none":
        out["correct"] = out["abstained"]
    else:
        out["correct"] = all(found)
        out["keys_found"] = round(sum(found) / len(found), 3)
    if q.stale is not None:
        out["stale"] = mentions(answer, q.stale) and not all(found)
    return out


def ask(
    llm: Any, store: MemoryStore, q: Question, turn_ids: dict[tuple[str, int], int],
    args: argparse.Namespace,
) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:  # fmt: skip
    evidence = [turn_ids[(q.user, i)] for i in q.evidence]
    stale_turn = None if q.stale_evidence is None else turn_ids[(q.user, q.stale_evidence)]
    row: dict[str, Any] = {
        "user": q.user, "kind": q.kind, "question": q.text, "expected": q.expected,
        "stale_value": q.stale, "evidence_turns": evidence, "stale_turn": stale_turn,
        "retrieval": {}, "answers": {},
    }  # fmt: skip
    agents = {
        mode: MemoryAgent(
            llm, store, user_id=q.user, session_id=f"{q.user}-questions", k=args.k, mode=mode,
            extract=False, store_messages=False, max_tokens=args.answer_tokens, temperature=0.0,
        )
        for mode in ("hybrid", "dense", "lexical")
    }  # fmt: skip
    try:
        agent = agents["hybrid"]
        t0 = time.perf_counter()
        hits = agent.recall(q.text, args.k)
        retrieval_s = time.perf_counter() - t0
        lists = {
            "hybrid": hits,
            "dense": agents["dense"].recall(q.text, args.k),
            "lexical": agents["lexical"].recall(q.text, args.k),
            "messages_only": store.search(
                q.text, agent.memory_scope, k=args.k, filters={"kind": "message"}
            ),
            "facts_only": store.search(
                q.text, agent.memory_scope, k=args.k, filters={"kind": "fact"}
            ),
        }
        for name, found in lists.items():
            row["retrieval"][name] = {
                "ranks": ranks(found, evidence),
                "stale_rank": ranks(found, [stale_turn])[0] if stale_turn is not None else None,
            }
        row["hybrid_hits"] = [
            {"text": h.record.text, "kind": h.record.metadata.get("kind"),
             "turn_id": h.record.metadata.get("turn_id")} for h in hits
        ]  # fmt: skip
        # (a) the memory agent's prompt: its memories and its recent turns
        t1 = time.perf_counter()
        agent_messages = agent.prompt(q.text, hits)
        prompt_s = time.perf_counter() - t1
        recent = {
            t.id for t in agent.journal.turns(agent.scope, session=True, last=agent.recent_turns)
        }
        row["evidence_in_recent_turns"] = [tid in recent for tid in evidence]
        t2 = time.perf_counter()  # (b): the whole journal, in order, as chat messages
        full_messages = [{"role": "system", "content": BASE_SYSTEM}]
        history = agent.history()
        row["history_turns"] = len(history)
        for turn in history:
            full_messages.append({"role": "user", "content": turn.user_text})
            full_messages.append({"role": "assistant", "content": turn.reply_text})
        full_messages.append({"role": "user", "content": q.text})
        full_build_s = time.perf_counter() - t2
    finally:
        for a in agents.values():
            a.close()
    none_messages = [
        {"role": "system", "content": BASE_SYSTEM},
        {"role": "user", "content": q.text},
    ]
    notes = "\n".join(f"- {h.record.text}" for h in hits)
    notes_messages = [
        {"role": "system", "content": NOTES_SYSTEM},
        {"role": "user", "content": f"Notes:\n{notes}\n\nQuestion: {q.text}"},
    ]
    prompts = {
        "agent": agent_messages,
        "agent_notes": notes_messages,
        "full_history": full_messages,
        "no_memory": none_messages,
    }
    for name, messages in prompts.items():
        t0 = time.perf_counter()
        answer = generate(llm, messages, args)
        answer["turn_s"] = time.perf_counter() - t0
        if name == "full_history":
            answer["turn_s"] += full_build_s
        if name == "agent":
            answer["turn_s"] += retrieval_s + prompt_s
            answer["retrieval_s"] = retrieval_s
        if name == "agent_notes":
            answer["turn_s"] += retrieval_s
        answer.update(score(answer["text"], q))
        row["answers"][name] = {
            k: round(v, 4) if isinstance(v, float) else v for k, v in answer.items()
        }
    return row, prompts


def retrieval_summary(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    answerable = [r for r in rows if r["kind"] != "none"]
    for method in ("hybrid", "dense", "lexical", "messages_only", "facts_only"):
        entry: dict[str, Any] = {}
        for kind in ("all", "single", "update", "two"):
            sel = [r for r in answerable if kind == "all" or r["kind"] == kind]
            if not sel:
                continue
            cell: dict[str, Any] = {"questions": len(sel)}
            reciprocal = [
                statistics.fmean(
                    1.0 / x if x is not None else 0.0 for x in r["retrieval"][method]["ranks"]
                )
                for r in sel
            ]
            cell[f"mrr@{k}"] = mean(reciprocal)
            for cut in KS:
                if cut > k:
                    continue
                fracs = [
                    sum(x is not None and x <= cut for x in r["retrieval"][method]["ranks"])
                    / len(r["retrieval"][method]["ranks"])
                    for r in sel
                ]
                cell[f"recall@{cut}"] = mean(fracs)
            if kind == "two":
                cell[f"all_found@{k}"] = mean(
                    [
                        float(all(x is not None for x in r["retrieval"][method]["ranks"]))
                        for r in sel
                    ]
                )
            if kind == "update":  # the old turn above the current one (or only the old one)
                stale = []
                for r in sel:
                    cur = r["retrieval"][method]["ranks"][0]
                    old = r["retrieval"][method]["stale_rank"]
                    stale.append(float(old is not None and (cur is None or old < cur)))
                cell[f"stale_above_current@{k}"] = mean(stale)
            entry[kind] = cell
        out[method] = entry
    return out


def in_kind(kind: str, group: str) -> bool:
    return group == "all" or kind == group or (group == "answerable" and kind != "none")


def answer_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in METHODS:
        entry: dict[str, Any] = {}
        for kind in ("all", "answerable", "single", "update", "two", "none"):
            sel = [r for r in rows if in_kind(r["kind"], kind)]
            if not sel:
                continue
            ans = [r["answers"][method] for r in sel if method in r["answers"]]
            if not ans:
                continue
            cell: dict[str, Any] = {
                "questions": len(ans),
                "accuracy": mean([float(a["correct"]) for a in ans]),
                "abstention_rate": mean([float(a["abstained"]) for a in ans]),
            }
            if kind == "update":
                cell["stale_answer_rate"] = mean([float(a["stale"]) for a in ans])
            if kind == "two":
                cell["keys_found"] = mean([a["keys_found"] for a in ans])
            entry[kind] = cell
        out[method] = entry
    return out


def cost_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def col(method: str, key: str) -> list[float]:
        return [r["answers"][method][key] for r in rows if method in r["answers"]]

    out: dict[str, Any] = {"tokens": {}, "latency_s": {}}
    for method in METHODS:
        out["tokens"][method] = {
            "prompt_mean": mean(col(method, "prompt_tokens")),
            "evaluated_mean": mean(col(method, "evaluated_tokens")),
            "completion_mean": mean(col(method, "completion_tokens")),
        }
        turn = col(method, "turn_s")
        out["latency_s"][method + "_turn"] = {
            "p50": round(pct(turn, 0.5), 4), "p95": round(pct(turn, 0.95), 4),
        }  # fmt: skip
    retrieval = col("agent", "retrieval_s")
    out["latency_s"]["agent_retrieval"] = {
        "p50": round(pct(retrieval, 0.5), 4), "p95": round(pct(retrieval, 0.95), 4),
    }  # fmt: skip
    per_turn = [  # what one history turn (user text + short reply) adds to the baseline's prompt
        (r["answers"]["full_history"]["prompt_tokens"] - r["answers"]["no_memory"]["prompt_tokens"])
        / r["history_turns"]
        for r in rows
        if "no_memory" in r["answers"]
    ]
    out["tokens"]["full_history_tokens_per_history_turn"] = mean(per_turn)
    out["tokens"]["history_turns_mean"] = mean([r["history_turns"] for r in rows])
    answerable = [r for r in rows if r["kind"] != "none"]
    out["evidence_all_in_agent_recent_turns"] = mean(
        [float(all(r["evidence_in_recent_turns"])) for r in answerable]
    )
    agent_tokens = out["tokens"]["agent"]["prompt_mean"]
    full_tokens = out["tokens"]["full_history"]["prompt_mean"]
    out["ratios_agent_to_full_history"] = {
        "prompt_tokens": ratio(agent_tokens, full_tokens),
        "turn_p50": ratio(
            out["latency_s"]["agent_turn"]["p50"], out["latency_s"]["full_history_turn"]["p50"]
        ),
        "turn_p95": ratio(
            out["latency_s"]["agent_turn"]["p95"], out["latency_s"]["full_history_turn"]["p95"]
        ),
    }
    return out


def remote(rows: list[dict[str, Any]], prompts: list[dict[str, Any]], args: argparse.Namespace):
    """The same three prompts answered by an OpenAI-compatible endpoint, when one is set."""
    base_url = os.environ.get("MEMORA_BENCH_OPENAI_BASE_URL")
    model = os.environ.get("MEMORA_BENCH_OPENAI_MODEL")
    if not base_url or not model:
        return {"skipped": "no endpoint configured"}
    from memora.llm.openai import OpenAILLM

    llm = OpenAILLM(model, base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "none"))
    out_rows = []
    try:
        for row, messages in zip(rows, prompts, strict=False):
            answers: dict[str, Any] = {}
            for name, msgs in messages.items():
                done = llm.generate(msgs, max_tokens=args.answer_tokens, temperature=0.0, seed=0)
                q = Question(row["user"], row["kind"], row["question"], row["expected"], [],
                             row["stale_value"])  # fmt: skip
                answers[name] = {"text": done.text.strip(), **score(done.text, q)}
            out_rows.append({**row, "answers": answers})
    finally:
        llm.close()
    return {
        "model": model,
        "base_url": base_url,
        "answers": answer_summary(out_rows),
        "rows": [{"question": r["question"], "answers": r["answers"]} for r in out_rows],
    }


def environment(llm: Any, args: argparse.Namespace) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE,
            check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    try:
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "agents", "memora"], capture_output=True,
            text=True, cwd=HERE.parent, check=False,
        ).stdout.split("\n")  # fmt: skip
    except OSError:
        changed = []
    meta = llm.metadata if llm is not None else {}
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "llama_cpp_python": version("llama-cpp-python"),
        "faiss": version("faiss-cpu"),
        "sentence_transformers": version("sentence-transformers"),
        "model": meta.get("general.name", "default"),
        "n_ctx": args.n_ctx,
        "threads": args.threads,
        "embedder": "all-MiniLM-L6-v2 (bundled)",
        "git_commit": commit,
        "uncommitted_changes_in_agents_and_memora": [line for line in changed if line.strip()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--personas", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--facts", type=int, default=5, help="attributes each persona states")
    parser.add_argument("--chitchat", type=int, default=2, help="chit-chat turns per session")
    parser.add_argument("--two-fact", type=int, default=2, help="two-fact questions per persona")
    parser.add_argument("--no-answer", type=int, default=2, help="no-answer questions per persona")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--ingest-tokens", type=int, default=16)
    parser.add_argument("--answer-tokens", type=int, default=40)
    parser.add_argument("--repeat-penalty", type=float, default=1.15, help="as MemoryAgent's")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    # Ctrl-C (and a plain kill) stop the run and still write what finished, also when started
    # in the background, where SIGINT is otherwise ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    wrong = [text for text, want in ABSTAIN_EXAMPLES.items() if abstains(text) != want]
    if wrong:
        raise SystemExit(f"the abstention matcher is wrong on: {wrong}")

    from memora.llm.llamacpp import LlamaCppLLM

    people, questions = personas(
        args.personas, sessions=args.sessions, facts=args.facts, chitchat=args.chitchat,
        two_fact=args.two_fact, no_answer=args.no_answer, seed=args.seed,
    )  # fmt: skip
    values = {}  # (user, index) -> the answer key the turn states
    olds = {}  # (user, index of an update turn) -> the key of the value it replaces
    for q in questions:
        for i, key in zip(q.evidence, q.expected, strict=True):
            values[(q.user, i)] = key
        if q.stale_evidence is not None and q.stale is not None:
            values[(q.user, q.stale_evidence)] = q.stale
            olds[(q.user, q.evidence[0])] = q.stale
    started = time.perf_counter()
    llm = LlamaCppLLM("default", n_ctx=args.n_ctx, n_threads=args.threads, seed=0)
    results: dict[str, Any] = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": environment(llm, args),
        "dataset": {
            "generator": "bench/agent_data.py personas()",
            "personas": len(people),
            "turns": sum(len(p.turns) for p in people),
            "turn_kinds": dict(Counter(t.kind for p in people for t in p.turns)),
            "questions": len(questions),
            "question_kinds": dict(Counter(q.kind for q in questions)),
        },
        "abstention_matcher": {"patterns": ABSTAIN_PATTERNS, "checked_on": ABSTAIN_EXAMPLES},
        "notes_system": NOTES_SYSTEM,
        "baseline_system": BASE_SYSTEM,
        "agent_system": DEFAULT_SYSTEM,
        "partial": False,
    }
    turn_ids: dict[tuple[str, int], int] = {}
    log: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    prompts: list[dict[str, Any]] = []
    phase = "ingest"
    tmp = tempfile.TemporaryDirectory(prefix="agent_memory_")
    store = MemoryStore(Path(tmp.name) / "memory.db", embedder=load_embedder())
    try:
        ingest(llm, store, people, args, turn_ids, log)
        phase = "questions"
        q_started = time.perf_counter()
        for n, q in enumerate(questions, 1):
            row, messages = ask(llm, store, q, turn_ids, args)
            if not rows:
                results["example_prompts"] = {"question": q.text, **messages}
            rows.append(row)
            prompts.append(messages)
            marks = " ".join(
                f"{m}={'ok' if a['correct'] else 'x'}" for m, a in row["answers"].items()
            )
            took = time.perf_counter() - q_started
            print(
                f"[question {n}/{len(questions)}] {q.user} {q.kind:6s} ranks "
                f"{row['retrieval']['hybrid']['ranks']} {marks} "
                f"eta {took / n * (len(questions) - n):.0f}s",
                flush=True,
            )
        phase = "remote"
        results["remote"] = remote(rows, prompts, args)
        phase = "done"
    except KeyboardInterrupt:
        results["partial"] = True
        results["stopped_in"] = phase
        print(f"\nstopped during {phase}: writing what finished", flush=True)
    finally:
        for row in log:
            row["value"] = values.get((row["user"], row["index"]))
            row["old_value"] = olds.get((row["user"], row["index"]))
        if log:
            results["extraction"] = extraction_summary(log, people, store, llm)
        if rows:
            results["retrieval"] = retrieval_summary(rows, args.k)
            results["answers"] = answer_summary(rows)
            results["cost"] = cost_summary(rows)
        results.setdefault("remote", {"skipped": "not reached"})
        results["questions_done"] = len(rows)
        results["wall_s"] = round(time.perf_counter() - started, 1)
        results["rows"] = rows
        results["ingest_log"] = log
        store.close()
        llm.close()
        tmp.cleanup()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out} ({results['wall_s']} s)", flush=True)
        for key in ("extraction", "retrieval", "answers", "cost"):
            if key in results:
                print(key, json.dumps(results[key] if key != "extraction" else {
                    k: v for k, v in results[key].items() if k != "failure_messages"}))  # fmt: skip


if __name__ == "__main__":
    main()

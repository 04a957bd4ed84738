"""Retrieval on long multi-session conversations: memora's search modes against each other.

Data: ``bench/data/retrieval.json`` (``bench/retrieval_data.py``, seeded): conversations of many
dated sessions, every turn one record (``occurred_at``: its session's date) in the
conversation's own scope, and questions of six types with their evidence turns.

Every configuration answers every question with ``k = 25`` in one run, on one store:

- ``dense`` and ``lexical`` (plain BM25 on the stemmed full-text index): the single modes;
- ``before``: the previous release's default (hybrid, reciprocal rank fusion, no time), run
  by that release's own code (``git worktree`` of ``--before``) on its own store, so its
  full-text index is the one without stemming;
- ``rrf``: reciprocal rank fusion on this release's indexes, no time;
- ``score``: normalized-score fusion, no time; ``default``: this release's defaults (score
  fusion and the time the question asks about, resolved against when it is asked);
- ``default+neighbours``: the default with 2 turns either side of each hit (context recall:
  evidence among the hits or their neighbours);
- ``default+rerank``: a second stage (``--rerank``) on a sample of questions.

Reported per configuration and question type: recall@1/5/10/25 (the share of a question's
evidence turns in the first k), MRR, the update questions where the new value ranks above
the stale one, search latency p50/p95, and for abstention the top similarity of answerable
and unanswerable questions swept over floors.

    python bench/retrieval.py [--before REV] [--limit N] [--rerank pointwise|none]

Writes bench/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "retrieval.json"
RESULTS = HERE / "results" / "retrieval.json"
KS = (1, 5, 10, 25)
TYPES = ("single-hop", "multi-hop", "temporal", "update", "paraphrase", "unanswerable")
BEFORE = "ce47661"  # the release before normalized fusion, time and search keys


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def load() -> dict[str, Any]:
    return json.loads(DATA.read_text("utf-8"))


def ingest(store: Any, data: dict[str, Any], *, times: bool) -> None:
    """Every turn one record in its conversation's scope (``occurred_at``: its session's date,
    a second per turn, when ``times``)."""
    for conv in data["conversations"]:
        texts, metas, when = [], [], []
        for session in conv["sessions"]:
            start = epoch(session["date"])
            for i, turn in enumerate(session["turns"]):
                texts.append(turn["text"])
                metas.append({"turn": turn["id"], "session": session["id"]})
                when.append(start + i)
        extra = {"occurred_at": when} if times else {}
        store.add_many(texts, user_id=conv["id"], metadatas=metas, dedup=False, **extra)


def turn_times(data: dict[str, Any]) -> dict[str, float]:
    return {turn["id"]: epoch(session["date"]) + i for conv in data["conversations"]
            for session in conv["sessions"] for i, turn in enumerate(session["turns"])}  # fmt: skip


def run_config(store: Any, questions: list[dict[str, Any]], options: dict[str, Any],
               *, asked: bool, times: dict[str, float]) -> list[dict[str, Any]]:  # fmt: skip
    """Each question's ranked turn ids (and context turn ids), top similarity and latency.
    The store holds every session, but a question is asked at ``asked_at``: turns after it
    did not exist yet, so they are dropped from every configuration's ranking alike (k = 25
    of the first 60)."""
    out = []
    for q in questions:
        extra = {"now": epoch(q["asked_at"])} if asked else {}
        start = time.perf_counter()
        hits = store.search(q["question"], user_id=q["conversation"], k=60, **options, **extra)
        ms = (time.perf_counter() - start) * 1000
        cutoff = epoch(q["asked_at"])
        hits = [h for h in hits if times[h.record.metadata["turn"]] <= cutoff][:25]
        context = [[c.metadata["turn"] for c in getattr(h, "context", ())
                    if times[c.metadata["turn"]] <= cutoff] for h in hits]  # fmt: skip
        sims = [h.similarity for h in hits if h.similarity is not None]
        out.append({"id": q["id"], "ranked": [h.record.metadata["turn"] for h in hits],
                    "context": context, "top": max(sims) if sims else None, "ms": ms})  # fmt: skip
    return out


def recall(evidence: list[str], ranked: list[str], k: int,
           context: list[list[str]] | None = None) -> float:  # fmt: skip
    seen = set(ranked[:k])
    if context:
        seen.update(t for c in context[:k] for t in c)
    return len(seen & set(evidence)) / len(evidence)


def score(questions: list[dict[str, Any]], runs: list[dict[str, Any]],
          *, with_context: bool = False) -> dict[str, Any]:  # fmt: skip
    """Recall@k and MRR by question type (answerable types), update order, latency."""
    by_id = {r["id"]: r for r in runs}
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for q in questions:
        run = by_id.get(q["id"])
        if run is None or not q["evidence"]:
            continue
        ctx = run["context"] if with_context else None
        for bucket in (q["type"], "all"):
            for k in KS:
                table[bucket][f"recall@{k}"].append(recall(q["evidence"], run["ranked"], k, ctx))
            first = next((i for i, t in enumerate(run["ranked"], 1) if t in q["evidence"]), None)
            table[bucket]["mrr"].append(0.0 if first is None else 1.0 / first)
            if q["type"] == "update" and bucket == "all":
                table["update"]["new_above_stale"].append(_new_first(q, run["ranked"]))
    result: dict[str, Any] = {
        bucket: {m: round(statistics.fmean(v), 4) for m, v in metrics.items()} | {"n": len(
            metrics["mrr"])} for bucket, metrics in table.items()
    }  # fmt: skip
    ms = sorted(r["ms"] for r in runs)
    result["latency_ms"] = {"p50": round(ms[len(ms) // 2], 2),
                            "p95": round(ms[int(len(ms) * 0.95)], 2)}  # fmt: skip
    return result


def _new_first(q: dict[str, Any], ranked: list[str]) -> float:
    new = min((ranked.index(t) for t in q["evidence"] if t in ranked), default=None)
    old = min((ranked.index(t) for t in q.get("stale", []) if t in ranked), default=None)
    return float(new is not None and (old is None or new < old))


def abstention(questions: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Unanswerable questions abstained and answerable ones wrongly abstained at each floor
    (abstain: the top similarity is under the floor)."""
    by_id = {r["id"]: r for r in runs}
    answerable = [by_id[q["id"]]["top"] or 0.0 for q in questions if q["evidence"]]
    unanswerable = [by_id[q["id"]]["top"] or 0.0 for q in questions if not q["evidence"]]
    sweep = {}
    for step in range(20, 66, 1):
        floor = step / 100
        sweep[f"{floor:.2f}"] = {
            "unanswerable_abstained": round(sum(t < floor for t in unanswerable)
                                            / max(1, len(unanswerable)), 4),
            "answerable_abstained": round(sum(t < floor for t in answerable)
                                          / max(1, len(answerable)), 4),
        }  # fmt: skip
    return sweep


PLAIN = {"time_weight": 0.0, "hops": 1, "latest": False}
CONFIGS: dict[str, dict[str, Any]] = {
    "dense": {"mode": "dense", **PLAIN},
    "lexical": {"mode": "lexical", **PLAIN},
    "rrf": {"fusion": "rrf", **PLAIN},
    "score (fixed weight)": {"adaptive": False, **PLAIN},
    "score": PLAIN,
    "score+time": {"hops": 1, "latest": False},
    "score+time+latest": {"hops": 1},
    "default": {},
    "default+neighbours": {"neighbours": 2},
}


def before(rev: str, limit: int | None) -> dict[str, Any]:
    """The previous release's default, dense and lexical, by its own code (a subprocess on a
    git worktree of ``rev``)."""
    root = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), rev],
                       check=True, capture_output=True)  # fmt: skip
        try:
            out = Path(tmp) / "runs.json"
            env = {**os.environ, "PYTHONPATH": str(tree)}
            cmd = [sys.executable, str(Path(__file__)), "--worker", str(out)]
            cmd += ["--limit", str(limit)] if limit else []
            subprocess.run(cmd, check=True, env=env, cwd=tmp)
            return dict(json.loads(out.read_text("utf-8")))
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)  # fmt: skip


def questions_of(data: dict[str, Any], limit: int | None) -> list[dict[str, Any]]:
    questions = data["questions"]
    return questions if limit is None else questions[:: max(1, len(questions) // limit)][:limit]


def worker(out: Path, limit: int | None) -> None:
    """In the previous release's tree: its hybrid default, dense and lexical."""
    from memora.memory.store import MemoryStore

    data = load()
    questions = questions_of(data, limit)
    with tempfile.TemporaryDirectory() as tmp, MemoryStore(Path(tmp) / "m.db") as store:
        ingest(store, data, times=False)
        runs = {name: run_config(store, questions, opts, asked=False, times=turn_times(data))
                for name, opts in {"before": {}, "before-dense": {"mode": "dense"},
                                   "before-lexical": {"mode": "lexical"}}.items()}  # fmt: skip
    out.write_text(json.dumps(runs), "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default=BEFORE, help="the release to compare with")
    parser.add_argument("--limit", type=int, help="questions (an even sample; default: all)")
    parser.add_argument("--rerank", default="pointwise", choices=["pointwise", "none"])
    parser.add_argument("--rerank-questions", type=int, default=60)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help="configurations to run (default: all)")
    parser.add_argument("--store", type=Path, help="keep the ingested store here (reused)")
    parser.add_argument(
        "--keys",
        type=int,
        default=1,
        help="conversations whose user turns get question keys (0: none)",
    )
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.limit)

    data = load()
    questions = questions_of(data, args.limit)
    results: dict[str, Any] = {"configs": {}, "abstention": {}}
    runs: dict[str, list[dict[str, Any]]] = {}
    started, times = time.time(), turn_times(data)
    with (
        tempfile.TemporaryDirectory() as tmp,
        opened(args.store or Path(tmp) / "m.db", data, results) as store,
    ):
        for name, opts in CONFIGS.items():
            if args.only and name not in args.only:
                continue
            print(f"{name} ...", file=sys.stderr, flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                runs[name] = run_config(store, questions, opts, asked=True, times=times)
        llm = None
        if args.rerank != "none" and (not args.only or "default+rerank" in args.only):
            from memora.llm import load_model

            llm = load_model("default", n_threads=2)
            runs |= rerank_runs(store, questions, args.rerank_questions, times, llm)
    if args.keys and (not args.only or "default+question keys" in args.only):
        from memora.llm import load_model

        llm = llm or load_model("default", n_threads=2)
        runs |= keys_runs(data, questions, args.keys, times, llm)
        results["question_keys"] = runs.pop("_keys")
    if not args.only or "latency" in args.only:
        results["latency_11k"] = latency_runs(data, questions, 200, times)
    if not args.only or "before" in args.only:
        print("before ...", file=sys.stderr, flush=True)
        runs |= before(args.before, args.limit)
    for name, run in runs.items():
        subset = [q for q in questions if q["id"] in {r["id"] for r in run}]
        results["configs"][name] = score(subset, run, with_context=name.endswith("neighbours"))
        if run and run[0]["top"] is not None and name in ("default", "dense"):
            results["abstention"][name] = abstention(subset, run)
    results["meta"] = meta(data, questions, started, args)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n", "utf-8")
    print(table(results))


def keys_runs(data: dict[str, Any], questions: list[dict[str, Any]], conversations: int,
              times: dict[str, float], llm: Any) -> dict[str, Any]:  # fmt: skip
    """Question keys (``memora.memory.keys.QuestionKeys``, the bundled model) for every user
    turn of the first ``conversations``: the default before and after, on their questions."""
    from memora.memory.keys import QuestionKeys
    from memora.memory.store import MemoryStore

    part = {**data, "conversations": data["conversations"][:conversations]}
    convs = {c["id"] for c in part["conversations"]}
    sample = [q for q in questions if q["conversation"] in convs]
    with tempfile.TemporaryDirectory() as tmp, MemoryStore(Path(tmp) / "k.db") as store:
        ingest(store, part, times=True)
        before = run_config(store, sample, {}, asked=True, times=times)
        users = {t["id"] for c in part["conversations"] for s in c["sessions"]
                 for t in s["turns"] if t["speaker"] == "user"}  # fmt: skip
        records = [r for c in convs for r in store.list(user_id=c)
                   if r.metadata["turn"] in users]  # fmt: skip
        keys, t0 = QuestionKeys(store, llm), time.perf_counter()
        for i in range(0, len(records), 20):
            keys.expand(records[i : i + 20])
            print(f"question keys: {min(i + 20, len(records))}/{len(records)} records",
                  file=sys.stderr, flush=True)  # fmt: skip
        seconds = time.perf_counter() - t0
        after = run_config(store, sample, {}, asked=True, times=times)
        stored = sum(len(store.keys(r.id, user_id=r.scope.user_id)) for r in records)
    print(f"{stored} keys for {len(records)} records in {seconds:.0f} s", file=sys.stderr)
    made = {"records": len(records), "keys": stored, "seconds": round(seconds, 1)}
    return {"default@keys-sample": before, "default+question keys": after, "_keys": made}


def latency_runs(data: dict[str, Any], questions: list[dict[str, Any]], n: int,
                 times: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """Search latency with one scope of 11,544 records (every turn twice, the copy marked as
    retold), embedding included, on an even sample of ``n`` questions."""
    from memora.memory.store import MemoryStore

    sample = questions[:: max(1, len(questions) // n)][:n]
    texts, metas, when = [], [], []
    for copy in ("", "Retold: "):
        for conv in data["conversations"]:
            for session in conv["sessions"]:
                for i, turn in enumerate(session["turns"]):
                    texts.append(copy + turn["text"])
                    metas.append({"turn": turn["id"], "session": session["id"]})
                    when.append(epoch(session["date"]) + i)
    out: dict[str, Any] = {"records": len(texts), "questions": len(sample)}
    with tempfile.TemporaryDirectory() as tmp, MemoryStore(Path(tmp) / "l.db") as store:
        store.add_many(texts, user_id="all", metadatas=metas, occurred_at=when, dedup=False)
        for name in ("dense", "lexical", "rrf", "default"):
            opts = CONFIGS[name]
            for q in sample[:5]:  # warm
                store.search(q["question"], user_id="all", k=10, **opts)
            ms = []
            for q in sample:
                t0 = time.perf_counter()
                store.search(q["question"], user_id="all", k=10, now=epoch(q["asked_at"]), **opts)
                ms.append((time.perf_counter() - t0) * 1000)
            ms.sort()
            out[name] = {
                "p50": round(ms[len(ms) // 2], 2),
                "p95": round(ms[int(len(ms) * 0.95)], 2),
            }
            print(f"latency {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


@contextlib.contextmanager
def opened(path: Path, data: dict[str, Any], results: dict[str, Any]) -> Any:
    """The store of every turn at ``path`` (ingested unless it is already there)."""
    from memora.memory.store import MemoryStore

    fresh = not path.exists()
    with MemoryStore(path) as store:
        if fresh:
            t0 = time.perf_counter()
            ingest(store, data, times=True)
            results["ingest_s"] = round(time.perf_counter() - t0, 1)
        yield store


def rerank_runs(store: Any, questions: list[dict[str, Any]], n: int,
                times: dict[str, float], llm: Any) -> dict[str, Any]:  # fmt: skip
    """The default with a pointwise second stage (the bundled model) on the first 10 hits, on
    an even sample of ``n`` answerable questions, and the default on the same sample."""
    from memora.rank.pointwise import PointwiseReranker

    sample = [q for q in questions if q["evidence"]]
    sample = sample[:: max(1, len(sample) // n)][:n]
    reranker = PointwiseReranker(llm)
    print("default+rerank ...", file=sys.stderr, flush=True)
    return {
        "default@rerank-sample": run_config(store, sample, {}, asked=True, times=times),
        "default+rerank": run_config(store, sample, {"rerank": reranker, "rerank_depth": 10},
                                     asked=True, times=times),
    }  # fmt: skip


def meta(data: dict[str, Any], questions: list[dict[str, Any]], started: float,
         args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    from importlib.metadata import version

    turns = sum(len(s["turns"]) for c in data["conversations"] for s in c["sessions"])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "conversations": len(data["conversations"]), "turns": turns,
        "questions": len(questions), "before": args.before, "memora": version("memora"),
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }  # fmt: skip


def table(results: dict[str, Any]) -> str:
    rows = ["| config | type | n | R@1 | R@5 | R@10 | R@25 | MRR | p50 ms |", "|" + "---|" * 9]
    for name, by_type in results["configs"].items():
        for bucket in ("all", *TYPES):
            m = by_type.get(bucket)
            if m:
                rows.append(f"| {name} | {bucket} | {m['n']} | " + " | ".join(
                    f"{m[f'recall@{k}']:.3f}" for k in KS) + f" | {m['mrr']:.3f} | "
                    f"{by_type['latency_ms']['p50']} |")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    main()

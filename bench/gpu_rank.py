"""Batch ranking throughput on a GPU against the same machine's CPU cores.

The batch runner (``memora.rank.batch.run_batch``, local executor, one model) ranks the queries
of bench/ranking.py's generated collection (12 queries, 20 candidates each) with the
``pointwise`` (20 short prompts per query) and ``setwise`` (one set-based pass per query)
strategies and the bundled SmolLM2-135M: queries per second with every layer on the GPU
(n_gpu_layers=-1) and on the CPU in a process that sees no GPU (--threads threads). Each run
is timed from the first query to the last, model loading excluded, and also checks that both
devices rank the same (setwise: identical runs; pointwise: nDCG@10 of each).

    python bench/gpu_rank.py [--threads 16] [--out bench/results/gpu_rank.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def worker(args: argparse.Namespace) -> None:
    from ranking import collection, ndcg10

    from memora.llm.llamacpp import LlamaCppLLM
    from memora.rank import Doc, load_reranker
    from memora.rank.batch import Query, run_batch

    queries = collection(20, seed=2)
    work = [Query(q["qid"], q["query"]) for q in queries]
    candidates = {q["qid"]: [Doc(d, t) for d, t, _ in q["docs"]] for q in queries}
    grades = {q["qid"]: {d: g for d, _, g in q["docs"]} for q in queries}
    ngl = -1 if args.worker == "gpu" else 0
    llm = LlamaCppLLM("default", n_ctx=4096, n_threads=args.threads, n_gpu_layers=ngl, seed=0)
    out: dict[str, Any] = {"device": llm.device, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in ("pointwise", "setwise"):
            reranker = load_reranker(strategy, llm)
            reranker.rank(work[0].text, candidates[work[0].qid])  # warm-up
            path = Path(tmp) / f"{strategy}.trec"
            started = time.perf_counter()
            run_batch(work, candidates, lambda r=reranker: r, path)
            seconds = time.perf_counter() - started
            ranked: dict[str, list[str]] = {}
            for line in path.read_text().splitlines():
                qid, _, docid, *_ = line.split()
                ranked.setdefault(qid, []).append(docid)
            score = sum(ndcg10(ranked[q], grades[q]) for q in ranked) / len(ranked)
            out[strategy] = {
                "queries_per_s": round(len(work) / seconds, 3),
                "seconds": round(seconds, 2),
                "nDCG@10": round(score, 3),
                "run": {q: ranked[q] for q in sorted(ranked)},
            }
    llm.close()
    print("WORKER-JSON " + json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=["gpu", "cpu"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gpu_rank.json")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    result: dict[str, Any] = {"benchmark": "gpu_rank", "threads": args.threads}
    for kind in ("gpu", "cpu"):
        env = dict(os.environ)
        if kind == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        cmd = [sys.executable, __file__, "--worker", kind, "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("WORKER-JSON ")]
        if done.returncode != 0 or not lines:
            result[kind] = {"error": f"exit {done.returncode}", "stderr": done.stderr[-3000:]}
        else:
            result[kind] = json.loads(lines[-1].removeprefix("WORKER-JSON "))
        print(kind, json.dumps(result[kind])[:300], flush=True)
    gpu, cpu = result.get("gpu", {}), result.get("cpu", {})
    for strategy in ("pointwise", "setwise"):
        if strategy in gpu and strategy in cpu:
            result[f"{strategy}_gpu_over_cpu"] = round(
                gpu[strategy]["queries_per_s"] / cpu[strategy]["queries_per_s"], 2
            )
            result[f"{strategy}_same_run"] = gpu[strategy]["run"] == cpu[strategy]["run"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))


if __name__ == "__main__":
    main()

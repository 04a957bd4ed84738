"""What memora's llama.cpp layer costs, and what prefix reuse saves.

1. Generation speed through memora (``LlamaCppLLM.stream``) against llama-cpp-python's ``Llama``
   used directly, same model, prompt, seed, greedy, same thread count; runs alternate so both
   see the same machine load. Reported as the ratio of decode tokens/s (median of the runs).
2. Prefix reuse: a ~1,000-token prompt, then a second prompt sharing that prefix. Reported: the
   share of the second prompt's tokens evaluated again, and its time to first token as a ratio
   of the cold call's.

Writes bench/results/llm_overhead.json.

    python bench/llm_overhead.py [--threads 2] [--runs 5] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import llama_cpp

from memora import load_model, model_path
from memora.llm.llamacpp import LlamaCppLLM

RESULTS = Path(__file__).resolve().parent / "results" / "llm_overhead.json"
PROMPT = (
    "<|im_start|>user\nWrite a long, detailed story about a lighthouse keeper, a storm and a "
    "message in a bottle.<|im_end|>\n<|im_start|>assistant\n"
)


def timed_stream(chunks: Any) -> tuple[float, float, int]:
    """(time to first chunk, decode seconds after it, chunks) of an iterator of chunks."""
    start = time.perf_counter()
    first = last = None
    count = 0
    for _ in chunks:
        now = time.perf_counter()
        first = first if first is not None else now
        last = now
        count += 1
    assert first is not None and last is not None
    return first - start, last - first, count


def bench_throughput(path: Path, threads: int, runs: int, max_tokens: int) -> dict[str, Any]:
    direct = llama_cpp.Llama(
        str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads, seed=0, verbose=False
    )
    ours = LlamaCppLLM(path, n_ctx=2048, n_threads=threads, seed=0)
    direct_rates, ours_rates, tokens = [], [], []
    for _ in range(runs):
        direct.reset()
        direct._ctx.kv_cache_clear()
        _, secs, n = timed_stream(
            direct.create_completion(
                PROMPT, max_tokens=max_tokens, temperature=0, seed=0, stream=True
            )
        )
        direct_rates.append((n - 1) / secs)
        ours.reset_cache()
        stream = ours.stream(PROMPT, max_tokens=max_tokens, temperature=0, seed=0)
        _, secs, n = timed_stream(stream)
        done = stream.result()
        ours_rates.append((n - 1) / secs)
        tokens.append(done.usage.completion_tokens)
    ours.close()
    direct.close()
    d, o = statistics.median(direct_rates), statistics.median(ours_rates)
    return {
        "direct_tokens_per_s": round(d, 2),
        "memora_tokens_per_s": round(o, 2),
        "ratio_memora_over_direct": round(o / d, 3),
        "direct_runs": [round(r, 2) for r in direct_rates],
        "memora_runs": [round(r, 2) for r in ours_rates],
        "completion_tokens": tokens,
    }


def bench_prefix(threads: int, runs: int) -> dict[str, Any]:
    llm = load_model("default", n_ctx=2048, n_threads=threads, seed=0)
    assert isinstance(llm, LlamaCppLLM)
    paragraph = (
        "The harbour log records every ship that passed the point, the weather of each day, "
        "the oil burned in the lamp and the repairs made to the lens. "
    )
    prefix = paragraph * 1
    while llm.count_tokens(prefix) < 1000:
        prefix += paragraph
    first_q = "Question: which ship passed first? Answer:"
    second_q = "Question: how much oil was burned? Answer:"
    cold, warm, share = [], [], []
    for _ in range(runs):
        llm.reset_cache()
        ttft_cold, _, _ = timed_stream(llm.stream(prefix + first_q, max_tokens=1, temperature=0))
        stream = llm.stream(prefix + second_q, max_tokens=1, temperature=0)
        ttft_warm, _, _ = timed_stream(stream)
        usage = stream.result().usage
        cold.append(ttft_cold)
        warm.append(ttft_warm)
        share.append(usage.evaluated_prompt_tokens / usage.prompt_tokens)
    prefix_tokens = llm.count_tokens(prefix)
    llm.close()
    return {
        "prefix_tokens": prefix_tokens,
        "second_prompt_tokens": usage.prompt_tokens,
        "second_cached_tokens": usage.cached_tokens,
        "share_reevaluated": round(statistics.median(share), 4),
        "ttft_cold_s": round(statistics.median(cold), 4),
        "ttft_warm_s": round(statistics.median(warm), 4),
        "ttft_ratio_warm_over_cold": round(statistics.median(warm) / statistics.median(cold), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    path = model_path("default")
    result = {
        "benchmark": "llm_overhead",
        "model": path.name,
        "threads": args.threads,
        "runs": args.runs,
        "max_tokens": args.max_tokens,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "llama_cpp_python": version("llama-cpp-python"),
        },
        "throughput": bench_throughput(path, args.threads, args.runs, args.max_tokens),
        "prefix_reuse": bench_prefix(args.threads, args.runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    t, p = result["throughput"], result["prefix_reuse"]
    print(json.dumps(result, indent=2))
    print()
    print("| measure | baseline | memora | ratio | bound |")
    print("|---|---|---|---|---|")
    print(
        f"| decode tokens/s ({args.threads} threads) | {t['direct_tokens_per_s']} (Llama direct) "
        f"| {t['memora_tokens_per_s']} | {t['ratio_memora_over_direct']} | >= 0.95 |"
    )
    print(
        f"| prompt tokens re-evaluated, 2nd call | {p['second_prompt_tokens']} (cold: all) "
        f"| {p['second_prompt_tokens'] - p['second_cached_tokens']} "
        f"| {p['share_reevaluated']} | < 0.10 |"
    )
    print(
        f"| time to first token, 2nd call | {p['ttft_cold_s']} s (cold) | {p['ttft_warm_s']} s "
        f"| {p['ttft_ratio_warm_over_cold']} | < 0.3 |"
    )


if __name__ == "__main__":
    main()

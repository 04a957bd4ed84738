"""llama.cpp on a GPU against the same machine's CPU cores, and what memora's layer costs there.

For each model (the bundled SmolLM2-135M Q4_1, plus any GGUF given with --model):

1. Raw llama-cpp-python throughput, greedy, median of --runs:
   - prompt processing: tokens/s of ``Llama.eval`` over a ~--prompt-tokens prompt (n_batch 512);
   - generation: tokens/s of --max-tokens single-token ``Llama.eval`` calls, each taking the
     argmax of the last logits (no Python sampler, no detokenizing).
   Measured on the GPU (n_gpu_layers=-1), on the CPU in a process that sees no GPU
   (CUDA_VISIBLE_DEVICES="", --threads threads: a pure CPU baseline), and with n_gpu_layers=0
   inside the CUDA process (llama.cpp's op offload may still send large prompt batches to the
   GPU there).
2. memora against llama-cpp-python directly, as in bench/llm_overhead.py: ``LlamaCppLLM.stream``
   vs ``Llama.create_completion(stream=True)``, same prompt, seed, greedy, alternating runs;
   the ratio of decode tokens/s (median), on the GPU and on the CPU.
3. Set-based prompting cost: ``logits`` of a ``SetPrompt`` (3 items in parallel KV sequences)
   against its plain concatenation evaluated from scratch; whether the set prompt's logits are
   bit-identical over all 6 item orders (and how much the plain prompt's change); and the time
   of one ``choose`` call (4 options) per method.

Each device runs in its own worker process (``--worker``); the parent collects and writes
bench/results/gpu.json with the machine (GPU, driver, nvcc, CPU, llama-cpp-python version).

    python bench/gpu.py [--model extra.gguf] [--threads 16] [--runs 3] [--overhead-runs 5]
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "gpu.json"
STORY = (
    "<|im_start|>user\nWrite a long, detailed story about a lighthouse keeper, a storm and a "
    "message in a bottle.<|im_end|>\n<|im_start|>assistant\n"
)
PARAGRAPH = (
    "The harbour log records every ship that passed the point, the weather of each day, "
    "the oil burned in the lamp and the repairs made to the lens. "
)
SET_PREFIX = "<|im_start|>user\nWhich of these is a fruit? Options (in no particular order):\n"
SET_OPTIONS = ["- A hammer\n", "- An apple\n", "- A bicycle\n"]
SET_SUFFIX = "Answer with the option.<|im_end|>\n<|im_start|>assistant\nThe fruit is"


# -- worker side ----------------------------------------------------------------------------


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


def raw_throughput(
    path: Path, n_gpu_layers: int, threads: int, runs: int, prompt_tokens: int, gen_tokens: int
) -> dict[str, Any]:
    import llama_cpp
    import numpy as np

    llama = llama_cpp.Llama(
        str(path),
        n_ctx=2048,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=n_gpu_layers,
        seed=0,
        verbose=False,
    )
    n_vocab = llama.n_vocab()
    text = PARAGRAPH
    while len(llama.tokenize(text.encode())) < prompt_tokens:
        text += PARAGRAPH
    tokens = llama.tokenize(text.encode())[:prompt_tokens]

    def argmax_last() -> int:
        ptr = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
        row = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), (n_vocab,))
        return int(row.argmax())

    pp, tg = [], []
    for run in range(runs + 1):  # the first run warms up (kernel loading, allocations)
        llama.reset()
        llama._ctx.kv_cache_clear()
        start = time.perf_counter()
        llama.eval(tokens)
        token = argmax_last()
        pp_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(gen_tokens):
            llama.eval([token])
            token = argmax_last()
        tg_s = time.perf_counter() - start
        if run:
            pp.append(len(tokens) / pp_s)
            tg.append(gen_tokens / tg_s)
    llama.close()
    return {
        "prompt_tokens": len(tokens),
        "generated_tokens": gen_tokens,
        "prompt_tokens_per_s": round(statistics.median(pp), 1),
        "gen_tokens_per_s": round(statistics.median(tg), 1),
        "prompt_runs": [round(r, 1) for r in pp],
        "gen_runs": [round(r, 1) for r in tg],
    }


def overhead(
    path: Path, n_gpu_layers: int, threads: int, runs: int, max_tokens: int
) -> dict[str, Any]:
    import llama_cpp

    from memora.llm.llamacpp import LlamaCppLLM

    direct = llama_cpp.Llama(
        str(path),
        n_ctx=2048,
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=n_gpu_layers,
        seed=0,
        verbose=False,
    )
    ours = LlamaCppLLM(path, n_ctx=2048, n_threads=threads, n_gpu_layers=n_gpu_layers, seed=0)
    device = ours.device
    direct_rates, ours_rates, tokens = [], [], []
    for run in range(runs + 1):  # run 0 warms both up
        direct.reset()
        direct._ctx.kv_cache_clear()
        _, secs, n = timed_stream(
            direct.create_completion(
                STORY, max_tokens=max_tokens, temperature=0, seed=0, stream=True
            )
        )
        d_rate = (n - 1) / secs
        ours.reset_cache()
        stream = ours.stream(STORY, max_tokens=max_tokens, temperature=0, seed=0)
        _, secs, n = timed_stream(stream)
        done = stream.result()
        if run:
            direct_rates.append(d_rate)
            ours_rates.append((n - 1) / secs)
            tokens.append(done.usage.completion_tokens)
    ours.close()
    direct.close()
    d, o = statistics.median(direct_rates), statistics.median(ours_rates)
    return {
        "memora_device": device,
        "direct_tokens_per_s": round(d, 1),
        "memora_tokens_per_s": round(o, 1),
        "ratio_memora_over_direct": round(o / d, 3),
        "direct_runs": [round(r, 1) for r in direct_rates],
        "memora_runs": [round(r, 1) for r in ours_rates],
        "completion_tokens": tokens,
    }


def set_based(path: Path, n_gpu_layers: int, threads: int, runs: int) -> dict[str, Any]:
    import numpy as np

    from memora.llm.llamacpp import LlamaCppLLM
    from memora.prompting import SetPrompt, choose

    llm = LlamaCppLLM(path, n_ctx=2048, n_threads=threads, n_gpu_layers=n_gpu_layers, seed=0)
    prompt = SetPrompt(SET_PREFIX, SET_OPTIONS, SET_SUFFIX)
    plain_prompt = prompt.concatenated()
    llm.logits(prompt)  # warm-up: the context is rebuilt once for more sequences
    llm.logits(plain_prompt)

    def median_s(call: Any) -> float:
        times = []
        for _ in range(runs):
            llm.reset_cache()
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    plain_s = median_s(lambda: llm.logits(plain_prompt))
    set_s = median_s(lambda: llm.logits(prompt))
    orders = list(itertools.permutations(range(len(SET_OPTIONS))))
    set_rows = [llm.logits(prompt.ordered(o)) for o in orders]
    plain_rows = []
    for o in orders:
        llm.reset_cache()
        plain_rows.append(llm.logits(prompt.ordered(o).concatenated()))
    # memora.prompting.choose: one four-option question per call.
    question = "Which animal is the largest?"
    options = ["A house cat", "The blue whale", "An ant", "A small brown mouse from the garden"]
    choose_ms: dict[str, Any] = {}
    for method in ("plain", "label", "likelihood"):
        try:
            choose(llm, question, options, method=method)
        except Exception as exc:  # noqa: BLE001 - e.g. a GGUF without a chat template
            choose_ms[method] = f"{type(exc).__name__}: {str(exc)[:80]}"
            continue
        choose_ms[method] = round(
            median_s(lambda m=method: choose(llm, question, options, method=m)) * 1000, 2
        )
    n_tokens = llm.count_tokens(plain_prompt)
    llm.close()

    def spread(rows: list[Any]) -> float:
        return round(max(float(np.max(np.abs(rows[0] - r))) for r in rows[1:]), 4)

    return {
        "items": len(SET_OPTIONS),
        "plain_prompt_tokens": n_tokens,
        "plain_logits_ms": round(plain_s * 1000, 2),
        "set_prompt_logits_ms": round(set_s * 1000, 2),
        "ratio_set_over_plain": round(set_s / plain_s, 2),
        "set_prompt_bit_identical_over_6_orders": all(
            np.array_equal(set_rows[0], r) for r in set_rows[1:]
        ),
        "set_prompt_max_abs_diff_over_orders": spread(set_rows),
        "plain_prompt_max_abs_diff_over_orders": spread(plain_rows),
        "choose_ms_per_question": choose_ms,
    }


def worker(args: argparse.Namespace) -> None:
    import llama_cpp

    ngl = {"gpu": -1, "cpu": 0, "ngl0": 0}[args.worker]
    out: dict[str, Any] = {
        "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
        "n_gpu_layers": ngl,
        "threads": args.threads,
    }
    if args.worker == "cpu" and out["gpu_offload_supported"]:
        raise SystemExit("the cpu worker must run where no GPU is visible")
    out["raw"] = raw_throughput(
        args.model, ngl, args.threads, args.runs, args.prompt_tokens, args.max_tokens
    )
    if args.worker != "ngl0":
        out["memora_vs_direct"] = overhead(
            args.model, ngl, args.threads, args.overhead_runs, args.max_tokens
        )
        out["set_based"] = set_based(args.model, ngl, args.threads, args.set_runs)
    print("WORKER-JSON " + json.dumps(out))


# -- parent side ----------------------------------------------------------------------------


def run_worker(kind: str, model: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    if kind == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, __file__, "--worker", kind, "--model-path", str(model)]
    for flag in ("threads", "runs", "overhead_runs", "set_runs", "prompt_tokens", "max_tokens"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("WORKER-JSON ")]
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}", "stderr": done.stderr[-3000:]}
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("WORKER-JSON "))
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def sh(cmd: list[str]) -> str:
    if not shutil.which(cmd[0]):
        return ""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def machine_info() -> dict[str, Any]:
    import llama_cpp

    cpu = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = sh(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    )
    nvcc = sh(["nvcc", "--version"])
    match = re.search(r"release ([\d.]+), (V[\d.]+)", nvcc)
    smi = sh(["nvidia-smi"])
    cuda = re.search(r"CUDA Version: ([\d.]+)", smi)
    return {
        "gpu": gpu,
        "driver_cuda_version": cuda.group(1) if cuda else "",
        "nvcc": " ".join(match.groups()) if match else nvcc.splitlines()[-1:],
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "llama_cpp_python": version("llama-cpp-python"),
        "llama_system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "build": "scripts/build_cuda.sh (GGML_CUDA=on, CMAKE_CUDA_ARCHITECTURES=90, AVX2 CPU)",
    }


def model_rows(name: str, res: dict[str, Any]) -> list[str]:
    rows = []
    for kind, label in (
        ("cpu", "CPU only"),
        ("ngl0", "n_gpu_layers=0, CUDA build"),
        ("gpu", "GPU"),
    ):
        r = res.get(kind, {})
        raw = r.get("raw")
        if not raw:
            rows.append(f"| {name} | {label} | error: {r.get('error', 'not run')} | | | |")
            continue
        mvd = r.get("memora_vs_direct", {})
        ratio = mvd.get("ratio_memora_over_direct", "")
        rows.append(
            f"| {name} | {label} | {raw['prompt_tokens_per_s']} | {raw['gen_tokens_per_s']} "
            f"| {mvd.get('direct_tokens_per_s', '')} / {mvd.get('memora_tokens_per_s', '')} "
            f"| {ratio} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", choices=["gpu", "cpu", "ngl0"], help=argparse.SUPPRESS)
    parser.add_argument("--model-path", dest="model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--extra-model", action="append", type=Path, default=[])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--overhead-runs", type=int, default=5)
    parser.add_argument("--set-runs", type=int, default=10)
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from memora import model_path

    models = [model_path("default"), *args.extra_model]
    result: dict[str, Any] = {
        "benchmark": "gpu",
        "threads": args.threads,
        "runs": args.runs,
        "overhead_runs": args.overhead_runs,
        "prompt_tokens": args.prompt_tokens,
        "max_tokens": args.max_tokens,
        "machine": machine_info(),
        "models": {},
    }
    for model in models:
        res: dict[str, Any] = {"file": model.name, "bytes": model.stat().st_size}
        for kind in ("gpu", "cpu", "ngl0"):
            res[kind] = run_worker(kind, model, args)
            print(f"{model.name} {kind}: {json.dumps(res[kind])[:400]}", flush=True)
        raw_gpu, raw_cpu = res["gpu"].get("raw"), res["cpu"].get("raw")
        if raw_gpu and raw_cpu:
            res["speedup_gpu_over_cpu"] = {
                "prompt": round(raw_gpu["prompt_tokens_per_s"] / raw_cpu["prompt_tokens_per_s"], 1),
                "gen": round(raw_gpu["gen_tokens_per_s"] / raw_cpu["gen_tokens_per_s"], 1),
            }
        result["models"][model.stem] = res
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # after each model
    print(json.dumps(result["machine"], indent=2))
    print()
    print(
        "| model | where | prompt tok/s (raw) | gen tok/s (raw) "
        "| stream tok/s direct / memora | memora/direct (>= 0.95) |"
    )
    print("|---|---|---|---|---|---|")
    for name, res in result["models"].items():
        for row in model_rows(name, res):
            print(row)
    print()
    print(
        "| model | where | plain prompt logits ms | SetPrompt logits ms (3 items) "
        "| bit-identical over orders (plain: max change) | choose ms plain / label / likelihood |"
    )
    print("|---|---|---|---|---|---|")
    for name, res in result["models"].items():
        for kind in ("cpu", "gpu"):
            sb = res.get(kind, {}).get("set_based")
            if sb:
                c = sb["choose_ms_per_question"]
                print(
                    f"| {name} | {kind} | {sb['plain_logits_ms']} | {sb['set_prompt_logits_ms']} "
                    f"| {sb['set_prompt_bit_identical_over_6_orders']} "
                    f"(plain: {sb['plain_prompt_max_abs_diff_over_orders']}) "
                    f"| {c['plain']} / {c['label']} / {c['likelihood']} |"
                )


if __name__ == "__main__":
    main()

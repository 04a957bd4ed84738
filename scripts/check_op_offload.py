"""Check that ``n_gpu_layers=0`` keeps every op on the CPU in a CUDA build of llama-cpp-python.

memora's LlamaCppLLM makes its llama.cpp context with ``op_offload = n_gpu_layers != 0``.
Without that, llama.cpp's op offload sends the matrix products of batches of 32 or more tokens
to the GPU even with no layers offloaded (docs/gpu.md). This script loads the bundled model with
``LlamaCppLLM(n_gpu_layers=0)`` in separate processes and compares them:

  gpu-visible   the process sees the GPU (memora as it is)
  no-gpu        CUDA_VISIBLE_DEVICES="" (a pure CPU reference)
  forced        the process sees the GPU and op_offload=True is forced (the old behaviour,
                for comparison; skip with --no-forced)

For each: next-token logits of a ~110-token prompt (and of three short prompts), and prompt
processing tokens/s over a 1,000-token prompt (median of --runs after one warm-up).

    PYTHONPATH=... python3 scripts/check_op_offload.py --threads 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROMPTS = [
    "The capital of France is",
    "1, 2, 3, 4, 5,",
    "<|im_start|>user\nName three colors of the rainbow.<|im_end|>\n<|im_start|>assistant\n",
    "Notes on the history of the lighthouse keeper. " * 12 + "The keeper",  # 110 tokens
]
LONG = 3  # index of the ~110-token prompt
PARAGRAPH = (  # as in bench/gpu.py
    "The harbour log records every ship that passed the point, the weather of each day, "
    "the oil burned in the lamp and the repairs made to the lens. "
)


def worker(mode: str, threads: int, runs: int, prompt_tokens: int, out: Path) -> None:
    import numpy as np

    from memora.llm.llamacpp import LlamaCppLLM, Span, native

    if mode == "forced":  # the old behaviour: op offload on even with no GPU layers
        import memora.llm.llamacpp.model as model_module

        base = model_module.ContextSettings
        model_module.ContextSettings = lambda **kw: base(**{**kw, "op_offload": True})  # type: ignore[misc, assignment]

    start = time.perf_counter()
    llm = LlamaCppLLM("default", n_ctx=2048, n_gpu_layers=0, n_threads=threads, seed=0)
    load_s = time.perf_counter() - start
    rows, n_tokens = [], []
    for prompt in PROMPTS:
        llm.reset_cache()
        rows.append(llm.logits(prompt))
        n_tokens.append(len(llm.prompt_tokens(prompt)))
    np.save(out.with_suffix(".npy"), np.stack(rows))

    text = PARAGRAPH
    while len(llm.tokenize(text)) < prompt_tokens:
        text += PARAGRAPH
    tokens = llm.tokenize(text)[:prompt_tokens]
    pp = []
    for run in range(runs + 1):  # the first run warms up
        with llm.sequences(1) as kv:  # an emptied cache
            t0 = time.perf_counter()
            for start in range(0, len(tokens), llm.n_batch):
                chunk = tokens[start : start + llm.n_batch]
                kv.decode([Span(chunk, start, logits=start + len(chunk) == len(tokens))])
            elapsed = time.perf_counter() - t0
        if run:
            pp.append(len(tokens) / elapsed)
    info = {
        "mode": mode,
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "llama_cpp_version": native.library_version(),
        "supports_gpu_offload": native.supports_gpu_offload(),
        "device": llm.device,
        "op_offload_passed": mode == "forced" or llm.n_gpu_layers != 0,
        "threads": threads,
        "n_batch": llm.n_batch,
        "load_s": round(load_s, 2),
        "prompt_tokens": [int(n) for n in n_tokens],
        "pp_tokens": len(tokens),
        "pp_tokens_per_s": round(statistics.median(pp), 1),
        "pp_runs": [round(r, 1) for r in pp],
    }
    llm.close()
    out.write_text(json.dumps(info))


def run_worker(mode: str, args: argparse.Namespace, tmp: Path) -> tuple[dict[str, Any], Any]:
    import numpy as np

    env = dict(os.environ)
    if mode == "no-gpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    out = tmp / f"{mode}.json"
    cmd = [sys.executable, __file__, "--worker", mode, "--threads", str(args.threads)]
    cmd += ["--runs", str(args.runs), "--prompt-tokens", str(args.prompt_tokens), "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        sys.exit(f"worker {mode} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text()), np.load(out.with_suffix(".npy"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--no-forced", action="store_true", help="skip the op_offload=True run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.runs, args.prompt_tokens, args.out)
        return

    import numpy as np

    modes = ["gpu-visible", "no-gpu"] + ([] if args.no_forced else ["forced"])
    results: dict[str, tuple[dict[str, Any], Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            results[mode] = run_worker(mode, args, Path(tmp))
            print(json.dumps(results[mode][0]), flush=True)

    ref_info, ref = results["no-gpu"]
    print()
    print(f"prompts (tokens): {ref_info['prompt_tokens']}")
    print("logits vs no-gpu (CUDA_VISIBLE_DEVICES=''), per prompt: max abs diff / bit-identical")
    for mode in modes:
        if mode == "no-gpu":
            continue
        logits = results[mode][1]
        cells = []
        for i, n in enumerate(ref_info["prompt_tokens"]):
            diff = float(np.max(np.abs(logits[i] - ref[i])))
            same = bool(np.array_equal(logits[i], ref[i]))
            cells.append(f"{n} tok: {diff:.6g} / {same}")
        print(f"  {mode:12s} " + " | ".join(cells))
        long_diff = float(np.max(np.abs(logits[LONG] - ref[LONG])))
        long_same = bool(np.array_equal(logits[LONG], ref[LONG]))
        print(
            f"  {mode:12s} {ref_info['prompt_tokens'][LONG]}-token prompt: "
            f"max_abs_diff={long_diff:.6g} bit_identical={long_same} "
            f"argmax_equal={int(logits[LONG].argmax()) == int(ref[LONG].argmax())}"
        )
    print(
        f"prompt processing, {ref_info['pp_tokens']} tokens, n_batch {ref_info['n_batch']}, "
        f"{args.threads} threads, median of {args.runs} after a warm-up:"
    )
    for mode in modes:
        info = results[mode][0]
        print(
            f"  {mode:12s} {info['pp_tokens_per_s']:>10,.1f} tok/s  runs {info['pp_runs']}  "
            f"device={info['device']} supports_gpu_offload={info['supports_gpu_offload']}"
        )
    ok = bool(np.array_equal(results["gpu-visible"][1], ref))
    print(f"RESULT: n_gpu_layers=0 with the GPU visible is bit-identical to no GPU: {ok}")


if __name__ == "__main__":
    main()

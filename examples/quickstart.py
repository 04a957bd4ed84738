"""memora in one minute: stream text from the bundled model, then compare sentences with the
bundled embedder. Runs offline; `make demo` runs it.

    python examples/quickstart.py [--threads N] [--max-tokens N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from rich.console import Console
from rich.table import Table

import memora


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    # Half the cores: llama.cpp throughput collapses when its threads compete with other work.
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--max-tokens", type=int, default=120)
    args = parser.parse_args(argv)
    console = Console()

    console.rule("[bold]1. Streamed generation (SmolLM2-135M-Instruct via llama.cpp)")
    with memora.load_model("default", n_ctx=2048, n_threads=args.threads) as llm:
        prompt = [
            {"role": "system", "content": "You are a storyteller. Write vivid, short prose."},
            {
                "role": "user",
                "content": "Begin a story about a lighthouse keeper who finds a "
                "message in a bottle.",
            },
        ]
        started = time.perf_counter()
        stream = llm.stream(prompt, max_tokens=args.max_tokens, temperature=0.7, seed=7)
        for chunk in stream:
            console.print(chunk, end="", highlight=False, soft_wrap=True)
        done = stream.result()
        seconds = time.perf_counter() - started
        console.print()
        console.print(
            f"[dim]{done.usage.completion_tokens} tokens in {seconds:.1f} s "
            f"({done.usage.completion_tokens / seconds:.0f} tokens/s), "
            f"finish: {done.finish_reason}, device: {llm.device}[/]"  # type: ignore[attr-defined]
        )

    console.rule("[bold]2. Embedding similarity (all-MiniLM-L6-v2)")
    embedder = memora.load_embedder()
    query = "The keeper found a note inside a glass bottle."
    candidates = [
        "A message in a bottle washed up near the lighthouse.",
        "The lighthouse keeper lived alone on the rock.",
        "Quarterly revenue grew by four percent.",
    ]
    vectors = embedder.encode([query, *candidates])
    scores = vectors[1:] @ vectors[0]
    table = Table("cosine", "sentence", title=f"query: {query}")
    for score, text in sorted(zip(scores, candidates, strict=True), reverse=True):
        table.add_row(f"{score:.3f}", text)
    console.print(table)
    ok = scores[0] > scores[2] and scores[1] > scores[2]
    console.print("related sentences rank above the unrelated one:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

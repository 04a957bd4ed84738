"""A short autonomous story: the story engine writes a few steps on the bundled model, choosing
each next plan itself, then prints the story. `make demo` runs it.

    python examples/story_demo.py [--steps 3] [--threads N] [--story FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from rich.console import Console

import memora
from memora.recurrent import Premise, StoryEngine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--story", type=Path, default=None, help="keep the story file here")
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    path = args.story or Path(tempfile.mkdtemp(prefix="memora-story-")) / "story.db"
    premise = Premise(
        "A lighthouse keeper finds a message in a bottle that predicts the next storm.",
        title="The Bottle at Gull Rock",
        genre="mystery",
        outline="1. The bottle arrives. 2. The storm it predicts comes true. 3. The keeper "
        "finds out who wrote it.",
    )
    console.rule(f"[bold]3. A {args.steps}-step story, written autonomously")
    with (
        memora.load_model("default", n_threads=args.threads) as llm,
        StoryEngine(llm, path) as engine,
    ):
        if engine.head is None:
            engine.create(premise)
        for _ in range(args.steps):
            step = engine.step()
            stats = step.stats
            console.print(
                f"[dim]step {step.depth} ({step.chosen_by}): plan: {step.plan}\n"
                f"{len(step.paragraph.split())} words, {stats.evaluated_tokens} of "
                f"{stats.prompt_tokens} prompt tokens evaluated, {stats.seconds:.1f} s[/]"
            )
        console.print()
        console.print(engine.export_markdown())
        console.print(f"[dim]short-term memory now: {engine.head.memory if engine.head else ''}")
        console.print(f"[dim]story file: {path} (memora story show {path})[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

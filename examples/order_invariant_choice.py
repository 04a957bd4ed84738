"""Order-invariant prompting: the same answer whatever order the options come in.

A plain prompt lists the options one after another, so the model reads them in that order and
its answer can change when they are shuffled. A SetPrompt gives every option the same start
position and hides the options from each other: the logits are identical, bit for bit, for
every order.

    python examples/order_invariant_choice.py [--threads N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

import numpy as np
from rich.console import Console

import memora
from memora.prompting import SetPrompt, choose


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args(argv)
    console = Console(highlight=False)

    question = "Which of these is a fruit?"
    options = ["A carrot", "An apple", "A potato", "Broccoli"]

    with memora.load_model("default", n_threads=args.threads) as llm:
        console.rule("[bold]1. A SetPrompt: identical logits for all 24 orders")
        prompt = SetPrompt.from_chat(
            llm, f"{question}\nOptions:\n", [f"- {o}\n" for o in options], "\nThe fruit is"
        )
        first = llm.logits(prompt)
        same = all(
            np.array_equal(llm.logits(prompt.ordered(order)), first)
            for order in itertools.permutations(range(len(options)))
        )
        console.print(f"bit-identical logits across every order: {'yes' if same else 'NO'}")
        plain = [
            llm.logits(prompt.ordered(order).concatenated())
            for order in itertools.permutations(range(len(options)))
        ]
        spread = max(float(np.abs(p - plain[0]).max()) for p in plain)
        console.print(f"the same text as a plain prompt: logits move by up to {spread:.2f}")

        console.rule("[bold]2. choose(): multiple choice without order bias")
        for method in ("likelihood", "label", "psc"):
            picks = {
                choose(llm, question, [options[i] for i in order], method=method, k=3).option
                for order in [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2)]
            }
            console.print(f"{method:>10}: {', '.join(sorted(picks))} (one answer for 3 orders)")
        plain_picks = [
            choose(llm, question, [options[i] for i in order], method="plain").option
            for order in [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2)]
        ]
        console.print(f"{'plain':>10}: {', '.join(plain_picks)} (answer per order)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

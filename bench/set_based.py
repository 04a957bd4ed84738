"""Order dependence, accuracy and cost of multiple choice: plain prompt vs set-based methods.

On the 60 four-option questions of bench/data/mcq.json, each asked in the 4 cyclic rotations of
its options (every option visits every slot once), with the bundled SmolLM2-135M-Instruct:

- ``plain``: one lettered prompt, the answer is the best label logit (order-dependent baseline);
- ``label``: the options as a SetPrompt, labels bound inside the items (order-invariant);
- ``likelihood``: each option's mean token log-probability, all options in one pass;
- ``psc``: permutation self-consistency, k shuffled plain prompts, majority vote.

Reported: the share of questions whose answer changes across the rotations, accuracy averaged
over rotations, and per-question cost (wall time, prompt tokens evaluated) as ratios against one
plain prompt (cold cache) and, for ``likelihood``, against scoring each option in its own call.

    python bench/set_based.py [--threads 1] [--k 4] [--limit 60]

Writes bench/results/set_based.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.progress import Progress

from memora.llm.llamacpp import LlamaCppLLM
from memora.prompting import choose
from memora.prompting.choose import _ANSWER, _letter_prompt

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "mcq.json"
RESULTS = HERE / "results" / "set_based.json"
METHODS = ("plain", "label", "likelihood", "psc")


def rotations(n: int) -> list[list[int]]:
    return [[(start + j) % n for j in range(n)] for start in range(n)]


def plain_tokens(llm: LlamaCppLLM, question: str, options: list[str]) -> int:
    return llm.count_tokens(llm.render_chat(_letter_prompt(question, options)) + _ANSWER)


def method_tokens(llm: LlamaCppLLM, method: str, question: str, options: list[str], k: int) -> int:
    """Prompt tokens each method evaluates for one question (KV cells for set prompts)."""
    if method == "plain":
        return plain_tokens(llm, question, options)
    if method == "psc":
        return k * plain_tokens(llm, question, options)
    if method == "likelihood":
        prefix = llm.count_tokens([{"role": "user", "content": question}])
        return prefix + sum(len(llm.tokenize(o)) for o in options)
    # label: the set prompt's cells, as choose() builds it
    from memora.prompting.choose import _INSTRUCTION
    from memora.prompting.set_prompt import SetPrompt

    items = [f"A. {o}\n" for o in options]
    prompt = SetPrompt.from_chat(
        llm, f"{question}\n\nOptions:\n", items, f"\n{_INSTRUCTION}", answer_prefix=_ANSWER
    )
    return llm.count_tokens(prompt)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--k", type=int, default=4, help="shuffles for psc")
    parser.add_argument("--limit", type=int, default=60, help="questions to use")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    questions = json.loads(DATA.read_text())["questions"][: args.limit]
    llm = LlamaCppLLM("default", n_ctx=2048, n_threads=args.threads, seed=0)

    per_question: list[dict[str, Any]] = []
    seconds: dict[str, list[float]] = {m: [] for m in METHODS}
    seconds["likelihood_per_option"] = []
    tokens: dict[str, list[int]] = {m: [] for m in METHODS}
    tokens["likelihood_per_option"] = []
    with Progress() as progress:
        task = progress.add_task("questions", total=len(questions))
        for q in questions:
            options, answer = q["options"], q["options"][q["answer"]]
            record: dict[str, Any] = {"id": q["id"], "answers": {}}
            for method in METHODS:
                picks = []
                for order in rotations(len(options)):
                    shown = [options[i] for i in order]
                    llm.reset_cache()  # every method starts cold
                    choice, secs = timed(
                        lambda text=q["question"], shown=shown, method=method: choose(
                            llm, text, shown, method=method, k=args.k, seed=0
                        )
                    )
                    picks.append(choice.option)
                    seconds[method].append(secs)
                tokens[method].append(method_tokens(llm, method, q["question"], options, args.k))
                record["answers"][method] = picks
            # likelihood the naive way: one call per option, each decoding the question again
            llm.reset_cache()
            context = [{"role": "user", "content": q["question"]}]
            _, secs = timed(
                lambda context=context, options=options: [
                    (llm.reset_cache(), llm.continuation_logprobs(context, [o])) for o in options
                ]
            )
            seconds["likelihood_per_option"].append(secs)
            tokens["likelihood_per_option"].append(
                sum(llm.count_tokens(context) + len(llm.tokenize(o)) for o in options)
            )
            record["correct"] = answer
            per_question.append(record)
            progress.advance(task)
    llm.close()

    summary: dict[str, Any] = {}
    for method in METHODS:
        answers = [r["answers"][method] for r in per_question]
        changed = sum(len(set(a)) > 1 for a in answers)
        accuracy = statistics.mean(
            statistics.mean(pick == r["correct"] for pick in r["answers"][method])
            for r in per_question
        )
        summary[method] = {
            "order_dependent_share": round(changed / len(per_question), 4),
            "accuracy_mean_over_orders": round(accuracy, 4),
            "seconds_per_call_median": round(statistics.median(seconds[method]), 4),
            "prompt_tokens_per_question_mean": round(statistics.mean(tokens[method]), 1),
        }
    base_s = summary["plain"]["seconds_per_call_median"]
    base_t = summary["plain"]["prompt_tokens_per_question_mean"]
    for method in METHODS:
        summary[method]["time_ratio_vs_plain"] = round(
            summary[method]["seconds_per_call_median"] / base_s, 3
        )
        summary[method]["token_ratio_vs_plain"] = round(
            summary[method]["prompt_tokens_per_question_mean"] / base_t, 3
        )
    one_pass = statistics.median(seconds["likelihood"])
    naive = statistics.median(seconds["likelihood_per_option"])
    summary["likelihood_one_pass_vs_per_option"] = {
        "seconds_one_pass_median": round(one_pass, 4),
        "seconds_per_option_calls_median": round(naive, 4),
        "time_ratio": round(one_pass / naive, 3),
        "token_ratio": round(
            statistics.mean(tokens["likelihood"])
            / statistics.mean(tokens["likelihood_per_option"]),
            3,
        ),
    }
    result = {
        "benchmark": "set_based",
        "model": "SmolLM2-135M-Instruct.Q4_1 (bundled)",
        "better_model": "none: no better instruct GGUF with a clear licence installs offline",
        "questions": len(per_question),
        "orders_per_question": 4,
        "psc_k": args.k,
        "threads": args.threads,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "llama_cpp_python": version("llama-cpp-python"),
        },
        "summary": summary,
        "per_question": per_question,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""The most a story step's prompt tokens can come from the KV cache, in the engine's default
("separate") layout: what changes every step by design must be evaluated every step.

Reads a long-run result of ``bench/story.py`` (default ``results/story_long.json``), counts its
paragraphs' tokens with the bundled model's tokenizer, converts the short-term memory's
characters to tokens at the paragraphs' ratio, and takes the plan's length from the opening plan.
New by design each step: in the writer, the last paragraph, the memory, the ``top_k`` = 3
retrieved paragraphs and the plan; in the planner, the memory and the new paragraph.

    python bench/story_share_bound.py [results/story_long.json]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from memora.llm.llamacpp import LlamaCppLLM

RESULT = Path(__file__).resolve().parent / "results" / "story_long.json"


def main() -> None:
    data = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else RESULT).read_text("utf-8"))
    run = data["lore_run"]
    llm = LlamaCppLLM("default", n_ctx=4096, n_threads=1)
    tokens = [llm.count_tokens(p) for p in run["story"]]
    chars_per_token = sum(len(p) for p in run["story"]) / sum(tokens)
    paragraph = statistics.mean(tokens)
    memory = statistics.mean(s["memory_chars"] for s in run["per_step"]) / chars_per_token
    plan = llm.count_tokens(data["opening_plan"])
    prompt = statistics.mean(s["prompt_tokens"] for s in run["per_step"])
    new = {
        "writer: last paragraph": paragraph,
        "writer: short-term memory": memory,
        "writer: 3 retrieved paragraphs": 3 * paragraph,
        "writer: plan": plan,
        "planner: short-term memory": memory,
        "planner: the new paragraph": paragraph,
    }
    total = sum(new.values())
    out = {
        "chars_per_token": round(chars_per_token, 2),
        "prompt_tokens_per_step_mean": round(prompt, 1),
        "new_by_design": {k: round(v, 1) for k, v in new.items()},
        "new_by_design_total": round(total, 1),
        "share_bound": round(1 - total / prompt, 3),
        "share_bound_if_retrieval_were_cached": round(1 - (total - 3 * paragraph) / prompt, 3),
        "measured_share": run["cache_share_per_step_mean"],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

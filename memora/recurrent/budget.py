"""Whether a story fits the model's context: checked before a story file is created, and when
a fact is pinned, so a story can never reach a state in which no step fits.

A step's prompts hold the story's facts (premise, outline, pinned facts) and then parts whose
size the engine bounds: the short-term memory (``memory_chars``), the retrieved paragraphs
(``top_k``) and the last one (each at most ``paragraph_tokens``), and a plan. The check fills
those parts to their bounds with filler text and counts the tokens with the model itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from memora.errors import ContextOverflowError
from memora.llm.base import LLM
from memora.recurrent.messages import (
    PLAN_CHARS,
    planner_messages,
    story_context,
    writer_messages,
)
from memora.recurrent.types import Premise, Step, StoryOptions

__all__ = ["check_story_fits"]


def _filler(tokens: int) -> str:
    """About ``tokens`` tokens of plain words (one token each in common vocabularies)."""
    return " ".join(["the"] * max(tokens, 1))


def check_story_fits(
    llm: LLM, premise: Premise, pinned: Sequence[str], options: StoryOptions
) -> None:
    """Raise :class:`ContextOverflowError` naming what to shorten unless both prompts of a step
    (at their bounds) plus their output caps fit ``llm``'s context."""
    context = story_context(premise, pinned)
    memory = _filler(options.memory_chars // 4)
    paragraph = _filler(options.paragraph_tokens)
    last = Step(0, None, 1, "", "opening", paragraph, memory, ())
    retrieved = [last] * options.top_k
    lore = _filler(options.lore_budget) if options.lore_budget else ""
    writer = writer_messages(context, memory, retrieved, last, "x" * PLAN_CHARS, lore=lore)
    planner = planner_messages(context, memory, paragraph)
    need = max(
        llm.count_tokens(writer) + options.paragraph_tokens,
        llm.count_tokens(planner) + options.plan_tokens,
    )
    if need <= llm.n_ctx:
        return
    facts = llm.count_tokens(context)
    raise ContextOverflowError(
        f"the story does not fit {llm.name}'s context of {llm.n_ctx} tokens: its premise, "
        f"outline and pinned facts take {facts} tokens, and a step needs {need} in all "
        f"(with the memory, {options.top_k} retrieved paragraphs, the last one and the output "
        "at their bounds). Fix: shorten the premise or the outline, pin fewer facts, or use a "
        "larger context (--n-ctx)",
        prompt_tokens=need,
        max_tokens=max(options.paragraph_tokens, options.plan_tokens),
        n_ctx=llm.n_ctx,
    )

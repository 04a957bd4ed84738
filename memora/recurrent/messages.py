"""The story engine's prompts and output checks.

Every prompt is a file of ``memora/recurrent/prompts/`` filled by :mod:`memora.templates`
(one pass over the template: user text such as a premise that says ``{plan}`` is never
substituted). Both calls' prompts share their start (system text, story facts, lore) and go
from most stable to most volatile; each call runs in its own KV cache slot, so llama.cpp
reuses its prefix from one step to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memora import templates
from memora.memory.types import normalize_text
from memora.recurrent.types import Premise, Step

__all__ = [
    "PLAN_CHARS",
    "Messages",
    "finished_plan",
    "memory_problem",
    "paragraph_problem",
    "plan_schema",
    "planner_messages",
    "planner_turns",
    "plans_problem",
    "render",
    "story_context",
    "whole_sentences",
    "writer_messages",
]

Messages = list[dict[str, str]]

#: The plan schema's bound on one plan: above what "one short sentence" takes, so that the
#: grammar rarely has to close a plan in the middle of a word (:func:`finished_plan`).
PLAN_CHARS = 200


def render(name: str, **values: str) -> str:
    """The story prompt ``prompts/<name>.txt`` (package data) filled by
    :func:`memora.templates.render`: one pass over the template, so text inside a value (a
    premise that says ``{plan}``) is never substituted."""
    return templates.render("memora.recurrent", name, **values).strip()


def story_context(premise: Premise, pinned: Sequence[str]) -> str:
    """The story's facts: title, genre, premise, outline and the pinned facts."""
    return render(
        "story_context",
        title=premise.title or "(untitled)",
        genre=premise.genre or "(any)",
        premise=premise.premise,
        outline=premise.outline or "(none)",
        pinned="; ".join(pinned) or "(none)",
    )


def writer_messages(
    context: str,
    memory: str,
    retrieved: Sequence[Step],
    last: Step | None,
    plan: str,
    *,
    lore: str = "",
    note: str = "",
    continued: bool = False,
) -> Messages:
    """The paragraph prompt. ``lore``: the triggered lorebook entries (rendered); ``note``:
    the author's note, put just before the last paragraph. ``continued``: start with the
    planner's worked example, so that :func:`planner_turns` can continue this conversation."""
    passages = "\n".join(f"- {s.paragraph}" for s in retrieved) or "(none)"
    user = render(
        "writer_user",
        context=context,
        lore=f"World notes:\n{lore}\n" if lore.strip() else "",
        memory=memory,
        retrieved=passages,
        note=f"Author's note: {note.strip()}\n\n" if note.strip() else "",
        last=last.paragraph if last else "(the story has not started)",
        plan=plan,
    )
    start = _example_turns() if continued else [{"role": "system", "content": render("system")}]
    return [*start, {"role": "user", "content": user}]


def _example_turns() -> Messages:
    return [
        {"role": "system", "content": render("system")},
        {"role": "user", "content": render("planner_example_user")},
        {"role": "assistant", "content": render("planner_example_answer")},
    ]


def planner_turns(writer: Messages, paragraph: str) -> Messages:
    """The summary-and-plans prompt of the ``"continued"`` layout: the writer's conversation
    (made with ``continued=True``), the paragraph as its answer, then the task. Its whole
    start is the writer's prompt, served from the KV cache; on the bundled 135M model the
    worked example's names leak into the story in this layout (see :func:`planner_messages`)."""
    return [
        *writer,
        {"role": "assistant", "content": paragraph},
        {"role": "user", "content": render("planner_task")},
    ]


def planner_messages(context: str, memory: str, paragraph: str) -> Messages:
    """The summary-and-plans prompt: the writer's start, then one worked example (another
    story) as an earlier turn, then the task.

    This is the ``"separate"`` layout (the default): its own conversation, sharing only the
    system text and the story's facts with the writer. On the bundled 135M model every layout
    that continued the writer's conversation (so that its whole prompt comes from the KV
    cache) hurt the answers: with the worked example first, its names leaked into the story;
    without it, the model filled in placeholders or copied its previous answer."""
    user = render("planner_user", context=context, memory=memory, paragraph=paragraph)
    return [
        {"role": "system", "content": render("system")},
        {"role": "user", "content": render("planner_example_user")},
        {"role": "assistant", "content": render("planner_example_answer")},
        {"role": "user", "content": user},
    ]


def plan_schema(memory_chars: int) -> dict[str, Any]:
    """Bounds in the schema: without them small models answer with placeholders."""
    return {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "minLength": 40, "maxLength": memory_chars},
            "plans": {
                "type": "array",
                "minItems": 3,
                "maxItems": 3,
                "items": {"type": "string", "minLength": 15, "maxLength": PLAN_CHARS},
            },
        },
        "required": ["summary", "plans"],
        "additionalProperties": False,
    }


def finished_plan(plan: str) -> str:
    """``plan`` as it is, or, when the schema's bound cut it off, back to its last whole
    sentence (else its last whole word and an ellipsis): never a plan cut mid-word."""
    plan = plan.strip()
    if len(plan) < PLAN_CHARS:
        return plan
    sentence = whole_sentences(plan)
    if sentence != plan:
        return sentence
    return plan[: plan.rfind(" ")].rstrip(" ,;:") + "…" if " " in plan else plan


def whole_sentences(text: str) -> str:
    """Drop a sentence cut off by the token cap (when at least one sentence is complete)."""
    end = max(text.rfind(mark) for mark in (".", "!", "?", '."', '!"', '?"'))
    return text[: end + 1] if end > len(text) // 3 else text


def paragraph_problem(text: str, last: Step | None, prompt: str) -> str:
    """Why a paragraph is refused ("" when it is usable)."""
    words = text.split()
    if len(words) < 25:
        return f"the paragraph has {len(words)} words; write 80 to 150"
    if last is not None and normalize_text(text) == normalize_text(last.paragraph):
        return "the paragraph repeats the last one"
    if "Plan for the next paragraph" in text or normalize_text(text) in normalize_text(prompt):
        return "the paragraph copies the instructions"
    return ""


def plans_problem(plans: list[str], head: Step | None) -> str:
    """Why three plans are refused ("" when they are usable)."""
    distinct = {normalize_text(p) for p in plans}
    if len(distinct) < 3:
        return "the three plans must be different from each other"
    if head is not None and distinct == {normalize_text(p) for p in head.plans}:
        return "the plans repeat the previous ones; propose new ones"
    return ""


def memory_problem(summary: str, old: str, bound: int) -> str:
    """Why a new summary does not replace the old one ("" when it does)."""
    if not summary.strip():
        return "empty"
    if len(summary) > bound:
        return "too long"
    if normalize_text(summary) == normalize_text(old):
        return "unchanged"
    return ""

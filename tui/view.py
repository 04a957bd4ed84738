"""What the main screen shows of a story, as Rich markup: drawn from the story file alone (the
one source of truth), with no widgets, so the app only puts each text in its place."""

from __future__ import annotations

from dataclasses import dataclass

from memora.recurrent.engine import StoryEngine
from memora.recurrent.types import Step

__all__ = ["StoryView", "clip", "draw", "escape", "stats"]


@dataclass(frozen=True)
class StoryView:
    """The markup of each pane of the main screen (``memory`` is plain text: it is edited)."""

    paragraphs: str
    plans: str
    memory: str
    retrieved: str
    stats: str
    note: str = ""  # the author's note ("": none)


def draw(engine: StoryEngine) -> StoryView:
    """Every pane for the current branch of ``engine``'s story (empty panes when the file holds
    no story yet)."""
    exists = engine.file.exists
    path = engine.path() if exists else []
    head = path[-1] if path else None
    title = engine.premise.title if exists else ""
    text = "\n\n".join(f"[dim]#{s.id}[/] {escape(s.paragraph)}" for s in path)
    plans = "\n".join(f"[b]{n}[/] {escape(p)}" for n, p in enumerate(head.plans, 1)) if head else ""
    by_id = {s.id: s for s in path}
    retrieved = [by_id[i] for i in (head.retrieved if head else ()) if i in by_id]
    return StoryView(
        paragraphs=(f"[b]{escape(title)}[/]\n\n" if title else "")
        + (text or "[dim](no paragraphs yet)[/]"),
        plans=plans or "[dim]no plans yet[/]",
        memory=head.memory if head else "",
        retrieved="\n".join(f"[dim]#{s.id}[/] {escape(clip(s.paragraph, 60))}" for s in retrieved)
        or "[dim](none)[/]",
        stats=stats(engine, head),
        note=escape(engine.author_note) if exists else "",
    )


def stats(engine: StoryEngine, head: Step | None) -> str:
    """The model pane: the model's name and temperature, and what writing ``head`` took."""
    llm = engine.llm
    lines = [escape(llm.name), f"temperature {engine.temperature:g}"]
    if head is not None:
        done = head.stats
        speed = done.completion_tokens / done.seconds if done.seconds else 0.0
        lines += [
            f"context {done.prompt_tokens}/{llm.n_ctx}",
            f"wrote {done.completion_tokens} tok",
            f"{done.seconds:.1f} s, {speed:.1f} tok/s",
        ]
        versions = [s.id for s in engine.swipes(head.id)]
        if len(versions) > 1:  # swipes: w writes another, [ and ] flick
            lines.append(f"version {versions.index(head.id) + 1} of {len(versions)}")
    return "\n".join(lines)


def escape(text: str) -> str:
    """``text`` shown as it is: a ``[`` does not start Rich markup."""
    return text.replace("[", r"\[")


def clip(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters, the last one an ellipsis when it was longer."""
    return text if len(text) <= n else text[: n - 1] + "…"

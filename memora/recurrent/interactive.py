"""What a person playing a story does besides writing steps: swipes (other versions of the
latest paragraph, kept as siblings), the author's note, and lorebook changes proposed by the
story bible for a person to accept. Mixed into :class:`~memora.recurrent.engine.StoryEngine`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from memora.errors import ConfigError
from memora.recurrent.bible import LoreChange, apply_changes, propose_changes
from memora.recurrent.types import ChosenBy, Step

if TYPE_CHECKING:
    from memora.llm.base import LLM
    from memora.recurrent.lore import Lorebook, LoreEntry
    from memora.recurrent.storyfile import StoryFile

__all__ = ["Interactive"]


class Interactive:
    """Swipes, the author's note and lore proposals of a story engine."""

    llm: LLM
    file: StoryFile
    lore: Lorebook
    _base: int
    _swipe: int

    if TYPE_CHECKING:  # the engine's

        @property
        def head(self) -> Step | None: ...

        def step(self, plan: str | None = None, *, chosen_by: ChosenBy | None = None,
                 on_text: Callable[[str], None] | None = None,
                 on_plan_text: Callable[[str], None] | None = None) -> Step: ...  # fmt: skip

        def branch(self, step_id: int) -> Step: ...

        def _triggered(self, text: str) -> list[LoreEntry]: ...

    # -- swipes: alternatives of the latest paragraph ------------------------------------

    def swipe(self, *, on_text: Callable[[str], None] | None = None,
              on_plan_text: Callable[[str], None] | None = None) -> Step:  # fmt: skip
        """Write another version of the latest paragraph (same parent, same plan, other
        seeds); it is kept beside the others as a sibling and becomes the head. Raises
        :class:`StepError` (the head unchanged) when the model gives nothing usable."""
        head = self.head
        if head is None:
            raise ConfigError("the story is empty: write a step before asking for another version")
        self.file.set_head(head.parent_id)
        self._swipe = len(self.swipes(head.id))
        try:
            plan = None if head.chosen_by == "opening" else head.plan
            chosen_by = None if head.chosen_by == "opening" else head.chosen_by
            return self.step(plan, chosen_by=chosen_by, on_text=on_text, on_plan_text=on_plan_text)
        except BaseException:
            self.file.set_head(head.id)
            raise
        finally:
            self._swipe = 0

    def swipes(self, step_id: int | None = None) -> list[Step]:
        """The versions of a step (default: the head): it and its siblings, oldest first."""
        step = self.file.step(step_id) if step_id is not None else self.head
        if step is None:
            return []
        return [s for s in self.file.steps() if s.parent_id == step.parent_id]

    def flick(self, offset: int) -> Step:
        """Make the version ``offset`` places from the head (-1: the one before) the head;
        continuing writes from it. Stops at the first and the last."""
        head = self.head
        if head is None:
            raise ConfigError("the story is empty: there is nothing to flick through")
        versions = self.swipes(head.id)
        at = [s.id for s in versions].index(head.id)
        return self.branch(versions[max(0, min(len(versions) - 1, at + offset))].id)

    @property
    def author_note(self) -> str:
        """A short instruction in every paragraph prompt, just before the last paragraph."""
        return self.file.author_note

    def set_author_note(self, text: str) -> None:
        """Set (or, with "", clear) the author's note; the next step reads it."""
        if len(text) > 500:
            raise ConfigError(f"the author's note has {len(text)} characters; keep it under 500")
        self.file.set_author_note(text)

    def propose_lore(self, step_id: int | None = None) -> list[LoreChange]:
        """The story bible's proposed lorebook changes for a step's paragraph (default: the
        head's), for a person to accept or reject (:meth:`apply_lore`). One model call."""
        step = self.file.step(step_id) if step_id is not None else self.head
        if step is None:
            raise ConfigError("the story is empty: write a step before asking for lore changes")
        return self._proposals(step.paragraph)

    def _proposals(self, paragraph: str) -> list[LoreChange]:
        """One story bible call for ``paragraph``, given the entries it triggers."""
        return propose_changes(self.llm, paragraph, self._triggered(paragraph), seed=self._base)

    def apply_lore(self, changes: Sequence[LoreChange], step_id: int | None = None) -> None:
        """Apply changes a person accepted (in the lore history, undoable)."""
        step = self.file.step(step_id) if step_id is not None else self.head
        apply_changes(self.lore, changes, step.paragraph if step else "", mode="person")

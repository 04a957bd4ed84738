"""The actions on the story's versions and its world: another version of the latest paragraph
(a swipe) and flicking between them, the author's note, the lorebook, and the story bible's
proposals for it."""

from __future__ import annotations

from memora.tui.base import StoryAppBase
from memora.tui.lore import LoreScreen
from memora.tui.prompt import InputMode
from memora.tui.proposals import ProposalsScreen
from textual import work

from memora.cli.boundary import as_memora_error
from memora.errors import MemoraError
from memora.recurrent.bible import LoreChange

__all__ = ["ToolActions"]


class ToolActions(StoryAppBase):
    """Swipes, the author's note, the lorebook and its proposals (bound in :class:`StoryApp`)."""

    # -- swipes --------------------------------------------------------------------------

    def action_swipe(self) -> None:
        if self.head_if_idle() is not None:
            self.generate(None, None, 1, swipe=True)

    def action_flick(self, offset: int) -> None:
        head = self.head_if_idle()
        if head is None:
            return
        versions = [s.id for s in self.engine.swipes()]
        if len(versions) < 2:
            self.set_status("this paragraph has one version: w writes another")
            return
        at = max(0, min(len(versions) - 1, versions.index(head.id) + offset))
        self.safely(
            lambda: self.engine.flick(offset),
            f"version {at + 1} of {len(versions)} (w writes another, [ and ] flick)",
        )

    # -- the author's note ---------------------------------------------------------------

    def action_author_note(self) -> None:
        if self.idle() and self.engine.file.exists:
            self.ask(InputMode.AUTHOR_NOTE, self.engine.author_note)

    def set_note(self, text: str) -> None:
        """Save the author's note (an empty one clears it)."""
        done = "author's note saved: the next paragraph reads it" if text else "note cleared"
        self.safely(lambda: self.engine.set_author_note(text), done)

    # -- the lorebook --------------------------------------------------------------------

    def action_lore(self) -> None:
        if self.idle() and self.engine.file.exists:
            self.push_screen(LoreScreen(self.engine.lore), lambda _: self.refresh_story())

    def action_propose_lore(self) -> None:
        if self.head_if_idle() is None:
            return
        self.busy = True
        self.set_status("the story bible reads the latest paragraph...")
        self._propose()

    @work(thread=True, exclusive=True, group="story")
    def _propose(self) -> None:
        try:
            changes = self.engine.propose_lore()
        except Exception as exc:  # the same boundary as the command line's
            error = as_memora_error(exc)
            if error is None:
                raise
            self.call_from_thread(self._proposed, error)
            return
        self.call_from_thread(self._proposed, changes)

    def _proposed(self, changes: list[LoreChange] | MemoraError) -> None:
        self.busy = False
        if isinstance(changes, MemoraError):
            self.show_error(changes)
        elif not changes:
            self.set_status("the story bible proposes nothing for the latest paragraph")
        else:
            self.set_status(f"the story bible proposes {len(changes)}: y accepts, n rejects")
            self.push_screen(ProposalsScreen(changes), self._decided)

    def _decided(self, accepted: list[LoreChange] | None) -> None:
        if not accepted:
            self.set_status("no lore changes applied")
            return
        names = ", ".join(c.name for c in accepted)
        self.safely(
            lambda: self.engine.apply_lore(accepted),
            f"lore changes applied: {names} (l shows the lorebook, u there undoes)",
        )

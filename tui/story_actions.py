"""The actions that write and steer the story: follow a plan, let the model pick, write your
own or an edited plan, rewrite a paragraph, edit the memory, undo, switch branch."""

from __future__ import annotations

from memora.tui.base import StoryAppBase
from memora.tui.prompt import InputMode
from memora.tui.screens import EditScreen
from memora.tui.tree import BranchScreen, TreeChoice
from textual.widgets import TextArea

from memora.errors import MemoraError

__all__ = ["StoryActions"]


class StoryActions(StoryAppBase):
    """Plans, paragraphs, memory and branches (bound to keys in :class:`StoryApp`)."""

    # -- plans ---------------------------------------------------------------------------

    def action_pick(self, number: int) -> None:
        if not self.idle() or not self.engine.file.exists:
            return
        head = self.engine.head
        if head is None:
            self.generate(None, None, 1)  # the opening
        else:
            self.generate(head.plans[number - 1], "person", 1)

    def action_model_picks(self) -> None:
        if self.idle() and self.engine.file.exists:
            self.generate(None, None, 1)

    def action_continue_steps(self) -> None:
        if self.idle() and self.engine.file.exists:
            self.ask(InputMode.STEPS, "3")

    def action_own_plan(self) -> None:
        if self.head_if_idle() is not None:
            self.ask(InputMode.OWN_PLAN)

    def action_edit_plan(self) -> None:
        if self.head_if_idle() is not None:
            self.ask(InputMode.WHICH_PLAN)

    # -- paragraphs and branches ---------------------------------------------------------

    def action_rewrite(self) -> None:
        head = self.head_if_idle()
        if head is not None:
            self.open_editor(head.id)

    def open_editor(self, step_id: int) -> None:
        """Edit the paragraph of step ``step_id`` in a pop-up; saving it rewrites the step."""
        try:
            step = self.engine.file.step(step_id)
        except MemoraError as exc:
            self.show_error(exc)
            return

        def save(text: str | None) -> None:
            if text is not None:
                self.safely(
                    lambda: self.engine.edit_paragraph(step_id, text),
                    f"step #{step_id} rewritten: later steps read the new text",
                )

        self.push_screen(EditScreen(f"Paragraph #{step_id}", step.paragraph), save)

    def action_undo(self) -> None:
        if self.head_if_idle() is not None:
            self.safely(self.engine.undo, "undone (the step stays as a branch: b shows it)")

    def action_branches(self) -> None:
        if self.idle() and self.engine.file.exists:
            self.push_screen(BranchScreen(self.engine.file), self._tree_choice)

    def _tree_choice(self, choice: TreeChoice | None) -> None:
        if choice is None:
            return
        if choice.action == "rewrite":
            self.open_editor(choice.step_id)
        else:
            self.safely(
                lambda: self.engine.branch(choice.step_id),
                f"continuing from #{choice.step_id}: the next step starts a branch there",
            )

    # -- the memory ----------------------------------------------------------------------

    def action_edit_memory(self) -> None:
        if self.head_if_idle() is None:
            return
        memory = self.query_one("#memory", TextArea)
        memory.read_only = False
        memory.focus()
        self.set_status("editing the memory: ctrl+s saves it, esc drops the edit")

    def action_save_memory(self) -> None:
        memory = self.query_one("#memory", TextArea)
        if memory.read_only:
            return
        text = memory.text
        self.safely(lambda: self.engine.edit_memory(text), "memory saved: the next step reads it")

    def editing_memory(self) -> bool:
        return not self.query_one("#memory", TextArea).read_only

    def drop_memory_edit(self) -> None:
        self.refresh_story()
        self.query_one("#story").focus()
        self.set_status("memory edit dropped")

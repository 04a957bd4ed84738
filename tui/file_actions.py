"""The actions on story files: start a new story, open another, save a copy and go on in it,
export to Markdown. The story file is the one source of truth: every finished step is saved
as it completes, so there is no "save"."""

from __future__ import annotations

from pathlib import Path

from memora.tui.base import StoryAppBase
from memora.tui.files import OpenScreen, copy_story, free_name, probe
from memora.tui.prompt import InputMode
from memora.tui.screens import NewStory, NewStoryScreen

from memora.errors import MemoraError
from memora.recurrent.budget import check_story_fits
from memora.recurrent.engine import StoryEngine

__all__ = ["FileActions"]


class FileActions(StoryAppBase):
    """New, open, save as and export (bound to keys in :class:`StoryApp`)."""

    def opened(self, *, first: bool = False) -> None:
        """Draw the story just opened, or ask for a premise when the file holds none yet (esc
        then quits when this is the app's first story: there is nothing to go back to)."""
        self.sub_title = self.engine.file.path.name
        self.refresh_story()
        if not self.engine.file.exists:
            self.push_screen(NewStoryScreen(self.config.model, quit_on_escape=first), self._created)
        elif self.engine.head is None:
            self.set_status("press m to write the opening; ? lists the keys")
        else:
            self.set_status("1-3 follow a plan, m lets the model pick; ? lists the keys")

    def action_new_story(self) -> None:
        if self.idle():
            folder = self.engine.file.path.parent
            self.push_screen(
                NewStoryScreen(
                    self.config.model, path=free_name(folder / "story.db"), quit_on_escape=False
                ),
                self._created,
            )

    def _created(self, new: NewStory | None) -> None:
        if new is None:
            self.set_status("no story started: ctrl+n starts one, ctrl+o opens one")
            return

        def start() -> None:
            try:  # before a new file is made: a story that cannot fit never starts
                check_story_fits(self.engine.llm, new.premise, [], self.engine.options)
            except MemoraError as exc:
                self.show_error(exc)
                return
            if new.path is not None and not self.switch(new.path):
                return
            if self.engine.file.exists:
                self.set_status(f"{self.engine.file.path} holds a story already; opened it")
                self.refresh_story()
                return
            self.engine.create(new.premise)
            self.refresh_story()
            self.generate(None, None, 1)

        if new.model != self.config.model:
            self.reload(self.config.model_copy(update={"model": new.model}), then=start)
        else:
            start()

    def action_open_story(self) -> None:
        if self.idle():
            current = self.engine.file.path
            self.push_screen(OpenScreen(current.parent, current), self._open_picked)

    def _open_picked(self, path: Path | None) -> None:
        if path is not None and self.switch(path):
            self.opened()

    def switch(self, path: Path) -> bool:
        """Close the story file and open ``path`` (with the same model); False on failure."""
        if path.resolve() == self.engine.file.path.resolve():
            return True
        try:
            probe(path)
            engine = StoryEngine(
                self.engine.llm, path, embedder=self.embedder, **self.engine_options
            )
        except MemoraError as exc:
            self.show_error(exc)
            return False
        self.engine.close()
        self.engine = engine
        self.sub_title = path.name
        return True

    def action_save_as(self) -> None:
        if self.idle() and self.engine.file.exists:
            path = self.engine.file.path
            self.ask(InputMode.SAVE_AS, str(path.with_name(f"{path.stem}-copy{path.suffix}")))

    def save_as(self, target: Path) -> None:
        """Copy the story to ``target`` and go on writing in the copy."""
        try:
            copy_story(self.engine.file.path, target)
        except (MemoraError, OSError) as exc:
            self.set_status(f"not saved: {exc}", error=True)
            return
        if self.switch(target):
            self.opened()
            self.set_status(f"saved a copy as {target}; writing on in the copy")

    def action_export(self) -> None:
        if not self.loaded:
            self.idle()  # says why not
            return
        if not self.engine.file.exists:
            return
        target = self.engine.file.path.with_suffix(".md")
        try:
            target.write_text(self.engine.export_markdown(), encoding="utf-8")
        except OSError as exc:
            self.set_status(f"not exported: {exc}", error=True)
            return
        self.set_status(f"exported to {target}")

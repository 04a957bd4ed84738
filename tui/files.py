"""Story files on disk: which files hold stories, a safe probe before opening one, save-as by
SQLite's online backup, and the screen that opens another story."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from memora.errors import ConfigError, MemoraError
from memora.recurrent.storyfile import StoryFile, StoryInfo

__all__ = ["OpenScreen", "StoryInfo", "copy_story", "find_stories", "free_name", "probe"]

SUFFIXES = (".db", ".sqlite", ".sqlite3", ".story")


def probe(path: Path) -> StoryInfo | None:
    """The story in ``path`` (see :meth:`StoryFile.probe`: reads without writing, so pointing
    the app at some other database changes nothing)."""
    return StoryFile.probe(path)


def find_stories(folder: Path) -> list[StoryInfo]:
    """The story files directly in ``folder``, by name (files that are not stories are skipped)."""
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix not in SUFFIXES or not path.is_file():
            continue
        try:
            info = probe(path)
        except MemoraError:
            continue
        if info is not None:
            found.append(info)
    return found


def free_name(path: Path) -> Path:
    """``path``, or ``stem-2``, ``stem-3``... when taken."""
    n = 2
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def copy_story(source: Path, target: Path) -> None:
    """Copy the story file ``source`` to ``target`` (a consistent copy while it is open; never
    over an existing file)."""
    if target.exists():
        raise ConfigError(f"{target} exists already; give a new file name to save a copy")
    if target.suffix not in SUFFIXES:
        raise ConfigError(f"{target.name}: give a story file name ending in .db")
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


class OpenScreen(ModalScreen[Path | None]):
    """Pick a story file from ``folder`` with the arrows, or type a path (a new file starts a
    new story). Returns the path, or None on esc."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]
    DEFAULT_CSS = """
    OpenScreen { align: center middle; }
    #open { width: 76; height: 20; border: thick $primary; padding: 0 1; }
    #open-list { height: 1fr; }
    #open-error { color: $error; }
    """

    def __init__(self, folder: Path, current: Path) -> None:
        super().__init__()
        self.folder = folder
        self.current = current

    def compose(self) -> ComposeResult:
        stories = find_stories(self.folder)
        with Vertical(id="open"):
            yield Label(f"Open a story in {self.folder} (enter opens, tab: type a path, esc)")
            yield OptionList(
                *[
                    Option(
                        f"{s.path.name}  {s.title or '(untitled)'}  ({s.steps} steps)"
                        + ("  (open now)" if s.path.resolve() == self.current.resolve() else ""),
                        id=str(s.path),
                    )
                    for s in stories
                ],
                id="open-list",
            )
            yield Input(
                value=str(self.folder) + "/", placeholder="path of a story file", id="open-path"
            )
            yield Label("", id="open-error")

    def on_mount(self) -> None:
        options = self.query_one("#open-list", OptionList)
        (options if options.option_count else self.query_one("#open-path", Input)).focus()

    @on(OptionList.OptionSelected, "#open-list")
    def picked(self, event: OptionList.OptionSelected) -> None:
        assert event.option.id is not None
        self._open(Path(event.option.id))

    @on(Input.Submitted, "#open-path")
    def typed(self, event: Input.Submitted) -> None:
        self._open(Path(event.value.strip()).expanduser())

    def _open(self, path: Path) -> None:
        try:
            probe(path)
        except MemoraError as exc:
            self.query_one("#open-error", Label).update(str(exc))
            return
        self.dismiss(path)

    def action_back(self) -> None:
        self.dismiss(None)

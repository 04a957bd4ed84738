"""Story files on disk: which files hold stories, a safe probe before opening one, save-as by
SQLite's online backup, and the screen that opens another story."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from memora.errors import ConfigError

__all__ = ["OpenScreen", "StoryInfo", "copy_story", "find_stories", "probe"]

SUFFIXES = (".db", ".sqlite", ".sqlite3", ".story")


@dataclass(frozen=True)
class StoryInfo:
    path: Path
    title: str
    steps: int


def probe(path: Path) -> StoryInfo | None:
    """The story in ``path``; None when there is no file yet (a new story goes there).

    Reads without writing, so pointing the app at some other database changes nothing: a file
    that is not a story raises :class:`ConfigError` naming the fix.
    """
    if not path.exists():
        return None
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give a story file such as {path}/story.db")
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "story_meta" not in tables:
                if tables:
                    raise ConfigError(
                        f"{path} is a SQLite database but not a story file; open a story, or "
                        "give a new file name to start one"
                    )
                return None  # an empty database: a story can start there
            row = conn.execute("SELECT value FROM story_meta WHERE key = 'premise'").fetchone()
            steps = conn.execute("SELECT count(*) FROM story_steps").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(
            f"{path} is not a story file ({exc}); open a story file, or give a new file name"
        ) from exc
    if row is None:
        return None
    title = str(json.loads(row[0]).get("title") or "")
    return StoryInfo(path, title, int(steps))


def find_stories(folder: Path) -> list[StoryInfo]:
    """The story files directly in ``folder``, by name (files that are not stories are skipped)."""
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix not in SUFFIXES or not path.is_file():
            continue
        try:
            info = probe(path)
        except ConfigError:
            continue
        if info is not None:
            found.append(info)
    return found


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
        except ConfigError as exc:
            self.query_one("#open-error", Label).update(str(exc))
            return
        self.dismiss(path)

    def action_back(self) -> None:
        self.dismiss(None)

"""``memora story lore ...``: the lorebook of a story file (world info) from the command line.

Each command checks the story file read-only before it opens it (as every ``memora story``
command does): ``list`` and ``history`` never write; no command writes to a file that holds no
story. A bad key or field is refused with the fix, and nothing is written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from memora.errors import ConfigError
from memora.recurrent.lore import Lorebook, LoreEntry, LoreHistoryItem
from memora.recurrent.storyfile import StoryFile, file_errors

__all__ = ["lore"]

STORY_FILE = click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
ENTRY_ID = click.argument("entry_id", type=int)


@contextmanager
def _lorebook(path: Path, *, readonly: bool) -> Iterator[Lorebook]:
    """The lorebook of the story at ``path`` (see :meth:`StoryFile.open_story`)."""
    with file_errors(path):
        file = StoryFile.open_story(path, readonly=readonly)
        try:
            yield Lorebook(file.db)
        finally:
            file.close()


def _line(entry: LoreEntry) -> str:
    marks = [f"priority {entry.priority}"] if entry.priority else []
    marks += ["always"] if entry.always else []
    keys = ", ".join(entry.keys) or "-"
    head = f"#{entry.id} {entry.name}" + (f" ({', '.join(marks)})" if marks else "")
    return f"{head}  keys: {keys}\n    {entry.text}"


def _change(item: LoreHistoryItem) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item.at))
    shown = item.after or item.before
    name = f" {shown.name!r}" if shown is not None else ""
    what = {"add": "added", "edit": "edited", "remove": "removed", "undo": "reverted"}[item.action]
    if item.action == "undo" and item.before is None:
        what = "restored (undo)"
    elif item.action == "undo" and item.after is None:
        what = "removed (undo)"
    return f"#{item.id} {when} {item.actor}: entry {item.entry_id}{name} {what}"


def _emit(items: list[Any], as_json: bool, line: Callable[[Any], str], empty: str) -> None:
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in items], indent=2, ensure_ascii=False))
    elif not items:
        click.echo(empty)
    for item in items if not as_json else ():
        click.echo(line(item))


@click.group()
def lore() -> None:
    """The lorebook (world info) of a story: entries put into the prompt when one of their
    keys is in the story's recent text, or always."""


@lore.command()
@STORY_FILE
@click.option("--name", required=True, help="what the entry is about (unique)")
@click.option("--key", "keys", multiple=True,
              help="a word or phrase that triggers it, or /regex/ (/regex/i: any case); "
                   "repeatable")  # fmt: skip
@click.option("--text", required=True, help="what the prompt is told about it")
@click.option("--priority", type=int, default=0, show_default=True,
              help="higher first when not all entries fit")  # fmt: skip
@click.option("--always", is_flag=True, help="in every prompt, whatever the keys")
def add(path: Path, name: str, keys: tuple[str, ...], text: str, priority: int,
        always: bool) -> None:  # fmt: skip
    """Add an entry to the lorebook of the story in PATH."""
    with _lorebook(path, readonly=False) as book:
        entry = book.add(name, text, keys=keys, priority=priority, always=always)
    click.echo(f"added {_line(entry)}")


@lore.command(name="list")
@STORY_FILE
@click.option("--json", "as_json", is_flag=True, help="the entries as JSON")
def list_(path: Path, as_json: bool) -> None:
    """The entries, in id order."""
    with _lorebook(path, readonly=True) as book:
        entries = book.entries()
    _emit(entries, as_json, _line, "the lorebook is empty; add an entry with `lore add`")


@lore.command()
@STORY_FILE
@ENTRY_ID
@click.option("--name", default=None)
@click.option("--key", "keys", multiple=True, help="the new keys (replace the old ones)")
@click.option("--text", default=None)
@click.option("--priority", type=int, default=None)
@click.option("--always/--no-always", default=None, help="in every prompt, or by keys only")
def edit(path: Path, entry_id: int, name: str | None, keys: tuple[str, ...], text: str | None,
         priority: int | None, always: bool | None) -> None:  # fmt: skip
    """Change fields of entry ENTRY_ID (`lore list` shows the ids)."""
    if name is None and not keys and text is None and priority is None and always is None:
        raise ConfigError(
            "nothing to change: give at least one of --name, --key, --text, --priority, "
            "--always/--no-always"
        )
    with _lorebook(path, readonly=False) as book:
        entry = book.edit(entry_id, name=name, keys=keys or None, text=text, priority=priority,
                          always=always)  # fmt: skip
    click.echo(f"now {_line(entry)}")


@lore.command()
@STORY_FILE
@ENTRY_ID
def rm(path: Path, entry_id: int) -> None:
    """Remove entry ENTRY_ID (`lore undo` brings it back)."""
    with _lorebook(path, readonly=False) as book:
        entry = book.remove(entry_id)
    click.echo(f"removed #{entry.id} {entry.name}")


@lore.command()
@STORY_FILE
@click.option("--json", "as_json", is_flag=True, help="the changes as JSON")
def history(path: Path, as_json: bool) -> None:
    """Every change of the lorebook, oldest first."""
    with _lorebook(path, readonly=True) as book:
        items = book.history()
    _emit(items, as_json, _change, "the lorebook has no changes yet")


@lore.command()
@STORY_FILE
@click.argument("history_id", type=int)
def undo(path: Path, history_id: int) -> None:
    """Revert change HISTORY_ID (`lore history` shows the ids); the undo is a change too."""
    with _lorebook(path, readonly=False) as book:
        entry = book.undo(history_id)
        item = book.history()[-1]
    click.echo(f"undone change #{history_id}: {_change(item)}")
    if entry is not None:
        click.echo(_line(entry))

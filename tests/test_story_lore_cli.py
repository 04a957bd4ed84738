"""``memora story lore ...`` on real story files: each command, and bad input that is one error
line, a non-zero exit code and an unchanged file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from memora.cli import main
from memora.recurrent.storyfile import StoryFile
from memora.recurrent.types import Premise


def lore(*args: object) -> Result:
    return CliRunner().invoke(main, ["story", "lore", *map(str, args)])


@pytest.fixture
def story(tmp_path: Path) -> Path:
    path = tmp_path / "story.db"
    file = StoryFile(path)
    file.init(Premise("A baker loses his recipe book.", title="Flour"), "fixed")
    file.close()
    return path


def entries(path: Path) -> list[dict[str, object]]:
    result = lore("list", path, "--json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def test_add_list_edit_rm_history_and_undo(story: Path) -> None:
    added = lore("add", story, "--name", "Tom", "--key", "Tom", "--key", "/bak(er|ery)/i",
                 "--text", "A baker in a mountain town.", "--priority", "2")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "#1 Tom (priority 2)  keys: Tom, /bak(er|ery)/i" in added.output
    assert lore("add", story, "--name", "Sky", "--text", "Green.", "--always").exit_code == 0
    assert entries(story) == [
        {"id": 1, "name": "Tom", "keys": ["Tom", "/bak(er|ery)/i"],
         "text": "A baker in a mountain town.", "priority": 2, "always": False},
        {"id": 2, "name": "Sky", "keys": [], "text": "Green.", "priority": 0, "always": True},
    ]  # fmt: skip
    listed = lore("list", story)
    assert "#2 Sky (always)  keys: -\n    Green." in listed.output
    edited = lore("edit", story, 2, "--no-always", "--key", "sky", "--name", "The sky")
    assert edited.exit_code == 0, edited.output
    assert entries(story)[1] == {
        "id": 2, "name": "The sky", "keys": ["sky"], "text": "Green.", "priority": 0,
        "always": False,
    }  # fmt: skip
    assert lore("rm", story, 1).output == "removed #1 Tom\n"
    assert [e["id"] for e in entries(story)] == [2]
    history = lore("history", story)
    assert [line.split(" ", 3)[3] for line in history.output.splitlines()] == [
        "person: entry 1 'Tom' added", "person: entry 2 'Sky' added",
        "person: entry 2 'The sky' edited", "person: entry 1 'Tom' removed",
    ]  # fmt: skip
    undone = lore("undo", story, 4)
    assert undone.exit_code == 0 and "restored (undo)" in undone.output
    assert [e["name"] for e in entries(story)] == ["Tom", "The sky"]
    items = json.loads(lore("history", story, "--json").output)
    assert [(i["action"], i["entry_id"]) for i in items][-1] == ("undo", 1)
    assert items[-1]["before"] is None and items[-1]["after"]["name"] == "Tom"


def test_list_and_history_of_a_story_without_lore_write_nothing(story: Path) -> None:
    before = story.read_bytes()
    assert lore("list", story).output == "the lorebook is empty; add an entry with `lore add`\n"
    assert lore("history", story, "--json").output.strip() == "[]"
    assert story.read_bytes() == before


def error_of(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["add", "{}", "--name", "X", "--key", "/[a/", "--text", "t"], "ConfigError: the lore "
         "key '/[a/' is not a valid regular expression"),
        (["add", "{}", "--name", "X", "--text", "t"], "give at least one key (--key)"),
        (["add", "{}", "--name", "tom", "--key", "x", "--text", "t"], "already has an entry"),
        (["edit", "{}", "1"], "nothing to change: give at least one of --name"),
        (["edit", "{}", "1", "--text", " "], "has no text"),
        (["edit", "{}", "9", "--text", "x"], "RecordNotFoundError: the lorebook has no entry 9; "
         "`memora story lore list PATH` lists them"),
        (["rm", "{}", "9"], "no entry 9"),
        (["undo", "{}", "7"], "no change 7; `memora story lore history PATH` lists them"),
    ],
)  # fmt: skip
def test_bad_input_is_one_error_line_and_changes_nothing(
    story: Path, args: list[str], expected: str
) -> None:
    assert lore("add", story, "--name", "Tom", "--key", "Tom", "--text", "A baker.").exit_code == 0
    before = (entries(story), lore("history", story, "--json").output)
    line = error_of(lore(*[a.replace("{}", str(story)) for a in args]))
    assert line.startswith("error: ") and expected in line
    assert (entries(story), lore("history", story, "--json").output) == before


def test_files_that_are_not_stories_are_refused_and_left_as_they_were(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    line = error_of(lore("add", missing, "--name", "X", "--key", "x", "--text", "t"))
    assert "NoStoryError: no story file at" in line and not missing.exists()
    assert "NoStoryError" in error_of(lore("list", missing))
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    assert "NotMemoraFileError" in error_of(lore("add", other, "--name", "X", "--key", "x",
                                                 "--text", "t"))  # fmt: skip
    assert "NotMemoraFileError" in error_of(lore("history", other))
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]

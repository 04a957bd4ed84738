"""``memora story swipe``, ``memora story note`` and ``memora write --bible`` on real story
files, the model a scripted stand-in (loaded where the command loads its model): swipes and
flicks, the author's note, the story bible's counts and a person's accept or reject, and bad
input that is one error line, a non-zero exit code and an unchanged file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from memora.cli import main
from memora.embed import Embedder, load_embedder
from memora.llm import registry
from memora.recurrent.lore import Lorebook
from memora.recurrent.storyfile import StoryFile
from memora.recurrent.types import Premise
from memora.testing import ScriptedLLM

PREMISE = "A lighthouse keeper finds a message in a bottle."
PARAGRAPH = (
    "Mara climbed the spiral stairs of the Gull Rock lighthouse at dusk, as she had every "
    "evening for eleven years. On the rocks below, a green bottle glinted, corked and sealed "
    "with wax, lodged between two stones where the tide had left it. She carried it up to the "
    "lamp room."
)
OTHER = PARAGRAPH.replace("dusk", "dawn").replace("green", "blue")
PLANS = json.dumps(
    {
        "summary": "Mara, keeper of the lighthouse, found a sealed green bottle on the rocks.",
        "plans": [
            "Mara opens the bottle and reads the warning.",
            "A fisherman arrives asking about the bottle.",
            "The wind rises before Mara can open it.",
        ],
    }
)
GROUNDED = {"action": "add", "name": "Gull Rock", "text": "The lighthouse on Gull Rock."}
INVENTED = {"action": "add", "name": "Mara", "text": "Mara owns a golden ship and a parrot."}
UseModel = Callable[..., ScriptedLLM]


def bible(*changes: dict[str, object]) -> str:
    return json.dumps({"changes": list(changes)})


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> UseModel:
    """``model(*replies)``: the commands that load a model get a ScriptedLLM; before it is
    called, and after ``model()``, loading a model fails the test."""
    import memora.embed

    monkeypatch.setattr(memora.embed, "load_embedder", lambda *a, **k: embedder)

    def refuse(spec: str, **options: object) -> ScriptedLLM:
        raise AssertionError("this command should load no model")

    monkeypatch.setattr(registry, "load_model", refuse)

    def use(*replies: str) -> ScriptedLLM:
        llm = ScriptedLLM(replies or ["unused"])
        loader = (lambda spec, **options: llm) if replies else refuse
        monkeypatch.setattr(registry, "load_model", loader)
        return llm

    return use


def memora(*args: object, stdin: str = "") -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=stdin)


def ok(*args: object, stdin: str = "") -> str:
    result = memora(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def error_of(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def head_of(path: Path) -> int | None:
    file = StoryFile(path, readonly=True)
    try:
        return file.head_id
    finally:
        file.close()


def note_of(path: Path) -> str:
    file = StoryFile(path, readonly=True)
    try:
        return file.author_note
    finally:
        file.close()


@pytest.fixture
def opened(tmp_path: Path, model: UseModel) -> Path:
    """A story with its opening, written by ``memora write``."""
    path = tmp_path / "s.db"
    model(PARAGRAPH, PLANS)
    ok("write", "--story", path, "--premise", PREMISE, "--steps", 1)
    return path


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.db"
    file = StoryFile(path)
    file.init(Premise(PREMISE, title="The Bottle"), "fixed")
    file.close()
    return path


def test_swipe_writes_a_sibling_and_prev_next_flick_without_a_model(
    opened: Path, model: UseModel
) -> None:
    model(OTHER, PLANS)
    swiped = ok("story", "swipe", opened)
    assert OTHER in swiped and "version 2 of 2 (step #2)" in swiped
    file = StoryFile(opened)
    assert [(s.id, s.parent_id, s.paragraph) for s in file.steps()] == [
        (1, None, PARAGRAPH),
        (2, None, OTHER),
    ]
    assert file.head_id == 2
    file.close()
    assert "> #2 root depth 1 (opening) [version 2 of 2]" in ok("story", "show", opened)
    model()  # from here on, loading a model fails the test
    back = ok("story", "swipe", opened, "--prev")
    assert back.startswith(PARAGRAPH) and "version 1 of 2 (step #1)" in back
    assert "version 1 of 2" in ok("story", "swipe", opened, "--prev")  # stops at the first
    assert head_of(opened) == 1
    assert "version 2 of 2" in ok("story", "swipe", opened, "--next")
    assert "version 2 of 2" in ok("story", "swipe", opened, "--next")  # and at the last
    assert head_of(opened) == 2


def test_the_authors_note_is_set_shown_and_cleared(opened: Path) -> None:
    assert ok("story", "note", opened) == "no author's note\n"
    assert ok("story", "note", opened, "  Keep the tone eerie. ") == (
        "author's note: Keep the tone eerie.\n"
    )
    assert ok("story", "note", opened) == "author's note: Keep the tone eerie.\n"
    assert note_of(opened) == "Keep the tone eerie."
    assert ok("story", "note", opened, "--clear") == "the author's note is cleared\n"
    assert ok("story", "note", opened) == "no author's note\n"


def test_bible_auto_applies_grounded_changes_and_counts_them(
    tmp_path: Path, model: UseModel
) -> None:
    path = tmp_path / "s.db"
    model(PARAGRAPH, PLANS, bible(GROUNDED, INVENTED))
    written = ok("write", "--story", path, "--premise", PREMISE, "--steps", 1, "--bible", "auto")
    assert "step 1/1" in written and "lore: 1 applied, 1 rejected" in written
    file = StoryFile(path, readonly=True)
    assert [e.name for e in Lorebook(file.db).entries()] == ["Gull Rock"]
    file.close()


def test_interactive_bible_applies_only_what_the_person_accepts(
    tmp_path: Path, model: UseModel
) -> None:
    path = tmp_path / "s.db"
    model(PARAGRAPH, PLANS, bible(GROUNDED, INVENTED))
    written = ok("write", "--story", path, "--premise", PREMISE, "--steps", 1, "--bible", "auto",
                 "--interactive", stdin="y\nn\n")  # fmt: skip
    assert "lore add: Gull Rock (keys: Gull Rock)\n    The lighthouse on Gull Rock." in written
    assert "lore add: Mara (keys: Mara)" in written and "accept this change?" in written
    assert "lore: 1 accepted, 1 rejected" in written
    assert "applied" not in written  # the person judged, not the grounding check
    file = StoryFile(path, readonly=True)
    book = Lorebook(file.db)
    assert [(e.name, e.text) for e in book.entries()] == [
        ("Gull Rock", "The lighthouse on Gull Rock.")
    ]
    assert len(book.history()) == 1
    file.close()


def test_interactive_without_the_bible_asks_nothing_about_lore(
    tmp_path: Path, model: UseModel
) -> None:
    path = tmp_path / "s.db"
    llm = model(PARAGRAPH, PLANS)
    written = ok("write", "--story", path, "--premise", PREMISE, "--steps", 1, "--interactive")
    assert "lore" not in written and len(llm.prompts) == 2


def _not_a_story(tmp_path: Path) -> Path:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    return other


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["story", "swipe", "{empty}"], "ConfigError: the story in"),
        (["story", "swipe", "{empty}", "--prev"], "is empty: write a step first"),
        (["story", "swipe", "{other}"], "NotMemoraFileError"),
        (["story", "swipe", "{other}", "--next"], "NotMemoraFileError"),
        (["story", "swipe", "{missing}"], "NoStoryError: no story file at"),
        (["story", "note", "{empty}", "x" * 501], "has 501 characters; keep it under 500"),
        (["story", "note", "{empty}", " "], "the note is empty"),
        (["story", "note", "{empty}", "text", "--clear"], "give TEXT or --clear, not both"),
        (["story", "note", "{other}", "A note."], "NotMemoraFileError"),
        (["story", "note", "{other}"], "NotMemoraFileError"),
        (["story", "note", "{missing}", "A note."], "NoStoryError"),
        (["write", "--story", "{empty}", "--steps", "1", "--bible", "sometimes"], None),
    ],
)  # fmt: skip
def test_bad_input_is_one_error_line_and_writes_nothing(
    tmp_path: Path, empty: Path, model: UseModel, args: list[str], expected: str | None
) -> None:
    names = {"empty": empty, "other": _not_a_story(tmp_path), "missing": tmp_path / "none.db"}
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = memora(*[a.format(**names) for a in args])
    if expected is None:  # a value click refuses: its usage error, exit code 2
        assert result.exit_code == 2 and "'sometimes' is not one of" in result.output
    else:
        assert expected in error_of(result)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert note_of(empty) == ""

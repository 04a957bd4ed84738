"""The attack table of the story commands: ``memora write`` and ``memora story ...`` given
files that are not stories, damaged stories and bad options. Each row runs the real command in
a subprocess (tests/attack.py): one ``error:`` line naming the class and the fix, no
traceback, and the files it was given left byte-for-byte as they were."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from attack import Case, run_case, run_memora, unwritable

from memora.recurrent.storyfile import StoryFile
from memora.recurrent.types import Premise, Step

PARAGRAPH = (
    "Mara climbed the spiral stairs of the lighthouse at dusk, as she had every evening for "
    "eleven years. The lamp hummed, and on the rocks below something glinted in the light. "
)


def memory_db(tmp: Path) -> None:
    """A memora file holding only a memory store (its version row and records table)."""
    conn = sqlite3.connect(tmp / "m.db")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER)")
    conn.execute("INSERT INTO schema_versions VALUES ('memory', 3)")
    conn.execute("CREATE TABLE memories (id TEXT PRIMARY KEY, text TEXT NOT NULL)")
    conn.execute("INSERT INTO memories VALUES ('m1', 'the user likes lighthouses')")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()


def other_app_db(tmp: Path) -> None:
    conn = sqlite3.connect(tmp / "other.db")
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    conn.commit()
    conn.close()


def other_app_wal_db(tmp: Path) -> None:
    """Another application's database in WAL mode, closed cleanly (no -wal or -shm file)."""
    conn = sqlite3.connect(tmp / "other.db")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.commit()
    conn.close()


def no_new_files(*names: str) -> object:
    def check(tmp: Path) -> None:
        assert sorted(p.name for p in tmp.iterdir() if not p.name.startswith(".")) == sorted(names)

    return check


def text_file(tmp: Path) -> None:
    (tmp / "notes.txt").write_text("not a story, just notes\n" * 20)


def garbage(tmp: Path) -> None:
    (tmp / "junk.db").write_bytes(bytes(range(256)) * 64)


def story(tmp: Path, steps: int = 3, name: str = "s.db") -> None:
    """A story file with ``steps`` steps, written straight into the file."""
    file = StoryFile(tmp / name)
    file.init(Premise("A keeper finds a bottle.", title="The Bottle"), "fixed")
    parent = None
    for n in range(steps):
        step = file.add_step(Step(
            id=0, parent_id=parent, depth=n + 1, plan=f"plan {n}", chosen_by="person",
            paragraph=PARAGRAPH * 40 + str(n), memory=f"memory {n}", plans=("a", "b", "c"),
        ))  # fmt: skip
        parent = step.id
    file.close()


def empty_story(tmp: Path) -> None:
    story(tmp, steps=0)


def truncated_story(tmp: Path) -> None:
    story(tmp, steps=12)
    path = tmp / "s.db"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def legacy_story(tmp: Path) -> None:
    """A story file of a release before schema_versions: story tables, no version rows."""
    story(tmp)
    conn = sqlite3.connect(tmp / "s.db")
    conn.execute("DROP TABLE schema_versions")
    conn.execute("PRAGMA user_version = 0")
    conn.commit()
    conn.close()


def read_only_story(tmp: Path) -> None:
    story(tmp)
    (tmp / "s.db").chmod(0o444)


def still_a_story(steps: int, name: str = "s.db") -> object:
    def check(tmp: Path) -> None:
        info = StoryFile.probe(tmp / name)
        assert info is not None and info.steps == steps

    return check


LONG_PREMISE = "A keeper keeps a lighthouse on a rock far out at sea. " * 120


def real_memory_store(tmp: Path) -> None:
    """A memory store of an earlier release (memories, history, neural tables), as users have."""
    shutil.copy(Path(__file__).parent / "fixtures" / "legacy" / "memory.db", tmp / "m.db")


SHOW, EXPORT = ["story", "show"], ["story", "export"]
WRITE = ["write", "--steps", "1"]

CASES = [
    # read commands never write: a file with no story is refused and left as it was
    Case("show-memory-store", [*SHOW, "{tmp}/m.db"], setup=memory_db, error="NoStoryError",
         says="holds no story", unchanged=("m.db",)),
    Case("export-memory-store", [*EXPORT, "{tmp}/m.db"], setup=memory_db, error="NoStoryError",
         says="holds no story", unchanged=("m.db",)),
    Case("show-real-memory-store", [*SHOW, "{tmp}/m.db"], setup=real_memory_store,
         error="NoStoryError", says="a memora memory store",
         unchanged=("m.db", "m.db-wal", "m.db-shm")),
    Case("show-other-app-db", [*SHOW, "{tmp}/other.db"], setup=other_app_db,
         error="NotMemoraFileError", says="something else", unchanged=("other.db",)),
    Case("export-other-app-db", [*EXPORT, "{tmp}/other.db", "-o", "{tmp}/out.md"],
         setup=other_app_db, error="NotMemoraFileError", unchanged=("other.db", "out.md")),
    Case("show-other-app-wal-db", [*SHOW, "{tmp}/other.db"], setup=other_app_wal_db,
         error="NotMemoraFileError", unchanged=("other.db",),
         after=no_new_files("other.db")),  # type: ignore[arg-type]
    Case("write-other-app-wal-db", [*WRITE, "--story", "{tmp}/other.db", "--premise", "A."],
         setup=other_app_wal_db, error="NotMemoraFileError", unchanged=("other.db",),
         after=no_new_files("other.db")),  # type: ignore[arg-type]
    Case("show-text-file", [*SHOW, "{tmp}/notes.txt"], setup=text_file,
         error="NotMemoraFileError", unchanged=("notes.txt",)),
    Case("show-garbage", [*SHOW, "{tmp}/junk.db"], setup=garbage, error="NotMemoraFileError",
         unchanged=("junk.db",)),
    Case("show-missing", [*SHOW, "{tmp}/nope.db"], error="NoStoryError",
         says="memora write", unchanged=("nope.db",)),
    Case("show-truncated", [*SHOW, "{tmp}/s.db"], setup=truncated_story,
         error="DamagedFileError", says="from a copy", unchanged=("s.db",)),
    Case("show-story-not-started", [*SHOW, "{tmp}/e.db"],
         setup=lambda t: StoryFile(t / "e.db").close(), error="NoStoryError",
         says="holds no story yet", unchanged=("e.db",)),
    Case("show-empty-story", [*SHOW, "{tmp}/s.db"], setup=empty_story, unchanged=("s.db",)),
    Case("show-story", [*SHOW, "{tmp}/s.db"], setup=story, unchanged=("s.db",)),
    Case("show-legacy-story", [*SHOW, "{tmp}/s.db"], setup=legacy_story, unchanged=("s.db",)),
    Case("show-read-only-story", [*SHOW, "{tmp}/s.db"], setup=read_only_story,
         unchanged=("s.db",)),
    Case("export-onto-the-story", [*EXPORT, "{tmp}/s.db", "-o", "{tmp}/s.db"], setup=story,
         error="InvalidOptionError", unchanged=("s.db",)),
    Case("export-onto-a-database", [*EXPORT, "{tmp}/s.db", "-o", "{tmp}/other.db"],
         setup=lambda t: (story(t), other_app_db(t)), error="InvalidOptionError",
         unchanged=("s.db", "other.db")),
    # write commands refuse what is not a story too
    Case("branch-memory-store", ["story", "branch", "{tmp}/m.db", "1"], setup=memory_db,
         error="NoStoryError", unchanged=("m.db",)),
    Case("undo-memory-store", ["story", "undo", "{tmp}/m.db"], setup=memory_db,
         error="NoStoryError", unchanged=("m.db",)),
    Case("undo-other-app-db", ["story", "undo", "{tmp}/other.db"], setup=other_app_db,
         error="NotMemoraFileError", unchanged=("other.db",)),
    Case("undo-truncated", ["story", "undo", "{tmp}/s.db"], setup=truncated_story,
         error="DamagedFileError", unchanged=("s.db",)),
    Case("undo-empty-story", ["story", "undo", "{tmp}/s.db"], setup=empty_story,
         error="ConfigError", says="nothing to undo", unchanged=("s.db",)),
    Case("branch-missing-step", ["story", "branch", "{tmp}/s.db", "99"], setup=story,
         error="RecordNotFoundError", says="story show", unchanged=("s.db",),
         after=still_a_story(3)),  # type: ignore[arg-type]
    Case("write-memory-store", [*WRITE, "--story", "{tmp}/m.db", "--premise", "A keeper."],
         setup=memory_db, error="NoStoryError", unchanged=("m.db",)),
    Case("write-other-app-db", [*WRITE, "--story", "{tmp}/other.db", "--premise", "A keeper."],
         setup=other_app_db, error="NotMemoraFileError", unchanged=("other.db",)),
    Case("write-text-file", [*WRITE, "--story", "{tmp}/notes.txt", "--premise", "A keeper."],
         setup=text_file, error="NotMemoraFileError", unchanged=("notes.txt",)),
    Case("write-truncated", [*WRITE, "--story", "{tmp}/s.db"], setup=truncated_story,
         error="DamagedFileError", unchanged=("s.db",)),
    Case("write-new-without-premise", [*WRITE, "--story", "{tmp}/new.db"],
         error="ConfigError", says="--premise", unchanged=("new.db",)),
    Case("write-zero-steps", ["write", "--steps", "0", "--story", "{tmp}/new.db", "--premise",
         "A keeper."], error="InvalidOptionError", unchanged=("new.db",)),
    Case("write-premise-longer-than-the-context",
         [*WRITE, "--story", "{tmp}/new.db", "--premise", LONG_PREMISE, "--n-ctx", "1024"],
         error="ContextOverflowError", says="shorten the premise", unchanged=("new.db",)),
    Case("write-outline-longer-than-the-context",
         [*WRITE, "--story", "{tmp}/new.db", "--premise", "A keeper.", "--outline",
          LONG_PREMISE * 3], error="ContextOverflowError", unchanged=("new.db",)),
    # a step that cannot succeed: the one extra try uses other seeds, and the error says both
    Case("write-step-that-always-fails",
         [*WRITE, "--story", "{tmp}/new.db", "--premise", "A keeper.", "--max-tokens", "1"],
         error="StepError", says="seeds 1000-1003", after=still_a_story(0, "new.db")),  # type: ignore[arg-type]
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_story_attack(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)


def test_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "stories").mkdir()
    done = run_memora([*SHOW, str(tmp_path / "stories")], tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is a directory" in done.stderr and not any((tmp_path / "stories").iterdir())


def test_a_read_only_story_is_refused_by_write_commands(tmp_path: Path) -> None:
    story(tmp_path)
    with unwritable(tmp_path / "s.db"):
        run_case(
            Case("undo-read-only", ["story", "undo", "{tmp}/s.db"],
                 error="ReadOnlyError", says="chmod", unchanged=("s.db",)),
            tmp_path,
        )  # fmt: skip
        run_case(Case("show-read-only", [*SHOW, "{tmp}/s.db"], unchanged=("s.db",)), tmp_path)


@pytest.mark.slow
def test_write_streams_the_paragraph_before_the_step_ends(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "memora.cli", "write", "--story", str(tmp_path / "s.db"),
           "--premise", "A keeper finds a bottle.", "--steps", "1", "--max-tokens", "60",
           "--threads", "1", "--n-ctx", "2048"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEMORA_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    first_text = None
    shown = b""
    while True:
        piece = proc.stdout.read1(64)  # type: ignore[attr-defined]
        if not piece:
            break
        shown += piece
        if first_text is None and shown.strip():
            first_text = time.monotonic()
    proc.wait(timeout=600)
    ended = time.monotonic()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    proc.stdout.close()
    if proc.stderr is not None:
        proc.stderr.close()
    assert proc.returncode == 0, stderr[-2000:]
    assert first_text is not None and ended - first_text > 1.0, "the text came only at the end"
    info = StoryFile.probe(tmp_path / "s.db")
    assert info is not None and info.steps == 1 and "step 1/1" in stderr
    file = StoryFile(tmp_path / "s.db", readonly=True)
    assert file.steps()[0].paragraph in shown.decode()
    file.close()

"""Files written by the release before per-component schema versions (committed fixtures made
by ``scripts/legacy_fixtures.py``) open, migrate in place and keep everything; the version
mechanism itself refuses newer files and migrates once."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from memora.agents.journal import Journal

from memora._sqlite import FILE_FORMAT, Component, Database
from memora.embed import Embedder, load_embedder
from memora.errors import SchemaVersionError
from memora.memory import Scope
from memora.memory.store import MemoryStore
from memora.recurrent import StoryEngine
from memora.recurrent.storyfile import StoryFile
from memora.testing import ScriptedLLM

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "legacy"
ALICE = Scope(user_id="alice")


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copy(FIXTURES / name, target)
    return target


def versions(path: Path) -> tuple[int, dict[str, int]]:
    with sqlite3.connect(path) as conn:
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
        rows = conn.execute("SELECT component, version FROM schema_versions").fetchall()
    return user_version, dict(rows)


def test_the_fixtures_are_from_the_old_format() -> None:
    for name in ("memory.db", "story.db"):
        with sqlite3.connect(f"file:{FIXTURES / name}?mode=ro", uri=True) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "schema_versions" not in tables and "memories" in tables


def test_an_old_memory_file_migrates_with_everything_in_it(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = copy("memory.db", tmp_path)
    with MemoryStore(path, embedder=embedder, neural=True) as store:
        texts = {r.text for r in store.list(ALICE)}
        assert texts == {
            "Alice drinks green tea every morning.",
            "Alice's dog is called Rex.",
            "Alice moved from Lyon to Porto.",
        }
        assert store.list(ALICE)[0].metadata == {"source": "chat"}
        assert [r.text for r in store.list(user_id="bob")] == ["Bob writes unit tests before code."]
        deleted = [r for r in store.list(ALICE, include_deleted=True) if r.deleted]
        assert [r.text for r in deleted] == ["Alice once owned a red bicycle."]
        moved = next(r for r in store.list(ALICE) if "Porto" in r.text)
        assert [h.event for h in store.history(moved.id, ALICE)] == ["ADD", "UPDATE"]
        assert store.search("Where does Alice live?", ALICE, k=1)[0].record.id == moved.id
        memory = store.neural_memory(ALICE)
        assert memory is not None and memory.step >= 1  # the neural state came along
        assert store.replay_neural(ALICE).step == memory.step
        assert store.verify_index().consistent
        journal = Journal(store.db)
        turns = journal.turns(ALICE)
        assert [(t.user_text, t.status) for t in turns] == [
            ("I live in Lyon.", "pending"), ("I moved to Porto.", "done")
        ]  # fmt: skip
        assert journal.core_blocks(ALICE) == {"human": ("Name: Alice", 500)}
        store.add("Alice learns Portuguese.", ALICE)  # and it keeps working
    assert versions(path) == (
        FILE_FORMAT, {"memory": 4, "neural": 1, "agent_journal": 1}
    )  # fmt: skip


def test_an_old_story_file_migrates_and_continues(tmp_path: Path, embedder: Embedder) -> None:
    path = copy("story.db", tmp_path)
    info = StoryFile.probe(path)
    assert info is not None and info.title == "The Bottle" and info.steps == 2
    with StoryEngine(ScriptedLLM(["unused"]), path, embedder=embedder) as engine:
        steps = engine.path()
        assert len(steps) == 2 and engine.head is not None
        assert engine.head.memory == "Edited: the bottle is green."
        assert engine.file.unindexed() == []
        hits = engine.store.search("green bottle", agent_id=engine._scope, mode="lexical")
        assert {h.record.metadata["step_id"] for h in hits} == {s.id for s in steps}
        assert engine.lore.entries() == []  # an old story gets an empty lorebook
    assert versions(path) == (FILE_FORMAT, {"memory": 4, "story": 1, "lore": 1})


def test_probing_writes_nothing(tmp_path: Path) -> None:
    path = copy("story.db", tmp_path)
    before = path.read_bytes()
    assert StoryFile.probe(path) is not None
    assert path.read_bytes() == before and not Path(str(path) + "-wal").exists()


COUNTER = Component(
    name="counter",
    version=3,
    schema="CREATE TABLE counter (n INTEGER, label TEXT, note TEXT);",
    migrations={
        1: "ALTER TABLE counter ADD COLUMN label TEXT;",
        2: "ALTER TABLE counter ADD COLUMN note TEXT;",
    },
    legacy=lambda conn: 1 if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'counter'").fetchone() else 0,
)  # fmt: skip


def test_components_migrate_step_by_step_once_and_refuse_newer(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE counter (n INTEGER)")  # version 1, from before versions
        conn.execute("INSERT INTO counter VALUES (7)")
    dbs = [Database(path) for _ in range(4)]
    threads = [threading.Thread(target=db.ensure, args=(COUNTER,)) for db in dbs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    columns = [r[1] for r in dbs[0].query("PRAGMA table_info(counter)")]
    assert columns == ["n", "label", "note"] and dbs[0].query("SELECT n FROM counter") == [(7,)]
    assert dbs[0].version_of("counter") == 3
    for db in dbs:
        db.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_versions SET version = 4 WHERE component = 'counter'")
    newer = Database(path)
    with pytest.raises(SchemaVersionError, match="newer memora"):
        newer.ensure(COUNTER)
    newer.close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {FILE_FORMAT + 1}")
    with pytest.raises(SchemaVersionError, match="newer memora"):
        Database(path)

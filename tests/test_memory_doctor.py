"""A store bricked as old imports left it (a row whose vector has the wrong length) still opens,
says how to repair it, and `memora memory doctor --repair` repairs it without losing a good
record. Also: lazy embedder, read-only opens, fail-closed user scopes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from memora.cli import main
from memora.errors import (
    BatchInputError,
    InvalidRecordError,
    ModelNotFoundError,
    ReadOnlyError,
    ScopeError,
)
from memora.memory.store import MemoryStore
from memora.memory.vectors import DamagedStoreWarning

pytestmark = pytest.mark.slow

GOOD = [f"Fact number {i} about the garden." for i in range(8)]


def brick(path: Path) -> str:
    """Insert a row with a 3-value vector, as an import before the checks did; its id."""
    with sqlite3.connect(path) as conn:
        seq = int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0]) + 1
        conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (str(seq),))
        row = conn.execute("SELECT embedder, dim FROM memories LIMIT 1").fetchone()
        conn.execute(
            "INSERT INTO memories (id, user_id, scope_key, text, content_hash, embedder, dim, "
            "vector, created_at, updated_at, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            ("broken", "alice", json.dumps(["alice", None, None]), "A garden fact, damaged.",
             "h", row[0], row[1], np.ones(3, dtype=np.float32).tobytes(), 1.0, 1.0, seq),
        )  # fmt: skip
        conn.execute(
            "INSERT INTO history (memory_id, event, new_text, actor, at) VALUES (?,?,?,?,?)",
            ("broken", "ADD", "A garden fact, damaged.", "import", 1.0),
        )
    return "broken"


def test_a_bricked_store_opens_and_doctor_repairs_it(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with MemoryStore(path) as store:
        ids = [r.record.id for r in store.add_many(GOOD, user_id="alice")]
    brick(path)
    with MemoryStore(path, embedder=store.embedder) as store:
        assert len(store.list(user_id="alice")) == 9  # listing never touches the vectors
        with pytest.warns(DamagedStoreWarning, match="memory doctor --db .* --repair"):
            hits = store.search("garden fact", user_id="alice", k=20)
        assert {h.record.id for h in hits} == set(ids)  # the damaged row is left out
        assert not store.verify_index().consistent

    runner = CliRunner()
    checked = runner.invoke(main, ["memory", "doctor", "--db", str(path)])
    assert checked.exit_code == 1 and "1 damaged" in checked.output and "--repair" in checked.output
    repaired = runner.invoke(main, ["memory", "doctor", "--db", str(path), "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert "quarantined 1 records" in repaired.output and "rebuilt the index: 8" in repaired.output
    (quarantine,) = tmp_path.glob("m.db.quarantine-*.jsonl")
    kept = json.loads(quarantine.read_text())
    assert kept["id"] == "broken" and kept["history"][0]["event"] == "ADD"

    with MemoryStore(path, embedder=store.embedder) as store:
        assert store.verify_index().consistent
        assert sorted(r.id for r in store.list(user_id="alice")) == sorted(ids)
        for i, rid in enumerate(ids):
            assert store.search(GOOD[i], user_id="alice", mode="dense")[0].record.id == rid
    assert runner.invoke(main, ["memory", "doctor", "--db", str(path)]).exit_code == 0


def test_reads_load_no_embedder(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with MemoryStore(path) as store:
        rid = store.add("Tea at five.", user_id="alice").record.id
        store.export(open(tmp_path / "d.jsonl", "w"))  # noqa: SIM115
    with MemoryStore(path, embedder="no-such-embedder") as lazy:
        assert [r.id for r in lazy.list(user_id="alice")] == [rid]
        assert lazy.history(rid, user_id="alice")[0].event == "ADD"
        lazy.delete(rid, user_id="alice")
        assert lazy.get(rid, user_id="alice").deleted
        with pytest.raises(ModelNotFoundError):
            lazy.search("tea", user_id="alice")


def test_read_only_store_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with pytest.raises(ReadOnlyError):
        MemoryStore(path, readonly=True)
    assert not path.exists()
    with MemoryStore(path) as store:
        store.add("Tea at five.", user_id="alice")
    before = path.read_bytes()
    with MemoryStore(path, embedder=store.embedder, readonly=True) as reader:
        assert reader.search("tea", user_id="alice")[0].record.text == "Tea at five."
        with pytest.raises(ReadOnlyError, match="read-only"):
            reader.add("More tea.", user_id="alice")
    assert path.read_bytes() == before


def test_unset_user_fails_closed(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "m.db") as store:
        own = store.add("The bot keeps a diary.", agent_id="bot").record.id
        theirs = store.add("Alice's diary is private.", agent_id="bot", user_id="alice")
        assert [h.record.id for h in store.search("diary", agent_id="bot")] == [own]
        assert [r.id for r in store.list(agent_id="bot")] == [own]
        assert store.count(agent_id="bot") == 1
        with pytest.raises(Exception, match="no memory"):
            store.get(theirs.record.id, agent_id="bot")
        everyone = {h.record.id for h in store.search("diary", agent_id="bot", all_users=True)}
        assert everyone == {own, theirs.record.id}
        assert len(store.list(agent_id="bot", all_users=True)) == 2
        assert [r.id for r in store.list(user_id="alice")] == [theirs.record.id]
        with pytest.raises(ScopeError, match="not both"):
            store.list(user_id="alice", all_users=True)
        with pytest.raises(ScopeError, match="all_scopes"):
            store.list(all_users=True)


def test_import_checks_every_line_first(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "a.db") as store:
        store.add_many([f"Memory {i}." for i in range(3)], user_id="u")
        lines = [json.dumps(r.to_dict()) for r in store.list(user_id="u")]
        bad = json.loads(lines[0]) | {"id": "x", "text": "Other.", "vector": "AAAA", "dim": 384}
        with MemoryStore(tmp_path / "b.db", embedder=store.embedder) as copy:
            with pytest.raises(BatchInputError, match=r"dump.jsonl:5: 'vector' holds 3 bytes"):
                copy.import_(copy.parse_import([*lines, "", json.dumps(bad)], source="dump.jsonl"))
            assert copy.count(all_scopes=True) == 0
            with pytest.raises(InvalidRecordError, match="lines of an export"):
                copy.import_([lines[0], 7])  # type: ignore[list-item]
            assert copy.import_(lines) == (3, 0)  # no vector: embedded again

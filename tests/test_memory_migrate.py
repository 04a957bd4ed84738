"""`memora memory migrate` and the memory commands on PostgreSQL: real stores (SQLite files and
a PostgreSQL server with pgvector), the bundled embedder, the command as users run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memora.cli import main
from memora.errors import EmbedderMismatchError
from memora.memory.contract import RecordStore
from memora.memory.migrate import MigrateReport, migrate, open_records
from memora.memory.store import MemoryStore
from memora.memory.types import Scope

pytestmark = pytest.mark.slow

ALICE = {"user_id": "alice"}
BOB = {"user_id": "bob", "agent_id": "helper"}


def snapshot(location: str | Path) -> dict[str, Any]:
    """Everything a migration must carry: records (deleted ones too) with their vectors and
    history, and the neural state and write log of every scope."""
    records = open_records(location, readonly=True)
    try:
        rows = {r.id: (r.to_dict(), v) for r, v in records.export(include_deleted=True)}
        history = {rid: [h.to_dict() for h in records.history(rid)] for rid in rows}
        log = records.neural()
        keys = {Scope.from_dict(d["scope"]).key() for d, _ in rows.values()}
        neural = {k: (log.state(k), log.log(k)) for k in keys}
    finally:
        records.close()
    return {"records": rows, "history": history, "neural": neural}


def build_source(location: str | Path) -> dict[str, str]:
    """A store with two scopes' memories, a neural memory, an update, a soft and a hard
    delete; returns the ids by role."""
    with MemoryStore(location, neural=True) as store:
        added = store.add_many(
            ["Alice likes green tea.", "Alice has a dog named Rex.", "Alice lives in Lyon."],
            metadata={"src": "test", "n": 1}, **ALICE,
        )  # fmt: skip
        later = time.time() + 3600
        kept = store.add("Bob fixes bikes.", expires_at=later, cue="hobby", **BOB)
        gone = store.add("Bob forgot this.", **BOB)
        tea, dog, lyon = (r.record.id for r in added)
        store.update(tea, "Alice prefers black coffee.", metadata={"src": "edit"}, **ALICE)
        store.delete(dog, **ALICE)
        store.delete(gone.record.id, hard=True, **BOB)
    return {"tea": tea, "dog": dog, "lyon": lyon, "bike": kept.record.id, "gone": gone.record.id}


def run_migrate(src: str | Path, dst: str | Path, batch: int = 500) -> MigrateReport:
    source, target = open_records(src, readonly=True), open_records(dst)
    try:
        return migrate(source, target, batch=batch)
    finally:
        source.close()
        target.close()


def test_sqlite_to_postgres_and_back_keeps_everything(tmp_path: Path, pg_dsn: str) -> None:
    src = tmp_path / "src.db"
    ids = build_source(src)
    before = snapshot(src)
    assert set(before["records"]) == {ids["tea"], ids["dog"], ids["lyon"], ids["bike"]}
    assert [h["event"] for h in before["history"][ids["tea"]]] == ["ADD", "UPDATE"]
    assert [h["event"] for h in before["history"][ids["dog"]]] == ["ADD", "DELETE"]

    report = run_migrate(src, pg_dsn, batch=2)
    assert (report.records.moved, report.history.moved, report.neural.moved) == (4, 6, 2)
    assert snapshot(pg_dsn) == before

    back = tmp_path / "back.db"
    report = run_migrate(pg_dsn, back, batch=3)
    assert (report.records.moved, report.history.moved, report.neural.moved) == (4, 6, 2)
    assert snapshot(back) == before

    with MemoryStore(back, neural=True) as store:  # the copy works as a store
        assert store.get(ids["dog"], **ALICE).deleted
        assert [r.id for r in store.list(**ALICE)] == [ids["tea"], ids["lyon"]]
        assert store.search("coffee", k=1, **ALICE)[0].record.id == ids["tea"]
        assert store.neural_memory(**BOB) is not None
        replayed = store.replay_neural(**BOB)
        assert replayed.state_bytes() == store.neural_memory(**BOB).state_bytes()  # type: ignore[union-attr]
    with MemoryStore(pg_dsn, neural=True) as store:
        assert store.search("bikes", k=1, neural_weight=0.5, **BOB)[0].record.id == ids["bike"]
        store.add("Alice reads at night.", **ALICE)  # the neural memory goes on from its state
        assert store.neural_memory(**ALICE).step == before["neural"][key_of(ALICE)][0][0] + 1  # type: ignore[union-attr]


def key_of(ids: dict[str, str]) -> str:
    return Scope(**ids).key()


def test_a_second_run_changes_nothing(tmp_path: Path, pg_dsn: str) -> None:
    src = tmp_path / "src.db"
    build_source(src)
    run_migrate(src, pg_dsn)
    target = open_records(pg_dsn)
    seq = target.current_seq()
    target.close()

    again = run_migrate(src, pg_dsn, batch=1)
    assert not again.changed
    assert (again.records.present, again.history.present, again.neural.present) == (4, 6, 2)
    target = open_records(pg_dsn)
    assert target.current_seq() == seq  # not one write
    target.close()
    out = CliRunner().invoke(main, ["memory", "migrate", "--from", str(src), "--to", pg_dsn])
    assert out.exit_code == 0, out.output
    assert "records: 0 moved, 4 already there" in out.output
    assert "nothing to migrate" in out.output


def test_a_target_of_another_embedder_is_refused(tmp_path: Path, pg_dsn: str) -> None:
    src = tmp_path / "src.db"
    build_source(src)
    target: Any = open_records(pg_dsn)
    target.bind("another-embedder", 8)  # the database holds vectors of another space
    target.close()
    with pytest.raises(EmbedderMismatchError):
        run_migrate(src, pg_dsn)
    result = CliRunner().invoke(main, ["memory", "migrate", "--from", str(src), "--to", pg_dsn])
    assert result.exit_code == 1
    assert "EmbedderMismatchError" in result.output
    with MemoryStore(pg_dsn, embedder="another-embedder") as store:
        assert store.list(all_scopes=True, include_deleted=True) == []


def many_records(location: str | Path, count: int) -> list[str]:
    """``count`` memories (every third updated, every fifth deleted); their ids, in order."""
    with MemoryStore(location) as store:
        added = store.add_many([f"fact number {i} about topic {i % 7}" for i in range(count)],
                               user_id="u")  # fmt: skip
        ids = [r.record.id for r in added]
        for i, rid in enumerate(ids):
            if i % 3 == 0:
                store.update(rid, f"revised fact {i}", user_id="u")
            if i % 5 == 0:
                store.delete(rid, user_id="u")
    return ids


def command(src: str | Path, dst: str | Path, batch: int) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "memora.cli", "memory", "migrate", "--from", str(src), "--to",
         str(dst), "--batch", str(batch)],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def history_rows(records: RecordStore, ids: list[str]) -> list[tuple[str, str]]:
    return [(rid, h.event) for rid in ids for h in records.history(rid)]


@pytest.mark.parametrize(
    ("direction", "sig"),
    [("to-postgres", signal.SIGKILL), ("to-sqlite", signal.SIGKILL),
     ("to-postgres", signal.SIGTERM)],
)  # fmt: skip
def test_an_interrupted_migration_resumes(
    tmp_path: Path, pg_dsn: str, direction: str, sig: signal.Signals
) -> None:
    sqlite = tmp_path / "store.db"
    src, dst = (sqlite, pg_dsn) if direction == "to-postgres" else (pg_dsn, sqlite)
    batch = 3
    ids = many_records(src, 300)
    proc = command(src, dst, batch)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    while line and not line.startswith("records: "):  # the first batch is committed
        line = proc.stderr.readline()
    assert line.startswith("records: "), proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130, err
        assert "every finished batch is kept" in err
        assert "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL

    source, target = open_records(src, readonly=True), open_records(dst)
    try:
        there = [r.id for r in target.records(None, include_deleted=True, limit=None)]
        assert 0 < len(there) < len(ids), "the command was not stopped midway"
        assert len(there) % batch == 0  # every batch whole or absent
        assert there == ids[: len(there)]
        assert history_rows(target, there) == history_rows(source, there)
    finally:
        source.close()
        target.close()

    rerun = command(src, dst, batch)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"records: {len(ids) - len(there)} moved, {len(there)} already there" in out
    source, target = open_records(src, readonly=True), open_records(dst)
    try:
        copied = [r.id for r in target.records(None, include_deleted=True, limit=None)]
        assert copied == ids  # each exactly once, in order
        assert history_rows(target, ids) == history_rows(source, ids)
        assert len(history_rows(target, ids)) == 300 + 100 + 60
    finally:
        source.close()
        target.close()


def memora(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["memory", *args], env=env)


def test_memory_commands_take_a_dsn(pg_dsn: str) -> None:
    added = memora("add", "Alice likes green tea.", "Alice has a dog.", "--db", pg_dsn,
                   "--user", "alice")  # fmt: skip
    assert added.exit_code == 0, added.output
    tea = added.output.splitlines()[0].split("\t")[1]
    listed = memora("list", "--db", pg_dsn, "--user", "alice")
    assert [line.split("\t")[1] for line in listed.output.splitlines()] == [
        "Alice likes green tea.", "Alice has a dog.",
    ]  # fmt: skip
    found = memora("search", "what does alice drink", "--db", pg_dsn, "--user", "alice", "--json")
    assert found.exit_code == 0, found.output
    assert json.loads(found.output.splitlines()[0])["id"] == tea
    assert memora("delete", tea, "--db", pg_dsn, "--user", "alice").exit_code == 0
    assert "DELETE" in memora("history", tea, "--db", pg_dsn, "--user", "alice").output
    assert "consistent" in memora("rebuild", "--db", pg_dsn).output


def test_memora_database_url_is_the_default_store(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMORA_DATABASE_URL", pg_dsn)
    assert memora("add", "Bob fixes bikes.", "--user", "bob").exit_code == 0
    listed = memora("list", "--user", "bob")
    assert listed.exit_code == 0 and "Bob fixes bikes." in listed.output
    with MemoryStore(pg_dsn) as store:
        assert [r.text for r in store.list(user_id="bob")] == ["Bob fixes bikes."]
    local = tmp_path / "local.db"  # --db still wins
    assert memora("add", "Carol sings.", "--db", str(local), "--user", "c").exit_code == 0
    with MemoryStore(local) as store:
        assert store.count(all_scopes=True) == 1
    monkeypatch.delenv("MEMORA_DATABASE_URL")
    missing = memora("list", "--user", "bob")  # without either: --db is required, as before
    assert missing.exit_code == 2 and "--db" in missing.output


def test_a_dsn_password_is_never_shown(postgres: Any, pg_dsn: str, tmp_path: Path) -> None:
    secret = pg_dsn.replace("postgresql://memora@", "postgresql://memora:s3cret-pw@")
    assert secret != pg_dsn
    doctor = memora("doctor", "--db", secret)
    assert doctor.exit_code == 1
    assert "error: ConfigError: memora memory doctor checks a SQLite file" in doctor.output
    assert "s3cret-pw" not in doctor.output and "memora:***@" in doctor.output
    src = tmp_path / "src.db"
    build_source(src)
    moved = memora("migrate", "--from", str(src), "--to", secret)
    assert moved.exit_code == 0, moved.output
    assert "s3cret-pw" not in moved.output and "memora:***@" in moved.output
    name = pg_dsn.split("@/", 1)[1].split("?", 1)[0]
    unreachable = secret.replace(f"@/{name}?", "@/nonexistent?")
    failed = memora("list", "--db", unreachable, "--all-scopes")
    assert failed.exit_code == 1
    assert "DatabaseUnreachableError" in failed.output and "s3cret-pw" not in failed.output


def test_the_same_store_on_both_sides_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src.db"
    build_source(src)
    result = memora("migrate", "--from", str(src), "--to", str(tmp_path / "." / "src.db"))
    assert result.exit_code == 1
    assert "same store" in result.output


def test_search_keys_and_occurred_at_migrate(tmp_path: Path, pg_dsn: str) -> None:
    src = tmp_path / "keys.db"
    with MemoryStore(src) as store:
        record = store.add("Our wifi password is pebble23.", user_id="kim", occurred_at=1e9,
                           keys=["How do I get online at home?"]).record  # fmt: skip
    report = run_migrate(src, pg_dsn)
    assert report.records.moved == 2  # the record and its key
    with MemoryStore(pg_dsn) as store:
        assert store.get(record.id, user_id="kim").occurred_at == 1e9
        assert [k.text for k in store.keys(record.id, user_id="kim")] == [
            "How do I get online at home?"
        ]  # fmt: skip
        (hit,) = store.search("How do I get online at home?", user_id="kim", k=1)
        assert hit.record.id == record.id and hit.via == "How do I get online at home?"
        assert store.count(user_id="kim") == 1 and store.verify_index().consistent
    again = run_migrate(src, pg_dsn)
    assert (again.records.moved, again.records.present) == (0, 2)

"""The storage contract (:class:`RecordStore`): one suite, run against every implementation.

A new backend joins by adding a fixture parameter; nothing here knows which one it runs on.
Vectors are small and hand-made: the contract is about records, not embeddings.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from memora.errors import ClosedError, InvalidRecordError
from memora.memory.contract import NewRecord, RecordStore
from memora.memory.records import SQLiteRecords
from memora.memory.types import AnyUserScope, MemoryRecord, Scope, content_hash

ALICE = Scope(user_id="alice")
ALICE_BOT = Scope(user_id="alice", agent_id="bot")
BOB = Scope(user_id="bob")
DIM = 4


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgres"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordStore]:
    store: RecordStore
    if request.param == "sqlite-file":
        store = SQLiteRecords(tmp_path / "records.db")
    elif request.param == "postgres":
        from memora.memory.postgres.records import PostgresRecords

        store = PostgresRecords(request.getfixturevalue("pg_dsn"))
    else:
        store = SQLiteRecords(":memory:")
    yield store
    store.close()


def new(text: str, scope: Scope, *, metadata: dict[str, object] | None = None,
        expires_at: float | None = None, seed: int = 0) -> NewRecord:  # fmt: skip
    now = time.time()
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    record = MemoryRecord(
        id=uuid.uuid4().hex, scope=scope, text=text, metadata=dict(metadata or {}),
        created_at=now, updated_at=now, embedder="test", dim=DIM,
        content_hash=content_hash(text), expires_at=expires_at,
    )  # fmt: skip
    return NewRecord(record, vector / np.linalg.norm(vector))


def test_insert_get_and_scopes(records: RecordStore) -> None:
    a, b = new("Alice likes tea.", ALICE_BOT), new("Bob likes coffee.", BOB)
    assert records.insert([a, b], actor="test") == [True, True]
    got = records.get(a.record.id, ALICE)  # a user's scope covers its agents
    assert got is not None and got.text == "Alice likes tea." and got.scope == ALICE_BOT
    assert records.get(a.record.id, BOB) is None  # never across scopes
    assert records.get(a.record.id, None) is not None  # an explicit all-scopes read
    assert [r.id for r in records.records(ALICE, include_deleted=False, limit=None)] == [
        a.record.id
    ]
    assert records.count(ALICE) == 1 and records.count(None) == 2
    assert [h.event for h in records.history(a.record.id)] == ["ADD"]
    assert records.history(a.record.id)[0].actor == "test"


def test_one_live_record_per_scope_and_text(records: RecordStore) -> None:
    first = new("Same text.", ALICE)
    assert records.insert([first], actor="t") == [True]
    again = new("  same TEXT. ", ALICE)  # the same normalized text
    other = new("Same text.", BOB)
    assert records.insert([again, other], actor="t") == [False, True]
    assert [r.id for r in records.by_hash(ALICE, [first.record.content_hash])] == [first.record.id]
    clash = new("Other text.", ALICE)
    records.insert([clash], actor="t")
    moved = replace(clash.record, text="Same text.", content_hash=content_hash("Same text."))
    with pytest.raises(InvalidRecordError, match="already stored"):
        records.update(moved, clash.vector, old_text="Other text.", metadata_changed=False,
                       actor="t")  # fmt: skip
    assert records.get(clash.record.id, ALICE).text == "Other text."  # type: ignore[union-attr]


def test_update_delete_and_history(records: RecordStore) -> None:
    item = new("Version one.", ALICE, metadata={"n": 1})
    records.insert([item], actor="t")
    changed = replace(item.record, text="Version two.", content_hash=content_hash("Version two."),
                      metadata={"n": 2}, updated_at=time.time())  # fmt: skip
    records.update(changed, item.vector, old_text="Version one.", metadata_changed=False,
                   actor="editor")  # fmt: skip
    got = records.get(item.record.id, ALICE)
    assert got is not None and got.text == "Version two." and got.metadata == {"n": 1}
    records.soft_delete(item.record.id, old_text="Version two.", at=time.time(), actor="t")
    assert records.count(ALICE) == 0
    assert records.records(ALICE, include_deleted=False, limit=None) == []
    deleted = records.get(item.record.id, ALICE)
    assert deleted is not None and deleted.deleted
    events = [(h.event, h.old_text, h.new_text) for h in records.history(item.record.id)]
    assert events == [("ADD", None, "Version one."), ("UPDATE", "Version one.", "Version two."),
                      ("DELETE", "Version two.", None)]  # fmt: skip
    records.hard_delete(item.record.id)
    assert records.get(item.record.id, None) is None and records.history(item.record.id) == []


def test_changes_since_lists_every_change_once(records: RecordStore) -> None:
    start = records.current_seq()
    a, b = new("first", ALICE), new("second", BOB)
    records.insert([a, b], actor="t")
    changes = records.changes_since(start)
    assert {r.key for r in changes.rows} and len(changes.rows) == 2
    assert all(r.vector is not None and r.live for r in changes.rows)
    assert changes.seq == records.current_seq() > start
    assert records.changes_since(changes.seq).rows == []
    key_a = next(r.key for r in changes.rows if r.scope == ALICE)
    records.soft_delete(a.record.id, old_text="first", at=time.time(), actor="t")
    soft = records.changes_since(changes.seq)
    assert [(r.key, r.live) for r in soft.rows] == [(key_a, False)]
    records.hard_delete(b.record.id)
    hard = records.changes_since(soft.seq)
    assert hard.rows == [] and len(hard.removed) == 1
    live = records.live_rows("test", vectors=False)
    assert live.rows == [] and live.seq == records.current_seq()


def test_lexical_and_metadata_filters_stay_inside_the_scope(records: RecordStore) -> None:
    bill, note = {"kind": "bill"}, {"kind": "note"}
    records.insert([new("The invoice INV-7 is paid.", ALICE, metadata=bill),
                    new("The invoice INV-7 is Bob's.", BOB, metadata=bill),
                    new("A note on tea.", ALICE, metadata=note)], actor="t")  # fmt: skip
    keys = records.lexical(["invoice", "INV"], ALICE, None, 10)
    fetched = records.fetch(keys, ALICE)
    assert [r.scope for r, _ in fetched.values()] == [ALICE]
    assert records.fetch(keys, BOB) == {}  # fetch applies the scope again
    bills = records.matching(ALICE, {"kind": "bill"}, "test")
    assert len(bills) == 1 and records.fetch(bills, ALICE)[bills[0]][0].text.startswith("The in")
    assert records.lexical(["invoice"], ALICE, {"kind": "note"}, 10) == []
    assert len(records.lexical(["invoice"], None, None, 10)) == 2


def test_expired_records_are_not_live(records: RecordStore) -> None:
    records.insert([new("gone soon", ALICE, expires_at=time.time() - 1),
                    new("stays", ALICE)], actor="t")  # fmt: skip
    assert records.count(ALICE) == 1
    assert [r.text for r in records.records(ALICE, include_deleted=False, limit=None)] == ["stays"]


def test_a_transaction_commits_everything_or_nothing(records: RecordStore) -> None:
    seq = records.current_seq()
    ran: list[str] = []
    with pytest.raises(RuntimeError), records.transaction():
        records.insert([new("lost", ALICE)], actor="t")
        records.after_commit(lambda: ran.append("rolled back"))
        raise RuntimeError("fail inside")
    assert records.count(None) == 0 and records.current_seq() == seq and ran == []
    with records.transaction():
        records.insert([new("kept one", ALICE)], actor="t")
        with records.transaction():  # nested: joins the outer one
            records.insert([new("kept two", BOB)], actor="t")
            records.after_commit(lambda: ran.append("committed"))
        assert ran == []  # not before the outer commit
    assert ran == ["committed"] and records.count(None) == 2


def test_export_meta_and_neural_log(records: RecordStore) -> None:
    item = new("exported", ALICE)
    records.insert([item], actor="t")
    [(record, vector)] = list(records.export(include_deleted=False))
    assert record.id == item.record.id
    assert np.array_equal(np.frombuffer(vector, dtype=np.float32), item.vector)
    records.set_meta("index:test", '{"seq": 1}')
    assert records.get_meta("index:test") == '{"seq": 1}' and records.get_meta("nope") is None
    log = records.neural()
    assert log.state("s") is None
    with records.transaction():
        log.put("s", "test", 1, b"state-1", 5.0, [(b"k1", b"v1"), (b"k2", b"v2")])
    assert log.state("s") == (1, b"state-1", "test")
    assert log.log("s") == [(1, 5.0, b"k1", b"v1"), (1, 5.0, b"k2", b"v2")]
    assert log.head("s") == 1 and log.head("other") is None
    with records.transaction():  # a write between checkpoints: logged, the state kept
        log.append("s", 2, 6.0, [(b"k3", b"v3")])
    assert log.state("s") == (1, b"state-1", "test") and log.head("s") == 2
    assert log.log("s", after=1) == [(2, 6.0, b"k3", b"v3")] and log.names() == ["s"]
    with records.transaction():  # a checkpoint alone, as a migration writes it
        log.put("s", "test", 3, b"state-3", 7.0, [])
    assert log.head("s") == 3 and len(log.log("s")) == 3


def test_closed_records_raise_a_memora_error(records: RecordStore) -> None:
    records.close()
    assert records.closed
    with pytest.raises(ClosedError, match="closed"):
        records.count(ALICE)


def test_a_scope_without_a_user_fails_closed(records: RecordStore) -> None:
    own, theirs = new("The bot's own note.", Scope(agent_id="bot")), new("Alice's.", ALICE_BOT)
    records.insert([own, theirs], actor="test")
    bot, every_user = Scope(agent_id="bot"), AnyUserScope(agent_id="bot")
    assert [r.id for r in records.records(bot, include_deleted=False, limit=None)] == [
        own.record.id
    ]
    assert records.get(theirs.record.id, bot) is None and records.count(bot) == 1
    assert records.get(theirs.record.id, every_user) is not None and records.count(every_user) == 2
    assert records.lexical(["alice"], bot, None, 10) == []


def key_of(record: NewRecord, text: str, seed: int = 9) -> NewRecord:
    """A search key of ``record``: a row of its own in the record's scope."""
    made = new(text, record.record.scope, seed=seed)
    return NewRecord(replace(made.record, key_of=record.record.id, dedup=False), made.vector)


def test_search_keys_are_found_but_never_listed_or_counted(records: RecordStore) -> None:
    tea = new("Alice likes tea.", ALICE)
    key = key_of(tea, "What does Alice drink in the morning?")
    assert records.insert([tea], actor="t") == [True] and records.insert([key], actor="t") == [True]
    assert [r.id for r in records.records(ALICE, include_deleted=True, limit=None)] == [
        tea.record.id
    ]  # fmt: skip
    assert records.count(ALICE) == 1 and records.count(ALICE, keys=True) == 2
    assert records.get(key.record.id, ALICE) is None  # a key is not a memory
    [(found, score)] = records.lexical_scored(["morning"], ALICE, None, 10)
    assert score > 0 and records.fetch([found], ALICE)[found][0].key_of == tea.record.id
    assert records.lexical_scored(["morning"], BOB, None, 10) == []
    assert [r.text for r in records.keys_of(tea.record.id)] == [key.record.text]
    (owner,) = records.fetch_ids([tea.record.id], ALICE).values()
    assert owner[0].id == tea.record.id and owner[1].shape == (DIM,)
    assert records.fetch_ids([tea.record.id], BOB) == {}
    records.soft_delete(tea.record.id, old_text=tea.record.text, at=time.time(), actor="t")
    assert records.keys_of(tea.record.id) == [] and records.count(ALICE, keys=True) == 0
    records.hard_delete(tea.record.id)
    assert records.export(True) is not None and [r for r, _ in records.export(True)] == []


def test_around_lists_a_scope_in_time_order(records: RecordStore) -> None:
    session = Scope(user_id="alice", session_id="s1")
    turns = [new(f"Turn number {i}.", session, seed=i) for i in range(5)]
    at = [50.0, 10.0, 30.0, 20.0, 40.0]  # written in another order than they occurred
    turns = [NewRecord(replace(t.record, occurred_at=a), t.vector)
             for t, a in zip(turns, at, strict=True)]  # fmt: skip
    other = new("Another session's turn.", Scope(user_id="alice", session_id="s2"))
    records.insert([*turns, other], actor="t")
    middle = turns[2].record  # occurred at 30: between 20 (turn 3) and 40 (turn 4)
    assert [r.text for r in records.around(middle, 1)] == ["Turn number 3.", "Turn number 4."]
    assert [r.text for r in records.around(middle, 9)] == [
        "Turn number 1.", "Turn number 3.", "Turn number 4.", "Turn number 0."
    ]  # fmt: skip
    assert records.around(middle, 0) == []

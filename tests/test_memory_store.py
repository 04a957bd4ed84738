"""The memory store's operations on real SQLite, faiss and the bundled MiniLM embedder."""

from __future__ import annotations

import io
import itertools
import json
import sqlite3
import time
from pathlib import Path

import pytest

from memora import ConfigError
from memora.errors import (
    ClosedError,
    InvalidOptionError,
    InvalidRecordError,
    RecordNotFoundError,
    SchemaVersionError,
    ScopeError,
)
from memora.memory import MemoryRecord, Scope, SearchOptions
from memora.memory.store import MemoryStore

pytestmark = pytest.mark.slow

ALICE = Scope(user_id="alice")
BOB = Scope(user_id="bob")


@pytest.fixture(params=["sqlite", "postgres"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> MemoryStore:
    """The same store API on both backends: a SQLite file, or a database on the test's
    PostgreSQL server."""
    if request.param == "postgres":
        location: Path | str = request.getfixturevalue("pg_dsn")
    else:
        location = tmp_path / "memories.db"
    with MemoryStore(location) as s:
        yield s


def test_add_get_and_scoped_search(store: MemoryStore) -> None:
    added = store.add_many(
        ["Alice drinks green tea every morning.", "Alice's dog is called Rex."], ALICE
    )
    assert [a.created for a in added] == [True, True]
    store.add("Bob drinks black coffee.", BOB)
    record = store.get(added[0].record.id, ALICE)
    assert record.text == "Alice drinks green tea every morning."
    assert record.scope == ALICE and record.embedder == "all-MiniLM-L6-v2" and record.dim == 384
    hits = store.search("What does she drink?", ALICE, k=5)
    assert hits[0].record.id == added[0].record.id
    assert {h.record.scope for h in hits} == {ALICE}
    assert hits[0].similarity > 0.3 and hits[0].dense_rank == 1


def test_same_text_is_stored_once_per_scope(store: MemoryStore) -> None:
    first = store.add("Alice likes green tea.", ALICE)
    again = store.add("  alice LIKES green   tea. ", ALICE)
    assert first.created and not again.created
    assert again.record.id == first.record.id
    assert store.add("Alice likes green tea.", BOB).created  # another scope
    batch = store.add_many(["x is 1", "x is 1", "y is 2"], ALICE)
    assert [b.created for b in batch] == [True, False, True]
    assert batch[0].record.id == batch[1].record.id
    assert store.count(ALICE) == 3


def test_update_reembeds_and_keeps_history(store: MemoryStore) -> None:
    rid = store.add("Alice lives in Paris.", ALICE, actor="agent").record.id
    store.update(rid, "Alice lives in Berlin.", ALICE, actor="user")
    assert store.get(rid, ALICE).text == "Alice lives in Berlin."
    assert store.search("Berlin", ALICE, mode="dense")[0].record.id == rid
    assert store.search("Paris", ALICE, mode="lexical") == []
    history = store.history(rid, ALICE)
    assert [(h.event, h.old_text, h.new_text, h.actor) for h in history] == [
        ("ADD", None, "Alice lives in Paris.", "agent"),
        ("UPDATE", "Alice lives in Paris.", "Alice lives in Berlin.", "user"),
    ]
    assert history[0].at <= history[1].at


def test_soft_and_hard_delete(store: MemoryStore) -> None:
    soft = store.add("Temporary note about the dentist.", ALICE).record.id
    hard = store.add("A secret to forget completely.", ALICE).record.id
    store.delete(soft, ALICE)
    assert store.get(soft, ALICE).deleted
    assert [h.event for h in store.history(soft, ALICE)] == ["ADD", "DELETE"]
    assert soft not in {h.record.id for h in store.search("dentist", ALICE)}
    assert store.count(ALICE) == 1
    assert len(store.list(ALICE, include_deleted=True)) == 2
    store.delete(hard, ALICE, hard=True)
    with pytest.raises(RecordNotFoundError):
        store.get(hard, ALICE)
    # the history went with it, as stored in the database itself
    rows = store.database.query("SELECT COUNT(*) FROM history WHERE memory_id = ?", (hard,))
    assert rows[0][0] == 0
    assert store.add("Temporary note about the dentist.", ALICE).created  # can be added again


def test_hybrid_search_fuses_dense_and_lexical(store: MemoryStore) -> None:
    store.add_many(
        [
            "The invoice number is INV-20931.",
            "Alice paid the electricity bill last week.",
            "The cat sleeps on the sofa.",
        ],
        ALICE,
    )
    lexical = store.search("INV-20931", ALICE, mode="lexical")
    assert lexical[0].record.text == "The invoice number is INV-20931."
    hybrid = store.search("which invoice number INV-20931", ALICE, k=3)
    assert hybrid[0].record.text.startswith("The invoice")
    assert hybrid[0].dense_rank is not None and hybrid[0].lexical_rank == 1
    assert all(a.score >= b.score for a, b in itertools.pairwise(hybrid))


def test_filters_min_score_and_recency(store: MemoryStore) -> None:
    store.add("Meeting with the bank on Monday.", ALICE, metadata={"kind": "event"})
    store.add("Alice prefers morning meetings.", ALICE, metadata={"kind": "preference"})
    hits = store.search("meeting", ALICE, filters={"kind": "preference"})
    assert [h.record.metadata["kind"] for h in hits] == ["preference"]
    assert store.search("meeting", ALICE, min_score=0.99) == []
    weighted = store.search("meeting", ALICE, recency_weight=1.0)
    assert all(h.score > 1.0 for h in weighted)  # both are recent: weight ~1 each
    with pytest.raises(ConfigError, match="identifier"):
        store.search("meeting", ALICE, filters={"kind') OR 1=1 --": "x"})


def test_expired_records_are_hidden(store: MemoryStore) -> None:
    store.add("This offer expired yesterday.", ALICE, expires_at=time.time() - 86_400)
    store.add("This offer runs for another hour.", ALICE, expires_at=time.time() + 3_600)
    store.add("This fact stays.", ALICE)
    assert store.count(ALICE) == 2
    texts = {h.record.text for h in store.search("offer", ALICE)}
    assert texts == {"This offer runs for another hour.", "This fact stays."}
    assert len(store.list(ALICE)) == 2


def test_reads_need_a_scope(store: MemoryStore) -> None:
    rid = store.add("Alice note.", ALICE).record.id
    store.add("Bob note.", BOB)
    for read in (
        lambda: store.search("note"),
        lambda: store.list(),
        lambda: store.count(),
        lambda: store.get(rid),
        lambda: store.history(rid),
    ):
        with pytest.raises(ScopeError, match="all_scopes=True"):
            read()
    with pytest.raises(ScopeError, match="needs a scope"):
        store.add("no scope")
    with pytest.raises(RecordNotFoundError, match="in this scope"):
        store.get(rid, BOB)
    with pytest.raises(RecordNotFoundError):
        store.update(rid, "Bob rewrites Alice", BOB)
    assert store.count(all_scopes=True) == 2
    assert {h.record.scope for h in store.search("note", all_scopes=True)} == {ALICE, BOB}


def test_index_survives_reopen_and_is_rebuilt_when_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with MemoryStore(path) as store:
        ids = [r.record.id for r in store.add_many([f"fact number {i}" for i in range(20)], ALICE)]
        index_file = store.index_path
    assert index_file is not None and index_file.is_file()
    with MemoryStore(path) as store:
        assert store.index.ntotal == 20
        assert store.search("fact number 7", ALICE, mode="dense")[0].record.id == ids[7]
    index_file.write_bytes(b"this is not a faiss index")
    with MemoryStore(path) as store:  # rebuilt from SQLite, no crash
        assert store.index.ntotal == 20
        assert store.search("fact number 7", ALICE, mode="dense")[0].record.id == ids[7]
    index_file.unlink()
    with MemoryStore(path) as store:
        assert store.index.ntotal == 20
        assert store.rebuild_index() == 20


def test_a_second_handle_sees_the_first_ones_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with MemoryStore(path) as one, MemoryStore(path, embedder=one.embedder) as two:
        rid = one.add("Written by the first handle.", ALICE).record.id
        assert two.search("first handle", ALICE)[0].record.id == rid
        one.delete(rid, ALICE, hard=True)
        assert two.search("first handle", ALICE) == []


def test_export_import_round_trip(store: MemoryStore) -> None:
    store.add_many(["Alice fact one.", "Alice fact two."], ALICE, metadata={"src": "chat"})
    rid = store.add("Bob fact.", BOB).record.id
    store.update(rid, "Bob fact, corrected.", BOB)
    buffer = io.StringIO()
    assert store.export(buffer) == 3
    lines = buffer.getvalue().splitlines()
    with MemoryStore(":memory:", embedder=store.embedder) as copy:
        assert copy.import_(lines) == (3, 0)
        assert copy.import_(lines) == (0, 3)  # nothing twice
        for scope in (ALICE, BOB):
            assert [r.to_dict() for r in copy.list(scope)] == [
                r.to_dict() for r in store.list(scope)
            ]
        assert [h.event for h in copy.history(rid, BOB)] == ["ADD", "UPDATE"]
        assert copy.search("corrected", BOB)[0].record.id == rid
    record = store.get(rid, BOB)
    assert MemoryRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_bad_input(store: MemoryStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidRecordError, match="non-empty"):
        store.add("   ", ALICE)
    small = MemoryStore(":memory:", embedder=store.embedder, max_text_chars=20)
    with pytest.raises(InvalidRecordError, match="limit of 20"):
        small.add("x" * 21, ALICE)
    with pytest.raises(InvalidRecordError, match="JSON-serializable"):
        store.add("fine text", ALICE, metadata={"when": object()})
    with pytest.raises(RecordNotFoundError, match="no memory"):
        store.get("does-not-exist", ALICE)
    with pytest.raises(RecordNotFoundError):
        store.delete("does-not-exist", ALICE)
    with pytest.raises(InvalidRecordError, match="not an exported memory"):
        store.import_(["{not json"])
    assert store.count(all_scopes=True) == 0  # nothing half-written
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaVersionError, match="newer memora"):
        MemoryStore(newer, embedder=store.embedder)


def test_past_the_threshold_the_index_turns_approximate(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    texts = [f"memory {i}: the {['red', 'blue', 'green'][i % 3]} box number {i}" for i in range(80)]
    with MemoryStore(path, approx_threshold=50) as store:
        ids = [r.record.id for r in store.add_many(texts, ALICE)]
        store.add("Bob's only memory.", BOB)
        assert store.index.kind == "hnsw"
        assert store.search(texts[42], ALICE, k=1, mode="dense")[0].record.id == ids[42]
        store.update(ids[42], "memory 42 was replaced by a yellow kite", ALICE)
        store.delete(ids[7], ALICE)
        dense = {h.record.id for h in store.search(texts[7], ALICE, k=80, mode="dense")}
        assert ids[7] not in dense and len(dense) == 79  # the deleted vector stays out
        assert store.search("yellow kite", ALICE, k=1, mode="dense")[0].record.id == ids[42]
        assert all(h.record.scope == BOB for h in store.search("box", BOB, k=5, mode="dense"))
        assert store.verify_index().consistent
    with MemoryStore(path, approx_threshold=50) as reopened:
        assert reopened.index.kind == "hnsw"
        assert reopened.verify_index().consistent


def test_add_many_takes_one_metadata_per_text(store: MemoryStore) -> None:
    turns = ["I moved to Porto in May.", "My sister lives in Lyon.", "I moved to Porto in May."]
    metas = [{"turn": 1, "date": "2024-05-02"}, {"turn": 2}, {"turn": 3}]
    added = store.add_many(turns, ALICE, metadatas=metas)
    assert [a.created for a in added] == [True, True, False]
    assert [a.record.metadata for a in added] == [metas[0], metas[1], metas[0]]  # first kept
    assert store.search("sister", ALICE, filters={"turn": 2})[0].record.text == turns[1]
    with pytest.raises(InvalidRecordError, match="one dict"):
        store.add_many(["a", "b"], ALICE, metadatas=[{"x": 1}])
    with pytest.raises(InvalidRecordError, match=r"metadata \(one for all\) or metadatas"):
        store.add_many(["a"], ALICE, metadata={"x": 1}, metadatas=[{"x": 2}])
    with pytest.raises(InvalidRecordError, match="list of texts"):
        store.add_many("one text", ALICE)
    assert store.count(ALICE) == 2  # the refused calls wrote nothing
    with pytest.warns(DeprecationWarning, match="add_many"):
        old_style = store.add(["list one", "list two"], ALICE)  # type: ignore[arg-type]
    assert [r.created for r in old_style] == [True, True]  # type: ignore[attr-defined]


def test_scopes_options_and_lifecycle_fail_with_memora_errors(store: MemoryStore) -> None:
    rid = store.add("Alice keeps bees.", {"user_id": "alice"}).record.id  # a dict scope
    assert store.get(rid, {"user_id": "alice"}).scope == ALICE
    with pytest.raises(ScopeError, match="unknown scope keys"):
        store.search("bees", {"user": "alice"})
    with pytest.raises(ScopeError, match="a Scope or a dict"):
        store.search("bees", "alice")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="did you mean 'k'"):
        store.search("bees", ALICE, top_k=5)
    with pytest.raises(ConfigError, match="neural memory"):
        store.search("bees", ALICE, neural_weight=1.0)  # this store has none
    with pytest.raises(ConfigError, match="k must be"):
        store.search("bees", ALICE, options=SearchOptions(k=0))
    hits = store.search("bees", ALICE, options=SearchOptions(k=1, mode="lexical"))
    assert [h.record.id for h in hits] == [rid]
    store.close()
    store.close()  # idempotent
    for call in (
        lambda: store.search("bees", ALICE),
        lambda: store.add("more", ALICE),
        lambda: store.get(rid, ALICE),
        lambda: store.count(ALICE),
    ):
        with pytest.raises(ClosedError, match="closed"):
            call()


def test_a_repeated_text_keeps_every_occurrence_and_its_metadata(
    store: MemoryStore, tmp_path: Path
) -> None:
    first = store.add("ok, thanks", ALICE, metadata={"day": 1})
    again = store.add("OK,  thanks", ALICE, metadata={"day": 2}, actor="chat")
    batch = store.add_many(["ok, thanks", "see you"], ALICE, metadatas=[{"day": 3}, {"day": 3}])
    assert first.created and not again.created and [r.created for r in batch] == [False, True]
    assert again.record.id == first.record.id and again.record.metadata == {"day": 1}
    seen = store.occurrences(first.record.id, ALICE)
    assert [(o.metadata, o.actor) for o in seen] == [({"day": 2}, "chat"), ({"day": 3}, "memora")]
    assert (
        seen[0].at >= first.record.created_at and store.occurrences(batch[1].record.id, ALICE) == []
    )
    with pytest.raises(RecordNotFoundError):
        store.occurrences(first.record.id, BOB)  # another scope's record: not found
    buffer = io.StringIO()
    store.export(buffer)
    with MemoryStore(tmp_path / "copy.db", embedder=store.embedder) as copy:
        copy.import_(buffer.getvalue().splitlines())
        assert copy.occurrences(first.record.id, ALICE) == seen  # export and import keep them
    from memora.memory.migrate import migrate

    with MemoryStore(tmp_path / "moved.db", embedder=store.embedder) as moved:
        migrate(store.records, moved.records)
        assert moved.occurrences(first.record.id, ALICE) == seen  # and so does a migration


def test_dedup_false_keeps_a_repeated_text_as_its_own_record(store: MemoryStore) -> None:
    kept = store.add("ok, thanks", ALICE, metadata={"day": 1})
    events = store.add_many(["ok, thanks", "ok, thanks"], ALICE, dedup=False,
                            metadatas=[{"day": 2}, {"day": 3}])  # fmt: skip
    assert (
        all(e.created for e in events)
        and len({kept.record.id, *(e.record.id for e in events)}) == 3
    )
    assert sorted(r.metadata["day"] for r in store.list(ALICE)) == [1, 2, 3]
    assert not events[0].record.dedup and store.get(events[0].record.id, ALICE).dedup is False
    again = store.add("OK, thanks", ALICE, metadata={"day": 4})  # dedup on: the deduped record
    assert again.record.id == kept.record.id and not again.created
    assert [o.metadata for o in store.occurrences(kept.record.id, ALICE)] == [{"day": 4}]
    buffer = io.StringIO()
    store.export(buffer)
    with MemoryStore(":memory:", embedder=store.embedder) as copy:
        assert copy.import_(buffer.getvalue().splitlines()) == (3, 0)  # all three, once each
        assert copy.import_(buffer.getvalue().splitlines()) == (0, 3)

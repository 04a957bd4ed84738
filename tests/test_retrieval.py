"""Retrieval features of the memory store (memory schema 4): ``occurred_at`` and ``when``,
search keys (found, never listed, counted or returned themselves; deleted, filtered, exported
and imported with their record), the score fusion and its weights, the time a query names,
``occurred_after``/``occurred_before``, neighbours and abstention, with the invariants that
hold across them (prefix stability, insertion-order invariance, no key across scopes). Every
store-level test runs on SQLite and on a real PostgreSQL server, with the bundled MiniLM."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memora.embed import Embedder, load_embedder
from memora.errors import ConfigError, InvalidOptionError, InvalidRecordError, RecordNotFoundError
from memora.memory.search import SearchOptions
from memora.memory.store import MemoryStore
from memora.memory.types import MemoryRecord, Scope, SearchHit
from memora.memory.when import resolve_time

pytestmark = pytest.mark.slow

ALICE = Scope(user_id="alice")
BOB = Scope(user_id="bob")
DAY = 86_400.0
NOW = 1_718_000_000.0  # Monday 2024-06-10 06:13 UTC: "last week" is June 3 to June 10
BACKENDS = ["sqlite", "postgres"]
_SCOPES = iter(range(1_000_000))


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once (offline)."""
    return load_embedder()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _location(backend: str, request: pytest.FixtureRequest, path: Path) -> Path | str:
    """A SQLite file, or a new database on the test PostgreSQL server."""
    if backend == "sqlite":
        return path
    server = request.getfixturevalue("postgres")
    return str(server.create_database(f"rt{os.getpid()}_{next(_SCOPES)}"))


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest, tmp_path: Path,
          embedder: Embedder) -> Iterator[MemoryStore]:  # fmt: skip
    """A fresh store on each backend."""
    with MemoryStore(_location(backend, request, tmp_path / "m.db"), embedder=embedder) as s:
        yield s


@pytest.fixture
def other(backend: str, request: pytest.FixtureRequest, tmp_path: Path,
          embedder: Embedder) -> Iterator[MemoryStore]:  # fmt: skip
    """A second, empty store on the same backend as ``store`` (an import's target)."""
    with MemoryStore(_location(backend, request, tmp_path / "o.db"), embedder=embedder) as s:
        yield s


@pytest.fixture(params=BACKENDS, scope="module")
def shared(request: pytest.FixtureRequest, embedder: Embedder) -> Iterator[MemoryStore | None]:
    """For hypothesis: None (a new in-memory SQLite store per example), or one PostgreSQL
    store shared by the examples, each in its own scope."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres")
    with MemoryStore(server.create_database("retrieval"), embedder=embedder) as s:
        yield s


@contextlib.contextmanager
def example_store(shared: MemoryStore | None, embedder: Embedder) -> Iterator[MemoryStore]:
    with contextlib.ExitStack() as stack:
        yield shared or stack.enter_context(MemoryStore(":memory:", embedder=embedder))


def ids(hits: list[SearchHit]) -> list[str]:
    return [h.record.id for h in hits]


def texts(records: list[MemoryRecord] | tuple[MemoryRecord, ...]) -> list[str]:
    return [r.text for r in records]


# -- occurred_at and when --------------------------------------------------------------------


def test_occurred_at_is_stored_and_when_falls_back_to_created_at(store: MemoryStore) -> None:
    dated = store.add("I ran a marathon.", ALICE, occurred_at=NOW - 3 * DAY).record
    plain = store.add("I like green tea.", ALICE).record
    assert dated.occurred_at == NOW - 3 * DAY and dated.when == NOW - 3 * DAY
    assert plain.occurred_at is None and plain.when == plain.created_at
    assert dated.key_of is None and plain.key_of is None
    assert store.get(dated.id, ALICE).occurred_at == NOW - 3 * DAY
    one_time = store.add_many(["a cat sat", "a dog ran"], ALICE, occurred_at=NOW)
    assert [r.record.occurred_at for r in one_time] == [NOW, NOW]
    each = store.add_many(["it rained", "it snowed", "sun"], ALICE, occurred_at=[NOW, None, 5])
    assert [r.record.occurred_at for r in each] == [NOW, None, 5.0]
    assert [store.get(r.record.id, ALICE).when for r in each] == [
        NOW, each[1].record.created_at, 5.0,
    ]  # fmt: skip


# -- search keys -----------------------------------------------------------------------------


def test_keys_find_their_record_and_are_never_listed_counted_or_hits(store: MemoryStore) -> None:
    record = store.add("Alice's sister Maya lives in Lisbon.", ALICE).record
    store.add("Alice drinks green tea every morning.", ALICE)
    question = "Which Portuguese capital is home to her sibling?"
    rows = store.add_keys(record.id, [question, "Who is Alice's sister?"], ALICE)
    assert [k.text for k in rows] == [question, "Who is Alice's sister?"]
    assert {k.key_of for k in rows} == {record.id} and {k.scope for k in rows} == {ALICE}
    assert texts(store.keys(record.id, ALICE)) == [k.text for k in rows]
    assert [k.id for k in store.keys(record.id, ALICE)] == [k.id for k in rows]
    assert store.count(ALICE) == 2 and len(store.list(ALICE)) == 2
    assert len(store.list(ALICE, include_deleted=True)) == 2
    assert all(r.key_of is None for r in store.list(all_scopes=True))
    for mode in ("hybrid", "dense", "lexical"):
        hits = store.search(question, ALICE, mode=mode)
        assert hits[0].record.id == record.id, mode
        assert hits[0].via == question, mode
        assert all(h.record.key_of is None for h in hits), mode
        assert len(set(ids(hits))) == len(hits), mode  # a record and its keys: one hit
    with pytest.raises(RecordNotFoundError):  # a key is not a record
        store.get(rows[0].id, ALICE)


def test_keys_given_to_add_and_duplicate_keys_are_skipped(store: MemoryStore) -> None:
    record = store.add("Bob fixed the red bicycle.", BOB, keys=["Who fixed the bike?"]).record
    assert texts(store.keys(record.id, BOB)) == ["Who fixed the bike?"]
    again = store.add_keys(record.id, [
        "  bob FIXED the red   bicycle. ",  # the record's own text (normalized)
        "who fixed the bike?",  # an existing key
        "What colour is the bicycle?",
        "what colour is the BICYCLE?",  # twice in one call
    ], BOB)  # fmt: skip
    assert texts(again) == ["What colour is the bicycle?"]
    assert texts(store.keys(record.id, BOB)) == [
        "Who fixed the bike?",
        "What colour is the bicycle?",
    ]
    assert store.add_keys(record.id, ["Who fixed the bike?"], BOB) == []
    # the same text added again is an occurrence; its keys join the same record
    dup = store.add("Bob fixed the red bicycle.", BOB, keys=["When was the bike repaired?"])
    assert not dup.created and dup.record.id == record.id
    assert len(store.keys(record.id, BOB)) == 3 and store.count(BOB) == 1


def test_a_deleted_record_hides_its_keys_and_a_hard_delete_removes_them(
    store: MemoryStore,
) -> None:
    soft = store.add("The spare key is under the blue flowerpot.", ALICE).record
    hard = store.add("The wifi password is on the fridge.", ALICE).record
    store.add("Alice grows tomatoes in her garden.", ALICE)
    store.add_keys(soft.id, ["Where is the spare key hidden?"], ALICE)
    store.add_keys(hard.id, ["What is the wifi password?"], ALICE)
    store.delete(soft.id, ALICE)
    assert store.keys(soft.id, ALICE) == []
    with pytest.raises(RecordNotFoundError):
        store.add_keys(soft.id, ["Where is the key?"], ALICE)
    store.delete(hard.id, ALICE, hard=True)
    with pytest.raises(RecordNotFoundError):
        store.keys(hard.id, ALICE)
    for mode in ("hybrid", "dense", "lexical"):
        for query in ("Where is the spare key hidden?", "What is the wifi password?"):
            found = ids(store.search(query, ALICE, mode=mode))
            assert soft.id not in found and hard.id not in found, (mode, query)
    out = io.StringIO()
    store.export(out, include_deleted=True)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(hard.id not in (r["id"], r.get("key_of")) for r in rows)


def test_the_index_stays_consistent_with_keys_through_deletes(
    store: MemoryStore, backend: str, request: pytest.FixtureRequest
) -> None:
    soft = store.add("The spare key is under the blue flowerpot.", ALICE).record
    hard = store.add("The wifi password is on the fridge.", ALICE).record
    store.add("Alice grows tomatoes in her garden.", ALICE)
    store.add_keys(soft.id, ["Where is the spare key hidden?"], ALICE)
    store.add_keys(hard.id, ["What is the wifi password?"], ALICE)
    assert store.verify_index().consistent
    store.delete(soft.id, ALICE)
    store.delete(hard.id, ALICE, hard=True)
    assert store.verify_index().consistent
    assert store.rebuild_index() >= 1 and store.verify_index().consistent


def test_metadata_updates_reach_the_keys_so_filters_work_through_them(store: MemoryStore) -> None:
    record = store.add("Maya moved to Lisbon in spring.", ALICE, metadata={"topic": "old"}).record
    store.add("Alice's cat is called Tom.", ALICE, metadata={"topic": "family"})
    store.add_keys(record.id, ["Which city is Maya's home now?"], ALICE)
    query = "Which city is Maya's home now?"
    for mode in ("hybrid", "dense", "lexical"):
        assert record.id not in ids(
            store.search(query, ALICE, mode=mode, filters={"topic": "family"})
        )
    store.update(record.id, "Maya moved to Lisbon in spring.", ALICE, metadata={"topic": "family"})
    assert [k.metadata for k in store.keys(record.id, ALICE)] == [{"topic": "family"}]
    for mode in ("hybrid", "dense", "lexical"):
        hits = store.search(query, ALICE, mode=mode, filters={"topic": "family"})
        assert hits[0].record.id == record.id and hits[0].via == query, mode
        assert ids(store.search(query, ALICE, mode=mode, filters={"topic": "old"})) == [], mode


def test_keys_false_searches_the_records_alone(store: MemoryStore) -> None:
    record = store.add("Zephyr is the name of the sailing boat.", ALICE).record
    store.add_keys(record.id, ["quokka marmalade"], ALICE)
    assert store.search("quokka marmalade", ALICE, mode="lexical")[0].via == "quokka marmalade"
    for mode in ("hybrid", "dense", "lexical"):
        hits = store.search("quokka marmalade", ALICE, mode=mode, keys=False)
        assert all(h.via is None for h in hits), mode
    assert store.search("quokka marmalade", ALICE, mode="lexical", keys=False) == []


def test_a_key_never_surfaces_in_another_scope(store: MemoryStore) -> None:
    secret = store.add("The vault code is 4711.", ALICE).record
    store.add_keys(secret.id, ["What is the vault code?"], ALICE)
    own = store.add("Bob keeps his bike in the shed.", BOB).record
    store.add_keys(own.id, ["Where is Bob's bike?"], BOB)
    store.add("Bob's vault is at the bank.", Scope(user_id="bob", session_id="s1"))
    for mode in ("hybrid", "dense", "lexical"):
        for kw in ({}, {"keys": False}, {"neighbours": 2}, {"fusion": "rrf"}):
            hits = store.search("What is the vault code?", BOB, mode=mode, k=50, **kw)
            assert secret.id not in ids(hits), (mode, kw)
            assert all(h.record.scope.user_id == "bob" for h in hits)
            assert all(h.via in (None, "Where is Bob's bike?") for h in hits)
            assert all(c.scope.user_id == "bob" for h in hits for c in h.context)
    # and only B's key names the way B's record was found
    assert store.search("Where is Bob's bike?", BOB)[0].via == "Where is Bob's bike?"
    for mode in ("hybrid", "dense", "lexical"):
        hits = store.search("Where is Bob's bike?", ALICE, mode=mode, k=50)
        assert own.id not in ids(hits) and all(h.via is None for h in hits), mode


# -- export and import -----------------------------------------------------------------------


def _export(store: MemoryStore) -> list[str]:
    out = io.StringIO()
    store.export(out)
    return out.getvalue().splitlines()


def test_export_and_import_keep_keys_and_occurred_at(
    store: MemoryStore, other: MemoryStore
) -> None:
    record = store.add("Maya moved to Lisbon.", ALICE, occurred_at=NOW - 40 * DAY,
                       keys=["Where does Maya live?"]).record  # fmt: skip
    store.add("Alice drinks tea.", ALICE, occurred_at=NOW)
    lines = _export(store)
    assert len(lines) == 3
    assert other.import_(lines) == (3, 0)
    assert other.count(ALICE) == 2 and other.verify_index().consistent
    assert other.get(record.id, ALICE).occurred_at == NOW - 40 * DAY
    (key,) = other.keys(record.id, ALICE)
    assert key.text == "Where does Maya live?" and key.key_of == record.id
    assert key.occurred_at == NOW - 40 * DAY
    hit = other.search("Where does Maya live?", ALICE)[0]
    assert hit.record.id == record.id and hit.via == "Where does Maya live?"
    assert other.import_(lines) == (0, 3)  # again: nothing new


def test_a_key_whose_record_is_missing_from_an_import_is_skipped(
    store: MemoryStore, other: MemoryStore
) -> None:
    record = store.add("Maya moved to Lisbon.", ALICE, keys=["Where does Maya live?"]).record
    store.add("Alice drinks tea.", ALICE)
    lines = [line for line in _export(store) if json.loads(line)["id"] != record.id]
    assert len(lines) == 2
    assert other.import_(lines) == (1, 1)
    assert other.count(ALICE) == 1
    assert all(h.via is None for h in other.search("Where does Maya live?", ALICE))
    assert len(_export(other)) == 1


def test_a_key_whose_record_the_import_skips_is_skipped_too(
    store: MemoryStore, other: MemoryStore
) -> None:
    store.add("Alice likes tea.", ALICE, keys=["What does Alice drink?"])
    other.add("Alice likes tea.", ALICE)  # the same text, another id
    assert other.import_(_export(store)) == (0, 2)


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {"neighbours": -1}, {"neighbours": 51}, {"neighbours": 1.5}, {"neighbours": True},
    {"fusion": "max"}, {"dense_weight": 2}, {"dense_weight": -0.1}, {"dense_weight": "0.5"},
    {"now": float("nan")}, {"now": float("inf")}, {"now": True},
    {"occurred_after": float("nan")}, {"occurred_before": "2024"},
    {"abstain_below": float("nan")}, {"time_weight": -1}, {"time_weight": float("inf")},
])  # fmt: skip
def test_invalid_options_raise_config_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SearchOptions(**bad)


def test_invalid_options_raise_before_the_search(store: MemoryStore) -> None:
    store.add("Alice drinks tea.", ALICE)
    for bad in ({"neighbours": -1}, {"fusion": "max"}, {"dense_weight": 2},
                {"now": float("nan")}):  # fmt: skip
        with pytest.raises(ConfigError):
            store.search("tea", ALICE, **bad)
    with pytest.raises(InvalidOptionError):
        store.search("tea", ALICE, neighbors=1)
    opts = SearchOptions(fusion="rrf", dense_weight=0.2, adaptive=False, neighbours=1,
                         abstain_below=0.1, keys=False, time_weight=0.0)  # fmt: skip
    assert store.search("tea", ALICE, options=opts)[0].record.text == "Alice drinks tea."


# -- time --------------------------------------------------------------------------------------

RUNS = ["I went running in the park.", "I went for a run in the park.",
        "I went running along the park.", "I went jogging in the park."]  # fmt: skip


def test_the_time_a_query_names_favours_the_event_that_occurred_then(store: MemoryStore) -> None:
    """The same event on several dates (dedup=False): the one in the window ranks first."""
    query = "Where did I go running last week?"
    window = resolve_time(query, NOW)
    assert window is not None and window.end <= NOW
    weeks_ago = [5, 1, 3, 9]  # the second happened last week
    added = [store.add(RUNS[0], ALICE, dedup=False, occurred_at=NOW - w * 7 * DAY + DAY).record
             for w in weeks_ago]  # fmt: skip
    store.add_many(["Alice drinks green tea.", "The train to Lyon was late."], ALICE)
    inside = [r.id for r in added if window.start <= r.when < window.end]
    assert inside == [added[1].id]
    for mode in ("hybrid", "dense", "lexical"):
        for fusion in ("score", "rrf"):
            hits = store.search(query, ALICE, mode=mode, fusion=fusion, now=NOW)
            assert hits[0].record.id == inside[0], (mode, fusion)
            plain = store.search(query, ALICE, mode=mode, fusion=fusion, now=NOW, time_weight=0)
            bonus = {h.record.id: h.score for h in hits}[inside[0]]
            assert bonus == pytest.approx(
                {h.record.id: h.score for h in plain}[inside[0]] + SearchOptions().time_weight
            )
    # asked a month later, "last week" names no stored run: no bonus for any of them
    later = store.search(query, ALICE, now=NOW + 30 * DAY, k=10)
    again = store.search(query, ALICE, now=NOW + 30 * DAY, k=10, time_weight=0)
    assert [h.score for h in later] == pytest.approx([h.score for h in again])


def test_the_time_a_query_names_favours_the_paraphrase_that_occurred_then(
    store: MemoryStore,
) -> None:
    query = "Where did I go running last week?"
    weeks_ago = [5, 1, 3, 9]  # RUNS[1] happened last week
    added = store.add_many(RUNS, ALICE, occurred_at=[NOW - w * 7 * DAY + DAY for w in weeks_ago])
    assert store.search(query, ALICE, mode="dense", now=NOW)[0].record.id == added[1].record.id


def test_occurred_after_and_before_filter_on_when(store: MemoryStore) -> None:
    added = store.add_many(RUNS, ALICE, occurred_at=[NOW - 3 * DAY, NOW - 2 * DAY, NOW - DAY,
                                                     None])  # fmt: skip
    written = added[3].record.created_at  # RUNS[3]: when it was written (now, not NOW)
    by_text = {a.record.text: a.record.id for a in added}
    for mode in ("hybrid", "dense", "lexical"):

        def found(mode: str = mode, **window: float) -> set[str]:
            hits = store.search("running in the park", ALICE, mode=mode, k=10, **window)
            return {h.record.text for h in hits}

        assert found(occurred_after=NOW - 2 * DAY) >= {RUNS[1], RUNS[2]} - (
            set() if mode != "lexical" else {RUNS[1]}
        )
        assert RUNS[0] not in found(occurred_after=NOW - 2 * DAY)
        assert found(occurred_after=NOW - 2 * DAY, occurred_before=NOW - DAY) <= {RUNS[1]}
        assert found(occurred_before=NOW - 2 * DAY) <= {RUNS[0]}  # before is exclusive
        assert found(occurred_after=NOW - DAY + 1, occurred_before=written) == set()
        assert found(occurred_after=written) <= {RUNS[3]}
    dense = store.search("running in the park", ALICE, mode="dense", k=10,
                         occurred_after=NOW - 2 * DAY, occurred_before=NOW - DAY)  # fmt: skip
    assert ids(dense) == [by_text[RUNS[1]]]
    assert ids(store.search("park", ALICE, mode="dense", occurred_after=written)) == [
        by_text[RUNS[3]]
    ]


# -- neighbours --------------------------------------------------------------------------------


def test_neighbours_are_the_records_around_a_hit_in_its_scope_in_time_order(
    store: MemoryStore,
) -> None:
    s1 = Scope(user_id="alice", session_id="s1")
    # written out of time order: the context follows occurred_at
    order = [3, 0, 4, 1, 2, 5]
    notes = [f"Turn {i}: we talked about topic number {i}." for i in range(6)]
    added = {i: store.add(notes[i], s1, occurred_at=NOW + i * 60).record for i in order}
    store.add_keys(added[2].id, ["neighbour key text about topic number two"], s1)
    store.add("Turn 2.5 in another session.", Scope(user_id="alice", session_id="s2"),
              occurred_at=NOW + 150)  # fmt: skip
    store.add("Turn 2.6 of Bob.", Scope(user_id="bob", session_id="s1"), occurred_at=NOW + 160)
    gone = store.add("Turn 2.7 deleted.", s1, occurred_at=NOW + 170).record
    store.delete(gone.id, s1)

    def context(n: int, query: str = "Turn 2: we talked about topic number 2.") -> list[str]:
        (hit,) = store.search(query, s1, k=1, neighbours=n, mode="lexical")
        assert hit.record.id == added[2].id
        return texts(hit.context)

    assert context(0) == []
    assert context(1) == [notes[1], notes[3]]
    assert context(2) == [notes[0], notes[1], notes[3], notes[4]]
    assert context(50) == [notes[0], notes[1], notes[3], notes[4], notes[5]]
    # at the edge: only what there is
    (first,) = store.search(notes[0], s1, k=1, neighbours=2, mode="lexical")
    assert first.record.id == added[0].id and texts(first.context) == [notes[1], notes[2]]
    # a hit found through a key has the same context; every hit has its own
    (via_key,) = store.search("neighbour key text", s1, k=1, neighbours=1, keys=True)
    assert via_key.record.id == added[2].id and texts(via_key.context) == [notes[1], notes[3]]
    for hit in store.search("topic number", s1, k=6, neighbours=1):
        assert hit.record not in hit.context and 1 <= len(hit.context) <= 2
        assert all(c.key_of is None and c.scope == s1 and not c.deleted for c in hit.context)
        assert [c.when for c in hit.context] == sorted(c.when for c in hit.context)


# -- abstention ------------------------------------------------------------------------------


def test_abstain_below_returns_nothing_when_the_best_similarity_is_low(store: MemoryStore) -> None:
    store.add_many(["Alice drinks green tea every morning.", "Alice's dog is called Rex."], ALICE)
    query = "What does Alice drink in the morning?"
    best = max(h.similarity for h in store.search(query, ALICE, mode="dense"))
    for mode in ("hybrid", "dense", "lexical"):
        assert store.search(query, ALICE, mode=mode, abstain_below=best - 0.01), mode
        assert store.search(query, ALICE, mode=mode, abstain_below=best + 0.01) == [], mode
    assert store.search("quantum chromodynamics lattice", ALICE, abstain_below=0.5) == []
    hits = store.search("quantum chromodynamics lattice", ALICE, abstain_below=None)
    assert len(hits) == 2


def test_abstain_below_does_not_depend_on_k(store: MemoryStore) -> None:
    store.add("I fixed the kitchen sink.", ALICE, occurred_at=NOW - 30 * DAY)
    store.add("We had a picnic by the lake.", ALICE, occurred_at=NOW - 4 * DAY)  # last week
    query = "what did I fix last week"
    options = {"now": NOW, "time_weight": 2.0, "abstain_below": 0.3}
    two = store.search(query, ALICE, k=2, **options)
    one = store.search(query, ALICE, k=1, **options)
    assert ids(one) == ids(two)[:1]


# -- fusion ------------------------------------------------------------------------------------

WORDS = ["tea", "coffee", "dog", "cat", "garden", "train", "red", "blue", "morning", "Lyon"]
phrases = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)


def test_the_score_fusion_matches_one_retriever_at_the_ends_of_dense_weight(
    store: MemoryStore,
) -> None:
    notes = ["Alice drinks green tea every morning.", "Coffee makes Bob nervous.",
             "The dog sleeps in the garden.", "Tea with milk, tea without sugar: tea time.",
             "A red train to Lyon.", "Morning walks with the dog."]  # fmt: skip
    store.add_many(notes, ALICE)
    for query in ("tea", "dog morning", "Which beverage wakes people up?", "train Lyon red"):
        dense = store.search(query, ALICE, mode="dense")
        as_dense = store.search(query, ALICE, dense_weight=1, adaptive=False)
        assert as_dense[0].record.id == dense[0].record.id, query
        lexical = store.search(query, ALICE, mode="lexical")
        as_lexical = store.search(query, ALICE, dense_weight=0, adaptive=False)
        if lexical:
            top = {h.record.id for h in lexical if h.score == pytest.approx(lexical[0].score)}
            assert as_lexical[0].record.id in top, query
            assert as_lexical[0].lexical_rank is not None
    for fusion in ("score", "rrf"):
        hits = store.search("tea", ALICE, fusion=fusion, k=6)
        assert len(hits) == 6 and len(set(ids(hits))) == 6


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    notes=st.lists(st.tuples(phrases, st.lists(phrases, max_size=2)), min_size=1, max_size=12,
                   unique_by=lambda n: n[0]),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
    mode=st.sampled_from(["hybrid", "dense", "lexical"]),
    fusion=st.sampled_from(["score", "rrf"]),
    dense_weight=st.sampled_from([0.0, 0.5, 1.0]),
    fusion_depth=st.integers(1, 8),
    ks=st.tuples(st.integers(1, 10), st.integers(1, 30)),
)  # fmt: skip
def test_a_ranking_with_keys_is_prefix_stable(
    shared: MemoryStore | None, embedder: Embedder, notes: list[tuple[str, list[str]]],
    query: str, mode: str, fusion: str, dense_weight: float, fusion_depth: int,
    ks: tuple[int, int],
) -> None:  # fmt: skip
    """search(k=a) is the first a hits of search(k=b) with keys among the candidates."""
    a, b = sorted(ks)
    user = f"p{next(_SCOPES)}"
    with example_store(shared, embedder) as store:
        added = store.add_many([text for text, _ in notes], user_id=user)
        for result, (_, keys) in zip(added, notes, strict=True):
            if keys:
                store.add_keys(result.record.id, keys, user_id=user)
        options: dict[str, Any] = {"mode": mode, "fusion": fusion, "dense_weight": dense_weight,
                                   "fusion_depth": fusion_depth, "user_id": user}  # fmt: skip
        short = store.search(query, k=a, **options)
        long = store.search(query, k=b, **options)
        assert ids(short) == ids(long)[:a]
        assert [h.via for h in short] == [h.via for h in long][:a]
        assert len(set(ids(long))) == len(long)
        assert all(h.record.key_of is None for h in long)
        if mode != "lexical":
            assert len(long) == min(b, len(notes))


def _ranking_is_consistent(first: list[SearchHit], second: list[SearchHit]) -> None:
    """The same hits in the same order, up to the order of hits whose scores tie (a tie is
    broken by id, and a batch of embeddings can differ in the last float bits)."""
    assert len(first) == len(second)
    i = 0
    while i < len(first):
        j = i + 1
        while j < len(first) and abs(first[j].score - first[i].score) <= 1e-4:
            j += 1
        assert sorted(h.record.text for h in first[i:j]) == sorted(
            h.record.text for h in second[i:j]
        ), (i, first, second)
        i = j


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    notes=st.lists(phrases, min_size=1, max_size=15, unique=True),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
    mode=st.sampled_from(["hybrid", "dense", "lexical"]),
    data=st.data(),
)  # fmt: skip
def test_the_ranking_does_not_depend_on_insertion_order(
    shared: MemoryStore | None, embedder: Embedder, notes: list[str], query: str, mode: str,
    data: st.DataObject,
) -> None:  # fmt: skip
    shuffled = data.draw(st.permutations(notes))
    rankings = []
    for order in (notes, shuffled):  # a store each: full-text statistics span a whole store
        user = f"o{next(_SCOPES)}"
        with example_store(shared, embedder) as store:
            store.add_many(order, user_id=user, occurred_at=NOW)
            rankings.append(store.search(query, user_id=user, mode=mode, k=len(notes), now=NOW))
    _ranking_is_consistent(*rankings)


def test_time_window_and_scores_are_finite(store: MemoryStore) -> None:
    store.add_many(RUNS, ALICE, occurred_at=NOW - 6 * DAY)
    for fusion in ("score", "rrf"):
        hits = store.search("running yesterday last week", ALICE, fusion=fusion, now=NOW)
        assert hits and all(math.isfinite(h.score) for h in hits)


def test_update_can_move_when_a_record_occurred(store: MemoryStore) -> None:
    record = store.add("Maya lives in Porto.", ALICE, occurred_at=NOW - 90 * DAY).record
    same = store.update(record.id, "Maya lives in Lisbon.", ALICE)
    assert same.occurred_at == NOW - 90 * DAY  # kept unless given
    moved = store.update(record.id, "Maya lives in Braga.", ALICE, occurred_at=NOW - DAY)
    assert moved.occurred_at == NOW - DAY and store.get(record.id, ALICE).when == NOW - DAY
    with pytest.raises(InvalidRecordError):
        store.update(record.id, "Maya lives in Faro.", ALICE, occurred_at=float("nan"))
    assert store.get(record.id, ALICE).text == "Maya lives in Braga."

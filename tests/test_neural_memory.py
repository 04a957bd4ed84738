"""The Titans-like neural memory: its mechanisms on real MiniLM embeddings, and its place in the
memory store (persistence in the same transaction, replay, scopes, search)."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from memora._sqlite import FILE_FORMAT
from memora.embed import load_embedder
from memora.errors import ConfigError, InvalidRecordError
from memora.memory import Scope
from memora.memory.neural import NeuralConfig, NeuralMemory, NextMemory
from memora.memory.neural_bank import NeuralBank
from memora.memory.store import MemoryStore

pytestmark = pytest.mark.slow

FACTS = [
    ("What did I hide in the attic?", "A box of letters from my grandmother sits under the roof."),
    ("Where is the spare key?", "It is taped behind the third drawer of the kitchen cabinet."),
    ("What is my favourite film?", "I have watched Spirited Away more than twenty times."),
    ("Who is my dentist?", "Dr. Okafor on Elm Street cleans my teeth every March."),
    ("Which language am I learning?", "I practise Finnish vocabulary every morning on the bus."),
    ("What is my bike lock code?", "The combination on my bicycle chain is 4-9-1-7."),
]


@pytest.fixture(scope="module")
def embed():  # type: ignore[no-untyped-def]
    embedder = load_embedder()
    return lambda texts: embedder.encode(list(texts))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def test_surprise_falls_on_repeated_pairs_and_rises_on_novel_ones(embed) -> None:  # type: ignore[no-untyped-def]
    keys, values = embed([c for c, _ in FACTS]), embed([f for _, f in FACTS])
    memory = NeuralMemory(keys.shape[1])
    for k, v in zip(keys[1:], values[1:], strict=True):  # some history
        memory.write(k, v)
    seen = [memory.write(keys[0], values[0]).scores[0] for _ in range(6)]
    losses = [s.loss for s in seen]
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.5 * losses[0]
    (novel,) = memory.surprise(embed(["Where was I born?"]), embed(["In a small harbour town."]))
    repeated = memory.surprise(keys[0], values[0])[0]
    assert novel.surprise > 2 * repeated.surprise
    assert novel.normalized > repeated.normalized
    assert novel.surprise == pytest.approx(2 * np.sqrt(novel.loss))


def test_forgetting_decays_old_associations(embed) -> None:  # type: ignore[no-untyped-def]
    keys, values = embed([c for c, _ in FACTS]), embed([f for _, f in FACTS])
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((150, keys.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    loss_after = {}
    for half_life in (20.0, 1e9):
        memory = NeuralMemory(keys.shape[1], NeuralConfig(forget_half_life_steps=half_life))
        for _ in range(5):
            memory.write(keys[0], values[0])
        for i in range(0, 150, 2):
            memory.write(noise[i], noise[i + 1])
        loss_after[half_life] = memory.surprise(keys[0], values[0])[0].loss
    assert loss_after[20.0] > 1.5 * loss_after[1e9]

    # by wall-clock time: after many half-lives the learned part is gone
    memory = NeuralMemory(keys.shape[1], NeuralConfig(forget_half_life_seconds=10.0))
    for t in range(5):
        memory.write(keys[0], values[0], at=float(t))
    learned = memory.surprise(keys[0], values[0])[0].loss
    assert learned < 0.5
    memory.write(keys[1], values[1], at=10_000.0)
    assert memory.surprise(keys[0], values[0])[0].loss > 0.8 > 2 * learned
    fresh = NeuralMemory(keys.shape[1]).surprise(keys[0], values[0])[0].loss
    assert memory.surprise(keys[0], values[0])[0].loss == pytest.approx(fresh, rel=0.15)


def test_cue_reads_point_to_their_content(embed) -> None:  # type: ignore[no-untyped-def]
    keys, values = embed([c for c, _ in FACTS]), embed([f for _, f in FACTS])
    memory = NeuralMemory(keys.shape[1])
    assert np.allclose(memory.read(keys[0]), 0.0)  # an empty memory reads nothing
    for _ in range(4):
        memory.write(keys, values)
    reads = memory.read(keys)
    sims = np.array([[cosine(r, v) for v in values] for r in reads])
    assert (sims.argmax(axis=1) == np.arange(len(FACTS))).all()


def test_what_comes_next(embed) -> None:  # type: ignore[no-untyped-def]
    a, b, c = embed(["The knight saddles his horse.", "He rides to the tower.", "A dragon waits."])
    nxt = NextMemory(NeuralMemory(len(a)))
    for _ in range(4):
        for vec in (a, b, c):
            nxt.observe(vec)
        nxt.last = None  # a new episode
    assert cosine(nxt.predict(a), b) > cosine(nxt.predict(a), c)
    assert cosine(nxt.predict(b), c) > cosine(nxt.predict(b), a)
    with pytest.raises(InvalidRecordError, match="observe"):
        NextMemory(NeuralMemory(len(a))).predict()


def test_state_round_trips_and_bad_input(embed) -> None:  # type: ignore[no-untyped-def]
    keys, values = embed([c for c, _ in FACTS]), embed([f for _, f in FACTS])
    memory = NeuralMemory(keys.shape[1], embedder="minilm")
    memory.write(keys, values)
    again = NeuralMemory.from_bytes(memory.state_bytes())
    assert again.step == memory.step and again.writes == len(FACTS)
    for name, w in memory.weights().items():
        assert np.array_equal(w, again.weights()[name])
    with pytest.raises(InvalidRecordError, match="Fix: embed"):
        memory.read(np.zeros(7))
    with pytest.raises(InvalidRecordError, match="pairs"):
        memory.write(keys[:2], values[:3])
    with pytest.raises(InvalidRecordError, match="NaN"):
        memory.read(np.full(keys.shape[1], np.nan))
    with pytest.raises(ConfigError, match="lr > 0"):
        NeuralConfig(lr=0)


def test_a_copy_learns_apart_and_ends_equal_to_the_original(embed) -> None:  # type: ignore[no-untyped-def]
    keys, values = embed([c for c, _ in FACTS]), embed([f for _, f in FACTS])
    memory = NeuralMemory(keys.shape[1])
    memory.write(keys[:2], values[:2])
    before = memory.state_bytes()
    other = memory.copy()
    other.write(keys[2:], values[2:])
    assert memory.state_bytes() == before and memory.step == 1 and other.step == 2
    memory.write(keys[2:], values[2:], at=other._state.last_at)
    for name, w in memory.weights().items():
        assert np.array_equal(w, other.weights()[name])


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memories.db"


def test_store_writes_state_with_the_record_and_replay_reproduces_it(db_path: Path) -> None:
    alice = Scope(user_id="alice")
    with MemoryStore(db_path, neural=True) as store:
        results = store.add_many([f for _, f in FACTS[:3]], alice, cues=[c for c, _ in FACTS[:3]])
        assert all(r.surprise is not None for r in results)
        store.add(FACTS[3][1], alice, cue=FACTS[3][0])
        store.add_many([f for _, f in FACTS[4:]], alice)  # no cue: the text is its own key
        dup = store.add(FACTS[0][1], alice, cue=FACTS[0][0])
        assert not dup.created and dup.surprise is not None  # rehearsed, not stored again
        memory = store.neural_memory(alice)
        assert memory is not None and memory.step == 4 and memory.writes == 7
        replayed = store.replay_neural(alice)
        assert replayed.step == memory.step
        for name, w in memory.weights().items():
            np.testing.assert_allclose(replayed.weights()[name], w, rtol=0, atol=1e-6)
        assert store.neural_memory(user_id="bob") is None  # one memory per scope
        weights = memory.weights()
    with MemoryStore(db_path, neural=True) as store:  # reopened: the state came from SQLite
        reopened = store.neural_memory(alice)
        assert reopened is not None and reopened.step == 4
        for name, w in weights.items():
            assert np.array_equal(reopened.weights()[name], w)
        record = store.list(alice)[0]
        assert record.surprise is not None


def test_a_failed_write_leaves_neither_record_nor_state(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = Scope(user_id="alice")
    with MemoryStore(db_path, neural=True) as store:
        store.add(FACTS[0][1], alice, cue=FACTS[0][0])
        before = store.neural_memory(alice)
        assert before is not None
        original = NeuralBank.write

        def write_then_fail(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            original(self, *args, **kwargs)
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(NeuralBank, "write", write_then_fail)
        with pytest.raises(sqlite3.OperationalError):
            store.add(FACTS[1][1], alice, cue=FACTS[1][0])
        monkeypatch.undo()
        assert store.count(alice) == 1
        after = store.neural_memory(alice)
        assert after is not None and after.step == before.step == 1
        log = store.db.conn.execute("SELECT COUNT(*) FROM neural_log").fetchone()[0]
        assert log == 1


def test_two_handles_share_one_memory(db_path: Path) -> None:
    alice = Scope(user_id="alice")
    with MemoryStore(db_path, neural=True) as one, MemoryStore(db_path, neural=True) as two:
        one.add(FACTS[0][1], alice, cue=FACTS[0][0])
        two.add(FACTS[1][1], alice, cue=FACTS[1][0])  # must build on one's write
        one.add(FACTS[2][1], alice, cue=FACTS[2][0])
        memory = one.neural_memory(alice)
        assert memory is not None and memory.step == 3 and memory.writes == 3
        replayed = one.replay_neural(alice)
        for name, w in memory.weights().items():
            np.testing.assert_allclose(replayed.weights()[name], w, rtol=0, atol=1e-6)


def test_writes_between_checkpoints_log_pairs_only_and_replay_bit_for_bit(
    db_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    pairs = [
        (rng.standard_normal((n, 16)), rng.standard_normal((n, 16))) for n in (1, 2, 1, 3, 1, 1, 2)
    ]
    with MemoryStore(db_path) as store:
        log = store.records.neural()
        one = NeuralBank(16, NeuralConfig(hidden=8), "e", log, checkpoint_every=3)
        two = NeuralBank(16, NeuralConfig(hidden=8), "e", log, checkpoint_every=3)
        checkpoints = []
        for i, (keys, values) in enumerate(pairs, start=1):
            _, memory = one.write("s", keys, values, at=float(i))
            one.adopt("s", memory)
            checkpoints.append(log.state("s")[0])  # type: ignore[index]
            assert log.head("s") == i
            if i == 4:  # the second bank loads here, then catches up from the log alone
                assert two.get("s").state_bytes() == memory.state_bytes()  # type: ignore[union-attr]
        assert checkpoints == [1, 1, 3, 3, 3, 6, 6]  # the first write, then every third
        assert len(log.log("s")) == 11 and len(log.log("s", after=6)) == 2
        caught_up = two.get("s")
        assert caught_up is not None and caught_up.step == 7
        fresh = NeuralBank(16, NeuralConfig(hidden=8), "e", log)  # checkpoint 6 + write 7
        for bank in (two, fresh):
            assert bank.get("s").state_bytes() == memory.state_bytes()  # type: ignore[union-attr]
        assert one.replay("s").state_bytes() == memory.state_bytes()
        with pytest.raises(ConfigError, match="checkpoint_every"):
            NeuralBank(16, NeuralConfig(), "e", log, checkpoint_every=0)


def test_search_fuses_candidates_read_through_the_memory(db_path: Path) -> None:
    alice = Scope(user_id="alice")
    cue = "the secret I never told anyone"
    fact = "At nine I broke the neighbour's greenhouse window with a football."
    others = [f for _, f in FACTS] + [
        "My secret recipe for soup uses smoked paprika.",
        "Nobody knows I can juggle five balls.",
        "I told my sister about the surprise party.",
    ]
    with MemoryStore(db_path, neural=NeuralConfig(seed=3)) as store:
        store.add_many(others, alice)
        for _ in range(3):  # rehearsed association
            store.add(fact, alice, cue=cue)
        plain = store.search(cue, alice, k=3)
        assert fact not in [h.record.text for h in plain]  # no word or meaning in common
        fused = store.search(cue, alice, k=3, neural_weight=1.0)
        assert fact in [h.record.text for h in fused]
        assert store.search(cue, alice, k=3, mode="dense", neural_weight=1.0)[0].record.text == fact
        with pytest.raises(InvalidRecordError, match="cue"):
            store.add_many(["a", "b"], alice, cues=["only one"])
    with MemoryStore(db_path.with_name("plain.db")) as store, pytest.raises(ConfigError):
        store.replay_neural(alice)


def test_surprising_items_are_flagged_salient(db_path: Path) -> None:
    alice = Scope(user_id="alice")
    routine = [f"Day {d}: I had my usual coffee and toast at eight." for d in range(1, 31)]
    with MemoryStore(db_path, neural=True) as store:
        for text in routine:
            store.add(text, alice)
        odd = store.add("A hot-air balloon landed in our garden during breakfast.", alice)
        assert odd.surprise is not None and odd.surprise.salient
        assert odd.record.salient
        late_routine = [r.record for r in [store.add(routine[0] + " Again.", alice)]]
        assert not late_routine[0].salient
        hits = store.search("what happened at breakfast", alice, k=3, salience_weight=1.0)
        assert hits[0].record.id == odd.record.id


def test_a_version_1_database_is_migrated(db_path: Path) -> None:
    alice = Scope(user_id="alice")
    with MemoryStore(db_path, neural=True) as store:
        store.add(FACTS[0][1], alice)
    conn = sqlite3.connect(db_path)
    conn.executescript(  # back to what the first release wrote
        "DROP TABLE neural_log; DROP TABLE neural_state; DROP TABLE schema_versions; "
        "DROP INDEX memories_key_of; DROP INDEX memories_occurred; ALTER TABLE memories DROP "
        "COLUMN occurred_at; ALTER TABLE memories DROP COLUMN key_of; "
        "DROP TABLE occurrences; DROP INDEX memories_dedup; ALTER TABLE memories DROP COLUMN "
        "dedup; CREATE UNIQUE INDEX memories_dedup ON memories (scope_key, content_hash) "
        "WHERE deleted_at IS NULL; "
        "UPDATE memories SET surprise = NULL, salient = 0; "
        "ALTER TABLE memories DROP COLUMN surprise; ALTER TABLE memories DROP COLUMN salient; "
        "PRAGMA user_version = 1;"
    )
    conn.close()
    with MemoryStore(db_path, neural=True) as store:
        (record,) = store.list(alice)
        assert record.text == FACTS[0][1] and record.surprise is None and not record.salient
        store.add(FACTS[1][1], alice, cue=FACTS[1][0])
        assert store.neural_memory(alice) is not None
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == FILE_FORMAT
    versions = dict(conn.execute("SELECT component, version FROM schema_versions").fetchall())
    assert versions == {"memory": 4, "neural": 1}
    conn.close()

"""One MemoryStore shared by eight threads that add, update, delete and search at once (the
bundled MiniLM embedder; real SQLite and faiss, and a real PostgreSQL server with pgvector)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from memora.embed import load_embedder
from memora.memory import Scope
from memora.memory.store import MemoryStore

pytestmark = pytest.mark.slow

THREADS = 8
SECONDS = 20.0
TOPICS = ["tea", "trains", "the garden", "a red bicycle", "the harbour", "winter", "music"]


@dataclass
class Ledger:
    """What one thread was told: the live records it owns (id -> text) and what it deleted."""

    scope: Scope
    live: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    searches: int = 0
    leaks: list[str] = field(default_factory=list)


def worker(store: MemoryStore, ledger: Ledger, seed: int, stop: float) -> None:
    rng = random.Random(seed)
    n = 0
    while time.monotonic() < stop:
        action = rng.random()
        if action < 0.45 or not ledger.live:
            n += 1
            text = f"{ledger.scope.user_id} note {n} about {rng.choice(TOPICS)}"
            if rng.random() < 0.3:
                results = store.add_many([text, text + " (again)"], ledger.scope)
            else:
                results = [store.add(text, ledger.scope)]
            for result in results:
                assert result.created
                ledger.live[result.record.id] = result.record.text
        elif action < 0.6:
            record_id = rng.choice(sorted(ledger.live))
            n += 1
            text = f"{ledger.scope.user_id} note {n} rewritten about {rng.choice(TOPICS)}"
            store.update(record_id, text, ledger.scope)
            ledger.live[record_id] = text
        elif action < 0.7:
            record_id = rng.choice(sorted(ledger.live))
            store.delete(record_id, ledger.scope, hard=rng.random() < 0.5)
            del ledger.live[record_id]
            ledger.deleted.add(record_id)
        else:
            mode = rng.choice(["hybrid", "dense", "lexical"])
            hits = store.search(f"note about {rng.choice(TOPICS)}", ledger.scope, k=8, mode=mode)
            ledger.searches += 1
            ledger.leaks += [h.record.id for h in hits if h.record.scope != ledger.scope]
            ledger.leaks += [h.record.id for h in hits if h.record.id in ledger.deleted]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_eight_threads_share_one_store(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    location = request.getfixturevalue("pg_dsn") if backend == "postgres" else tmp_path / "s.db"
    ledgers = [Ledger(Scope(user_id=f"user{i}")) for i in range(THREADS)]
    errors: list[BaseException] = []
    with MemoryStore(location, embedder=load_embedder()) as store:
        stop = time.monotonic() + SECONDS

        def run(i: int) -> None:
            try:
                worker(store, ledgers[i], i, stop)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=SECONDS + 120)
        assert not any(t.is_alive() for t in threads), "a thread hung"
        assert errors == [], errors[:3]
        status = store.verify_index()
        assert status.consistent, status
        for ledger in ledgers:
            assert ledger.leaks == []
            stored = {r.id: r.text for r in store.list(ledger.scope)}
            assert stored == ledger.live  # every acknowledged write, exactly once
        assert sum(len(ledger.live) for ledger in ledgers) == store.count(all_scopes=True)
        assert sum(ledger.searches for ledger in ledgers) > THREADS  # they really interleaved
    with MemoryStore(location, embedder=store.embedder) as reopened:
        assert reopened.verify_index().consistent
        for ledger in ledgers:
            assert {r.id for r in reopened.list(ledger.scope)} == set(ledger.live)

"""The store under crashes, concurrent writers and hostile scope ids, on both backends: real
SQLite and faiss, and a real PostgreSQL server with pgvector (started by the ``postgres``
fixture)."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memora.embed import Embedder, load_embedder
from memora.errors import ScopeError
from memora.memory import Scope
from memora.memory.store import MemoryStore

pytestmark = pytest.mark.slow

WRITER = """
import sys
from memora.memory.store import MemoryStore
store = MemoryStore(sys.argv[1])
store.vectors.sync()  # the embedder and the index load lazily: load them before "ready"
name, count = sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
for i in range(count):
    result = store.add(f"{name} wrote record number {i} about topic {i % 7}", user_id=name)
    print(result.record.id, flush=True)
store.close()
"""


def start_writer(path: Path | str, name: str, count: int) -> subprocess.Popen[str]:
    # One torch thread per writer: several writers share two cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store lives: a new SQLite file, or a new database on the Postgres server."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_dsn"))
    return tmp_path / "memory.db"


def test_a_killed_writer_loses_nothing_that_was_acknowledged(
    location: Path | str, embedder: Embedder
) -> None:
    path = location
    rng = random.Random(7)
    acknowledged: list[str] = []
    for run in range(4):
        proc = start_writer(path, f"writer{run}", 10_000)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        deadline = time.monotonic() + rng.uniform(1.0, 3.0)
        while time.monotonic() < deadline:
            acknowledged.append(proc.stdout.readline().strip())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        acknowledged.extend(line.strip() for line in proc.stdout.read().splitlines())
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
        with MemoryStore(path, embedder=embedder) as store:
            status = store.verify_index()
            assert status.consistent, status
            for record_id in acknowledged:
                record = store.get(record_id, all_scopes=True)
                assert [h.event for h in store.history(record_id, record.scope)] == ["ADD"]
            probe = store.get(acknowledged[-1], all_scopes=True)
            hits = store.search(probe.text, probe.scope, k=1, mode="dense")
            assert hits[0].record.id == probe.id
    assert len(acknowledged) >= 8


def test_four_concurrent_writers(location: Path | str, embedder: Embedder) -> None:
    path = location
    with MemoryStore(path, embedder=embedder) as store:  # schema in place
        store.add("the first record", user_id="setup")
    procs = [start_writer(path, f"proc{p}", 200) for p in range(4)]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert "locked" not in err
        assert len(out.split()) == 201  # "ready" and 200 ids
    with MemoryStore(path, embedder=embedder) as store:
        stored = [(r.scope.user_id, r.text) for r in store.list(all_scopes=True)]
        assert len(stored) == len(set(stored)) == 801  # none lost, none twice
        assert store.verify_index().consistent
        for p in range(4):
            assert store.count(user_id=f"proc{p}") == 200


NASTY = st.text(
    alphabet=st.sampled_from(list("ab'\";%_*\\/|,:[]{}()-- \u00e9\u4e2d\U0001f600\x00")),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip("\x00") != "")


_EXAMPLES = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"], scope="module")
def isolation_store(
    request: pytest.FixtureRequest, embedder: Embedder
) -> Iterator[tuple[str, MemoryStore | None]]:
    """None: a new in-memory SQLite store per example; else one Postgres store for every
    example, each example's scopes made unique by a prefix (other examples' records stay: more
    scopes that must not leak)."""
    if request.param == "sqlite":
        yield request.param, None
        return
    server = request.getfixturevalue("postgres")
    with MemoryStore(server.create_database("isolation"), embedder=embedder) as store:
        yield request.param, store


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    a=NASTY,
    b=NASTY,
    texts=st.lists(
        st.text(min_size=1, max_size=40).filter(lambda t: t.strip() and "\x00" not in t),
        min_size=1,
        max_size=4,
    ),
    query=st.text(min_size=1, max_size=30).filter(str.strip),
    field=st.sampled_from(["user_id", "agent_id", "session_id"]),
)
def test_one_scope_never_sees_another(
    embedder: Embedder,
    isolation_store: tuple[str, MemoryStore | None],
    a: str,
    b: str,
    texts: list[str],
    query: str,
    field: str,
) -> None:
    if a == b:
        return
    _, shared = isolation_store
    if "\x00" in a + b:  # no backend stores a NUL in a scope id: refused, on every backend
        with MemoryStore(":memory:", embedder=embedder) as store, pytest.raises(ScopeError):
            store.add_many(texts, Scope(**{field: a + "\x00"}))
        return
    if shared is not None:
        a, b = (f"{next(_EXAMPLES)}{x}" for x in (a, b))
    with (
        contextlib.nullcontext(shared)
        if shared
        else MemoryStore(":memory:", embedder=embedder) as store
    ):
        mine = {r.record.id for r in store.add_many(texts, Scope(**{field: a}))}
        store.add_many(["a record of the other scope", *texts], Scope(**{field: b}))
        for mode in ("hybrid", "dense", "lexical"):
            hits = store.search(query, Scope(**{field: a}), k=50, mode=mode)  # type: ignore[arg-type]
            assert {h.record.id for h in hits} <= mine
        assert {r.id for r in store.list(Scope(**{field: a}))} == mine
        assert store.count(Scope(**{field: a})) == len(mine)

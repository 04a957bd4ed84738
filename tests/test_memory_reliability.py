"""The store under crashes, concurrent writers and hostile scope ids (real SQLite and faiss)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memora.embed import Embedder, load_embedder
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


def start_writer(path: Path, name: str, count: int) -> subprocess.Popen[str]:
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


def test_a_killed_writer_loses_nothing_that_was_acknowledged(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "crash.db"
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


def test_four_concurrent_writers(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "busy.db"
    MemoryStore(path, embedder=embedder).close()  # schema in place
    procs = [start_writer(path, f"proc{p}", 200) for p in range(4)]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert "locked" not in err
        assert len(out.split()) == 201  # "ready" and 200 ids
    with sqlite3.connect(path) as conn:
        total, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT user_id || text) FROM memories"
        ).fetchone()
    assert total == distinct == 800
    with MemoryStore(path, embedder=embedder) as store:
        assert store.verify_index().consistent
        for p in range(4):
            assert store.count(user_id=f"proc{p}") == 200


NASTY = st.text(
    alphabet=st.sampled_from(list("ab'\";%_*\\/|,:[]{}()-- \u00e9\u4e2d\U0001f600\x00")),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip("\x00") != "")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=NASTY,
    b=NASTY,
    texts=st.lists(st.text(min_size=1, max_size=40).filter(str.strip), min_size=1, max_size=4),
    query=st.text(min_size=1, max_size=30).filter(str.strip),
    field=st.sampled_from(["user_id", "agent_id", "session_id"]),
)
def test_one_scope_never_sees_another(
    embedder: Embedder, a: str, b: str, texts: list[str], query: str, field: str
) -> None:
    if a == b:
        return
    with MemoryStore(":memory:", embedder=embedder) as store:
        mine = {r.record.id for r in store.add_many(texts, Scope(**{field: a}))}
        store.add_many(["a record of the other scope", *texts], Scope(**{field: b}))
        for mode in ("hybrid", "dense", "lexical"):
            hits = store.search(query, Scope(**{field: a}), k=50, mode=mode)  # type: ignore[arg-type]
            assert {h.record.id for h in hits} <= mine
        assert {r.id for r in store.list(Scope(**{field: a}))} == mine
        assert store.count(Scope(**{field: a})) == len(mine)

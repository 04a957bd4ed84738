"""What only the Postgres backend has to get right: its embedding space, its errors (server
unreachable, credentials refused, never a password in a message), connections that drop, schema
versions, and vector search that stays exact for small scopes and complete for filtered ones
(a real PostgreSQL server with pgvector)."""

from __future__ import annotations

import zlib

import numpy as np
import psycopg
import pytest

from memora.embed import Embedder, load_embedder
from memora.errors import (
    DatabaseAuthError,
    DatabaseUnreachableError,
    EmbedderMismatchError,
    SchemaVersionError,
)
from memora.memory.postgres.records import PostgresRecords
from memora.memory.store import MemoryStore

pytestmark = pytest.mark.slow


class Unit:
    """A deterministic embedder of any dimension: a seeded unit vector per text."""

    def __init__(self, name: str = "unit", dim: int = 16) -> None:
        self.name, self.dim = name, dim

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=self.dim) for t in texts]
        out = np.asarray(rows, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return load_embedder()


def test_another_embedder_is_refused_with_both_names(pg_dsn: str, minilm: Embedder) -> None:
    with MemoryStore(pg_dsn, embedder=minilm) as store:
        store.add("Alice likes tea.", user_id="alice")
    for other in (Unit("unit", 384), Unit("all-MiniLM-L6-v2", 16)):
        with MemoryStore(pg_dsn, embedder=other) as store:
            assert store.count(user_id="alice") == 1  # reads need no embedder
            with pytest.raises(EmbedderMismatchError, match=r"all-MiniLM-L6-v2.*384"):
                store.search("tea", user_id="alice")
            with pytest.raises(EmbedderMismatchError, match="memora memory migrate"):
                store.add("Bob likes coffee.", user_id="bob")
    with MemoryStore(pg_dsn, embedder=minilm) as store:  # nothing was written by the others
        assert store.count(all_scopes=True) == 1


def test_unreachable_server_and_refused_credentials_never_show_the_password(
    postgres: object, pg_dsn: str
) -> None:
    with pytest.raises(DatabaseUnreachableError, match=r"127\.0\.0\.1") as caught:
        MemoryStore("postgresql://memora:hunter2@127.0.0.1:1/memora")
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)
    socket = pg_dsn.split("host=")[1]
    with pytest.raises(DatabaseAuthError, match="credentials") as refused:
        MemoryStore(f"postgresql://ghost:hunter2@/postgres?host={socket}")
    assert "hunter2" not in str(refused.value)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS locked_out")
        admin.execute("CREATE ROLE locked_out NOLOGIN")
    with pytest.raises(DatabaseAuthError, match="not permitted to log in"):
        MemoryStore(f"postgresql://locked_out@/postgres?host={socket}")
    with pytest.raises(DatabaseUnreachableError, match=r"does not exist.*createdb"):
        MemoryStore(f"postgresql://memora@/no_such_db?host={socket}")


def test_dropped_connections_are_replaced_without_an_error(pg_dsn: str) -> None:
    with MemoryStore(pg_dsn, embedder=Unit()) as store:
        store.add("before the drop", user_id="u")
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 1  # the store's pooled connection died
        assert store.add("after the drop", user_id="u").created  # a new connection, no error
        assert [r.text for r in store.list(user_id="u")] == ["before the drop", "after the drop"]


def test_a_database_of_a_newer_memora_is_refused(pg_dsn: str) -> None:
    PostgresRecords(pg_dsn).close()
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("UPDATE memora.schema_versions SET version = 99 WHERE component = 'memory'")
    with pytest.raises(SchemaVersionError, match="newer memora"):
        MemoryStore(pg_dsn, embedder=Unit())


def test_filtered_and_small_scope_searches_match_exact_search(pg_dsn: str) -> None:
    """Scopes under the exact threshold are searched exactly; a large scope goes through HNSW
    with iterative scans, and a 1%-selective metadata filter still returns k hits."""
    unit = Unit(dim=32)
    texts = [f"record {i} of the big scope" for i in range(3000)]
    with MemoryStore(pg_dsn, embedder=unit) as store:
        store.records.exact_below = 500  # type: ignore[attr-defined]
        metas = [{"rare": i % 100 == 0} for i in range(len(texts))]
        store.add_many(texts, user_id="big", metadatas=metas)
        store.add_many([f"small scope note {i}" for i in range(50)], user_id="small")
        with store.database.write() as conn:  # the planner learns that the table is large
            conn.execute("ANALYZE memora.memories")
        vectors = unit.encode(texts)
        rare = [i for i in range(len(texts)) if i % 100 == 0]
        for q in range(5):
            query = f"query {q}"
            qv = unit.encode([query])[0]
            hits = store.search(query, user_id="small", mode="dense", k=10)
            small = unit.encode([f"small scope note {i}" for i in range(50)])
            exact = [f"small scope note {i}" for i in np.argsort(-(small @ qv))[:10]]
            assert [h.record.text for h in hits] == exact
            filtered = store.search(query, user_id="big", mode="dense", k=10,
                                    filters={"rare": True})  # fmt: skip
            best = sorted(rare, key=lambda i: -float(vectors[i] @ qv))[:10]
            assert [h.record.text for h in filtered] == [texts[i] for i in best]
            approx = store.search(query, user_id="big", mode="dense", k=10)
            top = {texts[i] for i in np.argsort(-(vectors @ qv))[:10]}
            assert len(top & {h.record.text for h in approx}) >= 8  # HNSW: near-exact


def test_an_aborted_transaction_is_retried_a_bounded_number_of_times(pg_dsn: str) -> None:
    """The server aborts a transaction (here: a serialization failure raised inside it): the
    work runs again, whole, and after the bounded retries the caller gets StoreBusyError."""
    from memora.errors import StoreBusyError
    from memora.memory.postgres.database import RETRIES, PgDatabase

    db = PgDatabase(pg_dsn)
    try:
        with db.write() as conn:
            conn.execute("CREATE TABLE tries (n INTEGER)")
        runs: list[int] = []

        def flaky(fail_times: int) -> int:
            with db.write() as conn:
                conn.execute("INSERT INTO tries VALUES (?)", (len(runs),))
                runs.append(1)
                if len(runs) <= fail_times:
                    conn.execute(
                        "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"
                    )
                return len(runs)

        assert db.atomic(lambda: flaky(2)) == 3  # two aborted attempts, then committed
        assert db.query("SELECT n FROM tries") == [(2,)]  # only the last attempt's row
        runs.clear()
        with pytest.raises(StoreBusyError, match="aborted"):
            db.atomic(lambda: flaky(100))
        assert len(runs) == RETRIES + 1  # bounded
        assert db.query("SELECT count(*) FROM tries") == [(1,)]  # nothing of those attempts
    finally:
        db.close()

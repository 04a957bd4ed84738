"""Vector search inside PostgreSQL with pgvector, for :class:`~.records.PostgresRecords`.

The vector column is untyped until the first embedder writes; then it becomes ``vector(dim)``
with an HNSW index (cosine), and the embedder's name and dimension go to ``meta`` (``space``):
another embedder opening the database is refused (:class:`EmbedderMismatchError`).

A search is exact over a scope of at most ``exact_below`` live records (found by their indexes,
compared one by one). Past that it walks the HNSW index with pgvector's iterative scans on
(``relaxed_order``, re-sorted after), so a search restricted to a small part of a large table
still returns ``depth`` rows instead of the few the graph's first pass met.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from memora.errors import EmbedderMismatchError
from memora.memory.postgres.database import PgDatabase
from memora.memory.rows import scope_sql
from memora.memory.types import Scope

__all__ = ["EXACT_BELOW", "PgVectors", "array", "vec"]

#: Scopes with at most this many live records are searched exactly.
EXACT_BELOW = 20_000


class PgVectors:
    """The embedding space and the vector search of the ``memories`` table in ``db``."""

    db: PgDatabase
    exact_below: int
    ef_search: int
    _space: tuple[str, int] | None

    def get_meta(self, key: str) -> str | None:
        raise NotImplementedError

    def count(self, scope: Scope | None) -> int:
        raise NotImplementedError

    # -- the embedding space -------------------------------------------------------------

    def space(self) -> tuple[str, int] | None:
        """(embedder, dimension) of the stored vectors; None before the first write."""
        if self._space is None:
            value = self.get_meta("space")
            if value is not None:
                name, dim = json.loads(value)
                self._space = (str(name), int(dim))
        return self._space

    def bind(self, embedder: str, dim: int) -> None:
        """Check that ``embedder`` made this database's vectors; the first one to write types
        the vector column and builds its HNSW index."""
        space = self.space()
        if space is None:
            self.db.atomic(lambda: self._bind(embedder, dim))
            space = self.space()
        if space != (embedder, dim):
            raise EmbedderMismatchError(
                f"{self.db.path} holds vectors of embedder {space[0]!r} (dimension "  # type: ignore[index]
                f"{space[1]}), not of {embedder!r} (dimension {dim}); open it with that "  # type: ignore[index]
                "embedder, or move the memories to a new database with memora memory migrate "
                "(records of another embedder are embedded again)"
            )

    def _bind(self, embedder: str, dim: int) -> None:
        with self.db.write() as conn:
            conn.execute("LOCK TABLE meta IN EXCLUSIVE MODE")
            if conn.execute("SELECT value FROM meta WHERE key = 'space'").fetchone() is not None:
                return
            conn.execute(f"ALTER TABLE memories ALTER COLUMN embedding TYPE vector({int(dim)})")
            conn.execute(
                "CREATE INDEX IF NOT EXISTS memories_hnsw ON memories "
                "USING hnsw (embedding vector_cosine_ops)"
            )
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('space', ?)", (json.dumps([embedder, dim]),)
            )

    # -- vector search -------------------------------------------------------------------

    def dense(
        self, query: np.ndarray, depth: int, scope: Scope | None, keys: Sequence[int] | None
    ) -> list[int]:
        """Keys of the ``depth`` live records of ``scope`` (among ``keys`` when given) nearest
        ``query`` by cosine distance, nearest first."""
        if self.space() is None or (keys is not None and not keys):
            return []
        cond, params = scope_sql(scope, live=True, keys=True)
        if keys is not None:
            cond, params = f"key = ANY(?) AND {cond}", [list(keys), *params]
        if keys is not None or self._small(scope, cond, params):
            rows = self.db.query(  # "+ 0": an expression the HNSW index cannot serve: exact
                f"SELECT key FROM memories WHERE {cond} ORDER BY (embedding <=> ?) + 0, key "
                "LIMIT ?",
                (*params, vec(query), depth),
            )
            return [int(r[0]) for r in rows]
        return self._approximate(query, depth, cond, params)

    def _small(self, scope: Scope | None, cond: str, params: Sequence[Any]) -> bool:
        """Whether to search exactly: the whole table is small by the planner's estimate (no
        count), or the scope holds at most ``exact_below`` live records (counted through the
        scope's index; a search across every scope of a large table never counts)."""
        estimate = self.db.one(
            "SELECT reltuples FROM pg_class WHERE oid = 'memora.memories'::regclass"
        )[0]
        if 0 <= estimate <= self.exact_below:
            return True
        if scope is None and estimate > 0:
            return False
        row = self.db.one(
            f"SELECT count(*) FROM (SELECT 1 FROM memories WHERE {cond} LIMIT ?) AS s",
            (*params, self.exact_below + 1),
        )
        return int(row[0]) <= self.exact_below

    def _approximate(
        self, query: np.ndarray, depth: int, cond: str, params: Sequence[Any]
    ) -> list[int]:
        with self.db.write() as conn:  # SET LOCAL needs a transaction
            conn.execute(f"SET LOCAL hnsw.ef_search = {max(self.ef_search, 2 * depth)}")
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = conn.execute(
                "WITH nearest AS MATERIALIZED (SELECT key, embedding <=> ? AS distance FROM "
                f"memories WHERE {cond} ORDER BY embedding <=> ? LIMIT ?) "
                "SELECT key FROM nearest ORDER BY distance, key",
                (vec(query), *params, vec(query), depth),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def vector_index(self) -> str:
        return "pgvector hnsw" if self.space() is not None else "pgvector"

    def reindex(self) -> int:
        """Rebuild the HNSW index; returns how many live vectors it covers."""
        if self.space() is not None:
            with self.db.read() as conn:
                conn.execute("REINDEX INDEX memories_hnsw")
        return self.count(None)


def vec(vector: np.ndarray) -> np.ndarray:
    return np.asarray(vector, dtype=np.float32).reshape(-1)


def array(value: Any) -> np.ndarray:
    """A vector read from the database (pgvector's ``Vector``, or an array)."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)

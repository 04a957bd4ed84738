"""The memory store of record in PostgreSQL + pgvector (:class:`PostgresRecords`), the same
:class:`~memora.memory.contract.RecordStore` as :class:`~memora.memory.records.SQLiteRecords`,
and it searches its vectors itself (:mod:`.vectors`), so no faiss index is kept beside it.

Full-text search is a generated ``tsvector`` (configuration ``english``, stemmed) ranked by
``ts_rank_cd``.

The change sequence is a counter in ``meta``; each write numbers its changes last (the
``changes`` table: key, number, removed for good), so the counter's row lock, which orders the
commits, is held only from there to the commit and not through the index work before it:
concurrent writers insert (and update their HNSW index) in parallel.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from memora.errors import ConfigError, InvalidRecordError
from memora.memory.contract import Changes, NewRecord, VectorRow
from memora.memory.neural_bank import NeuralTables
from memora.memory.postgres.database import Connection, PgDatabase
from memora.memory.postgres.schema import COLUMNS, MEMORY
from memora.memory.postgres.vectors import EXACT_BELOW, PgVectors, array, vec
from memora.memory.rows import filter_sql, scope_sql, to_record
from memora.memory.sqlbase import SQLRecordsBase, occurrences_of
from memora.memory.types import MemoryRecord, Scope

__all__ = ["PostgresRecords"]

_ROW_MARKS = "(?,?,?,?,?,?,?::jsonb,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_BATCH = 1000  # rows per INSERT statement
_INSERT = (
    "INSERT INTO memories (id, user_id, agent_id, session_id, scope_key, text, metadata, "
    "content_hash, embedder, dim, embedding, created_at, updated_at, expires_at, deleted_at, "
    "surprise, salient, dedup, occurred_at, key_of) VALUES {rows} ON CONFLICT DO NOTHING "
    "RETURNING id, key"
)
_HISTORY = (
    "INSERT INTO history (memory_id, event, old_text, new_text, actor, at) VALUES (?,?,?,?,?,?)"
)
_VECTOR_COLUMNS = "m.key, m.user_id, m.agent_id, m.session_id, m.embedder, {vector}, " \
    "m.expires_at, c.seq, m.deleted_at"  # fmt: skip


class PostgresRecords(SQLRecordsBase, PgVectors):
    """Memories, their history and change numbers in a PostgreSQL database with pgvector.

    Args:
        dsn: the database (``postgresql://...``), or ``db``: an open :class:`PgDatabase` to
            share (the agent journal uses the same one).
        exact_below: scopes up to this many live records are searched exactly.
        ef_search: the HNSW candidate list of a search (raised to ``2 * depth`` when deeper).
        readonly: refuse writes and schema changes.
    """

    location: str | None = None  # nothing beside the database
    db: PgDatabase
    _columns, _order = COLUMNS, "key"

    def __init__(self, dsn: str | None = None, *, db: PgDatabase | None = None,
                 exact_below: int = EXACT_BELOW, ef_search: int = 100,
                 readonly: bool = False, pool_size: int = 8) -> None:  # fmt: skip
        if (dsn is None) == (db is None):
            raise ConfigError("pass a DSN or db=, one of them")
        self._owns_db = db is None
        self.db = db if db is not None else PgDatabase(str(dsn), readonly=readonly,
                                                       pool_size=pool_size)  # fmt: skip
        self.exact_below = exact_below
        self.ef_search = ef_search
        self._space: tuple[str, int] | None = None
        self._neural: NeuralTables | None = None
        try:
            self.db.ensure(MEMORY)
        except BaseException:
            self.close()
            raise

    # -- transactions --------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.write():
            yield

    def atomic(self, work: Callable[[], Any]) -> Any:
        return self.db.atomic(work)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.db.after_commit(action)

    @staticmethod
    def _stamp(conn: Connection, keys: Sequence[int], *, gone: bool = False) -> None:
        """Number the changes of ``keys`` (a new change number, even for none): the last
        statement of a write, so the counter's lock is held from here to the commit only."""
        row = conn.execute(
            "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'seq' RETURNING value"
        ).fetchone()
        if keys:
            conn.execute(
                "INSERT INTO changes (key, seq, gone) SELECT k, ?, ? FROM unnest(?::bigint[]) "
                "AS k ON CONFLICT (key) DO UPDATE SET seq = excluded.seq, gone = excluded.gone",
                (int(row[0]), gone, list(keys)),
            )

    # -- writes --------------------------------------------------------------------------

    def insert(self, items: Sequence[NewRecord], *, actor: str) -> list[bool]:
        if not items:
            return []
        for space in {(i.record.embedder, i.record.dim) for i in items}:
            self.bind(*space)
        return list(self.db.atomic(lambda: self._insert(items, actor)))

    def _insert(self, items: Sequence[NewRecord], actor: str) -> list[bool]:
        inserted: dict[str, int] = {}
        with self.db.write() as conn:
            for start in range(0, len(items), _BATCH):
                chunk = items[start : start + _BATCH]
                marks = ",".join([_ROW_MARKS] * len(chunk))
                params = [p for item in chunk for p in _row(item)]
                rows = conn.execute(_INSERT.format(rows=marks), params).fetchall()
                inserted.update((str(r[0]), int(r[1])) for r in rows)
            history = [
                (item.record.id, *h)
                for item in items if item.record.id in inserted
                for h in (item.history or (("ADD", None, item.record.text, actor,
                                            item.record.created_at),))
            ]  # fmt: skip
            conn.executemany(_HISTORY, history)
            self.add_occurrences(occurrences_of(items, inserted))
            self._stamp(conn, list(inserted.values()))
        seen: set[str] = set()
        flags = []
        for item in items:  # an id given twice in one batch is inserted once
            flags.append(item.record.id in inserted and item.record.id not in seen)
            seen.add(item.record.id)
        return flags

    def update(
        self,
        record: MemoryRecord,
        vector: np.ndarray,
        *,
        old_text: str,
        metadata_changed: bool,
        actor: str,
    ) -> None:
        self.bind(record.embedder, record.dim)
        self.db.atomic(lambda: self._update(record, vector, old_text, metadata_changed, actor))

    def _update(self, record: MemoryRecord, vector: np.ndarray, old_text: str,
                metadata_changed: bool, actor: str) -> None:  # fmt: skip
        import psycopg

        with self.db.write() as conn:
            try:
                with conn.raw.transaction():  # a savepoint: the clash leaves the rest usable
                    keys = conn.execute(
                        "UPDATE memories SET text = ?, content_hash = ?, embedding = ?, "
                        "embedder = ?, dim = ?, metadata = CASE WHEN ? THEN ?::jsonb ELSE "
                        "metadata END, updated_at = ?, occurred_at = ? WHERE id = ? RETURNING key",
                        (
                            record.text, record.content_hash, vec(vector), record.embedder,
                            record.dim, metadata_changed, json.dumps(record.metadata),
                            record.updated_at, record.occurred_at, record.id,
                        ),
                    ).fetchall()  # fmt: skip
            except psycopg.errors.UniqueViolation as exc:
                raise InvalidRecordError(
                    "the same text is already stored in this scope; update or delete that "
                    "record instead"
                ) from exc
            conn.execute(
                _HISTORY, (record.id, "UPDATE", old_text, record.text, actor, record.updated_at)
            )
            if metadata_changed:  # a record's search keys carry its metadata (for filters)
                keys += conn.execute(
                    "UPDATE memories SET metadata = ?::jsonb WHERE key_of = ? RETURNING key",
                    (json.dumps(record.metadata), record.id),
                ).fetchall()
            self._stamp(conn, [k[0] for k in keys])

    def soft_delete(self, record_id: str, *, old_text: str, at: float, actor: str) -> None:
        def work() -> None:
            with self.db.write() as conn:
                keys = conn.execute(
                    "UPDATE memories SET deleted_at = ? WHERE id = ? OR (key_of = ? AND "
                    "deleted_at IS NULL) RETURNING key",
                    (at, record_id, record_id),
                ).fetchall()
                conn.execute(_HISTORY, (record_id, "DELETE", old_text, None, actor, at))
                self._stamp(conn, [k[0] for k in keys])

        self.db.atomic(work)

    def hard_delete(self, record_id: str) -> None:
        def work() -> None:
            with self.db.write() as conn:
                keys = conn.execute(
                    "DELETE FROM memories WHERE id = ? OR key_of = ? RETURNING key",
                    (record_id, record_id),
                ).fetchall()
                self._stamp(conn, [k[0] for k in keys], gone=True)

        self.db.atomic(work)

    # -- reads ---------------------------------------------------------------------------

    def by_hash(self, scope: Scope, hashes: Sequence[str]) -> list[MemoryRecord]:
        unique = sorted(set(hashes))
        if not unique:
            return []
        rows = self.db.query(
            f"SELECT {COLUMNS} FROM memories WHERE scope_key = ? AND deleted_at IS NULL "
            "AND dedup AND content_hash = ANY(?)",
            (scope.key(), unique),
        )
        return [to_record(r) for r in rows]

    def fetch(
        self, keys: Sequence[int], scope: Scope | None
    ) -> dict[int, tuple[MemoryRecord, np.ndarray]]:
        if not keys:
            return {}
        cond, params = scope_sql(scope, live=True, keys=True)
        rows = self.db.query(
            f"SELECT {COLUMNS}, embedding FROM memories WHERE key = ANY(?) AND {cond}",
            (list(keys), *params),
        )
        return {int(r[0]): (to_record(r[:-1]), array(r[-1])) for r in rows}

    def fetch_ids(
        self, ids: Sequence[str], scope: Scope | None
    ) -> dict[int, tuple[MemoryRecord, np.ndarray]]:
        if not ids:
            return {}
        cond, params = scope_sql(scope, live=True)
        rows = self.db.query(
            f"SELECT {COLUMNS}, embedding FROM memories WHERE id = ANY(?) AND {cond}",
            (list(ids), *params),
        )
        return {int(r[0]): (to_record(r[:-1]), array(r[-1])) for r in rows}

    def lexical_scored(
        self, words: Sequence[str], scope: Scope | None, filters: Mapping[str, Any] | None,
        depth: int,
    ) -> list[tuple[int, float]]:  # fmt: skip
        if not words:
            return []
        query = " | ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in words)
        cond, params = scope_sql(scope, live=True, keys=True)
        fcond, fparams = filter_sql(filters, postgres=True)
        rows = self.db.query(
            "SELECT key, ts_rank_cd(tsv, q) AS rank FROM memories, to_tsquery('english', ?) AS q "
            f"WHERE tsv @@ q AND {cond} AND {fcond} ORDER BY rank DESC, key LIMIT ?",
            (query, *params, *fparams, depth),
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    def matching(self, scope: Scope | None, filters: Mapping[str, Any], embedder: str) -> list[int]:
        cond, params = scope_sql(scope, live=True, keys=True)
        fcond, fparams = filter_sql(filters, postgres=True)
        rows = self.db.query(
            f"SELECT key FROM memories WHERE {cond} AND {fcond} AND embedder = ?",
            [*params, *fparams, embedder],
        )
        return [int(r[0]) for r in rows]

    # -- derived views -------------------------------------------------------------------

    def current_seq(self) -> int:
        return int(self.db.one("SELECT value FROM meta WHERE key = 'seq'")[0])

    def changes_since(self, seq: int) -> Changes:
        nested = self.db.in_transaction
        with self.db.write() as conn:  # one snapshot for the rows and the tombstones
            if not nested:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            current = int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])
            if current == seq:
                return Changes(seq=seq)
            rows = conn.execute(
                f"SELECT {_VECTOR_COLUMNS.format(vector='m.embedding')} FROM changes c "
                "JOIN memories m ON m.key = c.key WHERE c.seq > ? AND NOT c.gone ORDER BY c.seq",
                (seq,),
            ).fetchall()
            gone = conn.execute("SELECT key FROM changes WHERE seq > ? AND gone", (seq,)).fetchall()
        found = [_vector_row(r) for r in rows]
        upto = max(current, max((r.seq for r in found), default=0))
        return Changes(rows=found, removed=[int(g[0]) for g in gone], seq=upto)

    def live_rows(self, embedder: str, *, vectors: bool, upto: int | None = None) -> Changes:
        current = self.current_seq() if upto is None else upto
        rows = self.db.query(
            f"SELECT {_VECTOR_COLUMNS.format(vector='m.embedding' if vectors else 'NULL')} "
            "FROM memories m JOIN changes c ON c.key = m.key "
            "WHERE m.deleted_at IS NULL AND m.embedder = ? AND c.seq <= ?",
            (embedder, current),
        )
        return Changes(rows=[_vector_row(r) for r in rows], seq=current)

    def export(self, include_deleted: bool) -> Iterator[tuple[MemoryRecord, bytes]]:
        last = 0
        while True:  # in pages: a large store is never held in memory at once
            rows = self.db.query(
                f"SELECT {COLUMNS}, embedding FROM memories WHERE key > ? "
                + ("" if include_deleted else "AND deleted_at IS NULL ")
                + "ORDER BY key LIMIT 1000",
                (last,),
            )
            if not rows:
                return
            for row in rows:
                yield to_record(row[:-1]), array(row[-1]).tobytes()
            last = int(rows[-1][0])


def _row(item: NewRecord) -> tuple[Any, ...]:
    r = item.record
    return (
        r.id, r.scope.user_id, r.scope.agent_id, r.scope.session_id, r.scope.key(), r.text,
        json.dumps(r.metadata), r.content_hash, r.embedder, r.dim, vec(item.vector),
        r.created_at, r.updated_at, r.expires_at, r.deleted_at, r.surprise, bool(r.salient),
        bool(r.dedup), r.occurred_at, r.key_of,
    )  # fmt: skip


def _vector_row(row: Sequence[Any]) -> VectorRow:
    key, user_id, agent_id, session_id, embedder, vector, expires_at, seq, deleted_at = row
    return VectorRow(
        key=int(key), user_id=user_id, agent_id=agent_id, session_id=session_id,
        embedder=str(embedder), vector=None if vector is None else array(vector).tobytes(),
        expires_at=None if expires_at is None else float(expires_at), seq=int(seq),
        live=deleted_at is None,
    )  # fmt: skip

"""The memory store of record in SQLite: every SQL statement on memories, history and
tombstones (:class:`SQLiteRecords`, the embedded :class:`~memora.memory.contract.RecordStore`).

Each write runs in one transaction with its history rows and a bump of the change sequence
(``meta.seq``); the change sequence lets every process bring its derived vector index up to
date. Full-text search is SQLite FTS5 (BM25), kept in step by triggers.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memora._sqlite import Component, Database
from memora.errors import InvalidRecordError
from memora.memory.contract import Changes, NewRecord, VectorRow
from memora.memory.neural_bank import NeuralTables
from memora.memory.rows import (
    COLUMNS,
    blob_vector,
    check_writable,
    filter_sql,
    scope_sql,
    to_record,
)
from memora.memory.sqlbase import OCCURRENCES, TIMES_AND_KEYS, SQLRecordsBase, occurrences_of
from memora.memory.types import MemoryRecord, Scope

__all__ = ["MEMORY", "SQLiteRecords"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', '0');

CREATE TABLE IF NOT EXISTS memories (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT,
    agent_id TEXT,
    session_id TEXT,
    scope_key TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    content_hash TEXT NOT NULL,
    embedder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    expires_at REAL,
    deleted_at REAL,
    seq INTEGER NOT NULL,
    surprise REAL,
    salient INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS memories_dedup
    ON memories (scope_key, content_hash) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS memories_user ON memories (user_id);
CREATE INDEX IF NOT EXISTS memories_agent ON memories (agent_id);
CREATE INDEX IF NOT EXISTS memories_session ON memories (session_id);
CREATE INDEX IF NOT EXISTS memories_seq ON memories (seq);

CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    event TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_text TEXT,
    new_text TEXT,
    actor TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS history_memory ON history (memory_id);

-- rows removed for good: other processes drop them from their indexes
CREATE TABLE IF NOT EXISTS tombstones (rowid INTEGER PRIMARY KEY, seq INTEGER NOT NULL);

"""

_OCCURRENCES = OCCURRENCES.format(
    id="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL", bool="INTEGER", true="1"
)
# full text with stemming (porter) and diacritics folded: "hiked" finds "hiking", "cafe" "café"
_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5 (
    text, content = 'memories', content_rowid = 'rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER IF NOT EXISTS memories_fts_update AFTER UPDATE OF text ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
END;
"""
_V4 = (
    TIMES_AND_KEYS.format(real="REAL")
    + """
DROP TRIGGER IF EXISTS memories_fts_insert;
DROP TRIGGER IF EXISTS memories_fts_delete;
DROP TRIGGER IF EXISTS memories_fts_update;
DROP TABLE IF EXISTS memories_fts;
"""
    + _FTS
    + "INSERT INTO memories_fts (memories_fts) VALUES ('rebuild');\n"
)

#: The memory component: version 2 added the neural memory's surprise and salience columns,
#: version 3 the occurrences of texts added again, version 4 ``occurred_at``, search keys and
#: the stemming full-text index.
MEMORY = Component(
    name="memory",
    version=4,
    schema=_SCHEMA + _OCCURRENCES + TIMES_AND_KEYS.format(real="REAL") + _FTS,
    migrations={
        1: """
ALTER TABLE memories ADD COLUMN surprise REAL;
ALTER TABLE memories ADD COLUMN salient INTEGER NOT NULL DEFAULT 0;
""",
        2: _OCCURRENCES,
        3: _V4,
    },
)  # files of older releases record this version in PRAGMA user_version

_INSERT = (
    "INSERT INTO memories (id, user_id, agent_id, session_id, scope_key, text, metadata, "
    "content_hash, embedder, dim, vector, created_at, updated_at, expires_at, deleted_at, seq, "
    "surprise, salient, dedup, occurred_at, key_of) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT DO NOTHING"
)
_HISTORY = (
    "INSERT INTO history (memory_id, event, old_text, new_text, actor, at) VALUES (?,?,?,?,?,?)"
)
_VECTOR_COLUMNS = "rowid, user_id, agent_id, session_id, embedder, {vector}, expires_at, seq, " \
    "deleted_at"  # fmt: skip


class SQLiteRecords(SQLRecordsBase):
    """Memories, history and tombstones in one SQLite file (or ``":memory:"``).

    ``db``: share a :class:`~memora._sqlite.Database` with other components of the same file (a
    story and its memory commit in one transaction); by default the file is opened here, and
    closed by :meth:`close`. ``readonly``: open the file for reading only (a missing file, or
    one without the memory tables, raises :class:`~memora.errors.ReadOnlyError`).
    """

    db: Database
    _columns, _order = COLUMNS, "rowid"

    def __init__(
        self, path: str | Path = ":memory:", *, db: Database | None = None, readonly: bool = False
    ) -> None:
        self._owns_db = db is None
        if db is None and not readonly:
            check_writable(Path(path))
        self.db = db if db is not None else Database(path, readonly=readonly)
        self.db.ensure(MEMORY)
        self.location = None if self.db.in_memory else self.db.path
        self._neural: NeuralTables | None = None

    # -- transactions --------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.write():
            yield

    def atomic(self, work: Callable[[], Any]) -> Any:
        with self.db.write():
            return work()

    def after_commit(self, action: Callable[[], None]) -> None:
        self.db.after_commit(action)

    def _next_seq(self, conn: sqlite3.Connection) -> int:
        row = conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'seq' RETURNING value"
        ).fetchone()
        return int(row[0])

    # -- writes --------------------------------------------------------------------------

    def insert(self, items: Sequence[NewRecord], *, actor: str) -> list[bool]:
        if not items:
            return []
        inserted: list[bool] = []
        dumped: dict[int, str] = {}  # metadata JSON by dict (a batch often shares one)
        with self.db.write() as conn:
            seq = self._next_seq(conn)
            for item in items:
                r = item.record
                meta = dumped.get(id(r.metadata))
                if meta is None:
                    meta = dumped[id(r.metadata)] = json.dumps(r.metadata)
                cursor = conn.execute(
                    _INSERT,
                    (
                        r.id, r.scope.user_id, r.scope.agent_id, r.scope.session_id,
                        r.scope.key(), r.text, meta, r.content_hash,
                        r.embedder, r.dim, np.asarray(item.vector, dtype=np.float32).tobytes(),
                        r.created_at, r.updated_at, r.expires_at, r.deleted_at, seq,
                        r.surprise, bool(r.salient), bool(r.dedup), r.occurred_at, r.key_of,
                    ),
                )  # fmt: skip
                inserted.append(cursor.rowcount == 1)
                if cursor.rowcount == 1:
                    history = item.history or (("ADD", None, r.text, actor, r.created_at),)
                    conn.executemany(_HISTORY, [(r.id, *h) for h in history])
            done = {i.record.id for i, ok in zip(items, inserted, strict=True) if ok}
            self.add_occurrences(occurrences_of(items, done))
        return inserted

    def update(
        self,
        record: MemoryRecord,
        vector: np.ndarray,
        *,
        old_text: str,
        metadata_changed: bool,
        actor: str,
    ) -> None:
        with self.db.write() as conn:
            seq = self._next_seq(conn)
            try:
                conn.execute(
                    "UPDATE memories SET text = ?, content_hash = ?, vector = ?, embedder = ?, "
                    "dim = ?, metadata = CASE WHEN ? THEN ? ELSE metadata END, updated_at = ?, "
                    "occurred_at = ?, seq = ? WHERE id = ?",
                    (
                        record.text, record.content_hash, vector.astype(np.float32).tobytes(),
                        record.embedder, record.dim, metadata_changed,
                        json.dumps(record.metadata), record.updated_at, record.occurred_at, seq,
                        record.id,
                    ),
                )  # fmt: skip
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    raise InvalidRecordError(
                        "the same text is already stored in this scope; update or delete that "
                        "record instead"
                    ) from exc
                raise
            conn.execute(
                _HISTORY, (record.id, "UPDATE", old_text, record.text, actor, record.updated_at)
            )
            if metadata_changed:  # a record's search keys carry its metadata (for filters)
                conn.execute(
                    "UPDATE memories SET metadata = ?, seq = ? WHERE key_of = ?",
                    (json.dumps(record.metadata), seq, record.id),
                )

    def soft_delete(self, record_id: str, *, old_text: str, at: float, actor: str) -> None:
        with self.db.write() as conn:
            seq = self._next_seq(conn)
            conn.execute(
                "UPDATE memories SET deleted_at = ?, seq = ? WHERE id = ? OR (key_of = ? AND "
                "deleted_at IS NULL)",
                (at, seq, record_id, record_id),
            )
            conn.execute(_HISTORY, (record_id, "DELETE", old_text, None, actor, at))

    def hard_delete(self, record_id: str) -> None:
        with self.db.write() as conn:
            seq = self._next_seq(conn)
            rows = conn.execute(  # the record and its search keys
                "SELECT rowid FROM memories WHERE id = ? OR key_of = ?", (record_id, record_id)
            ).fetchall()
            conn.execute("DELETE FROM memories WHERE id = ? OR key_of = ?", (record_id, record_id))
            conn.executemany(
                "INSERT OR REPLACE INTO tombstones VALUES (?, ?)", [(r[0], seq) for r in rows]
            )

    # -- reads ---------------------------------------------------------------------------

    def by_hash(self, scope: Scope, hashes: Sequence[str]) -> list[MemoryRecord]:
        unique = sorted(set(hashes))
        if not unique:
            return []
        marks = ",".join("?" * len(unique))
        rows = self.db.query(
            f"SELECT {COLUMNS} FROM memories WHERE scope_key = ? AND deleted_at IS NULL "
            f"AND dedup AND content_hash IN ({marks})",
            (scope.key(), *unique),
        )
        return [to_record(r) for r in rows]

    def fetch(
        self, keys: Sequence[int], scope: Scope | None
    ) -> dict[int, tuple[MemoryRecord, np.ndarray]]:
        return self._fetch("rowid", keys, scope, keys=True)

    def fetch_ids(
        self, ids: Sequence[str], scope: Scope | None
    ) -> dict[int, tuple[MemoryRecord, np.ndarray]]:
        return self._fetch("id", ids, scope, keys=False)

    def _fetch(self, column: str, values: Sequence[Any], scope: Scope | None,
               keys: bool) -> dict[int, tuple[MemoryRecord, np.ndarray]]:  # fmt: skip
        if not values:
            return {}
        cond, params = scope_sql(scope, live=True, keys=keys)
        rows = self.db.query(
            f"SELECT {COLUMNS}, vector FROM memories WHERE {column} IN "
            f"({','.join('?' * len(values))}) AND {cond}",
            (*values, *params),
        )
        return {r[0]: (to_record(r[:-1]), blob_vector(r[-1])) for r in rows}

    def lexical_scored(
        self, words: Sequence[str], scope: Scope | None, filters: Mapping[str, Any] | None,
        depth: int,
    ) -> list[tuple[int, float]]:  # fmt: skip
        if not words:
            return []
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        scope_cond, params = scope_sql(scope, live=True, keys=True)
        filter_cond, fparams = filter_sql(filters)
        rows = self.db.query(
            "SELECT memories.rowid, -bm25(memories_fts) AS rank FROM memories_fts JOIN memories "
            "ON memories.rowid = memories_fts.rowid "
            f"WHERE memories_fts MATCH ? AND {scope_cond} AND {filter_cond} "
            "ORDER BY rank DESC LIMIT ?",
            (match, *params, *fparams, depth),
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    def matching(self, scope: Scope | None, filters: Mapping[str, Any], embedder: str) -> list[int]:
        scope_cond, params = scope_sql(scope, live=True, keys=True)
        filter_cond, fparams = filter_sql(filters)
        rows = self.db.query(
            f"SELECT rowid FROM memories WHERE {scope_cond} AND {filter_cond} AND embedder = ?",
            [*params, *fparams, embedder],
        )
        return [r[0] for r in rows]

    # -- derived views -------------------------------------------------------------------

    def current_seq(self) -> int:
        return int(self.db.one("SELECT value FROM meta WHERE key = 'seq'")[0])

    def changes_since(self, seq: int) -> Changes:
        with self.db.read() as conn:
            current = int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])
            if current == seq:
                return Changes(seq=seq)
            rows = conn.execute(
                f"SELECT {_VECTOR_COLUMNS.format(vector='vector')} FROM memories "
                "WHERE seq > ? ORDER BY seq",
                (seq,),
            ).fetchall()
            gone = conn.execute("SELECT rowid FROM tombstones WHERE seq > ?", (seq,)).fetchall()
        found = [_vector_row(r) for r in rows]
        upto = max(current, max((r.seq for r in found), default=0))
        return Changes(rows=found, removed=[g[0] for g in gone], seq=upto)

    def live_rows(self, embedder: str, *, vectors: bool, upto: int | None = None) -> Changes:
        with self.db.read() as conn:
            current = int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])
            rows = conn.execute(
                f"SELECT {_VECTOR_COLUMNS.format(vector='vector' if vectors else 'NULL')} "
                "FROM memories WHERE deleted_at IS NULL AND embedder = ? AND seq <= ?",
                (embedder, current if upto is None else upto),
            ).fetchall()
        return Changes(rows=[_vector_row(r) for r in rows], seq=current if upto is None else upto)

    def export(self, include_deleted: bool) -> Iterator[tuple[MemoryRecord, bytes]]:
        rows = self.db.query(
            f"SELECT {COLUMNS}, vector FROM memories "
            + ("" if include_deleted else "WHERE deleted_at IS NULL ")
            + "ORDER BY rowid"
        )
        for row in rows:
            yield to_record(row[:-1]), bytes(row[-1])


def _vector_row(row: Sequence[Any]) -> VectorRow:
    rowid, user_id, agent_id, session_id, embedder, vector, expires_at, seq, deleted_at = row
    return VectorRow(
        key=int(rowid),
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        embedder=str(embedder),
        vector=None if vector is None else bytes(vector),
        expires_at=None if expires_at is None else float(expires_at),
        seq=int(seq),
        live=deleted_at is None,
    )

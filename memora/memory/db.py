"""The SQLite side of the memory store: connection settings, schema, versions, transactions.

SQLite is the store of record. Every write runs in one ``BEGIN IMMEDIATE`` transaction together
with its history row and a bump of the change sequence (``meta.seq``); the change sequence lets
every process bring its derived vector index up to date.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from memora.errors import SchemaVersionError, StoreBusyError
from memora.memory.neural import NEURAL_SCHEMA

__all__ = ["SCHEMA_VERSION", "Database"]

#: Bumped whenever the schema changes; a database with a higher version is refused.
SCHEMA_VERSION = 2

BUSY_TIMEOUT_MS = 30_000
#: Retries of a write that still finds the database locked after the busy timeout.
LOCK_RETRIES = 5

SCHEMA = (
    """
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

CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts
    USING fts5 (text, content = 'memories', content_rowid = 'rowid');
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
    + NEURAL_SCHEMA
)

#: Statements that bring a database of version N (the key) to version N + 1.
MIGRATIONS = {
    1: """
ALTER TABLE memories ADD COLUMN surprise REAL;
ALTER TABLE memories ADD COLUMN salient INTEGER NOT NULL DEFAULT 0;
"""
    + NEURAL_SCHEMA,
}


class Database:
    """One connection, serialized by a lock; explicit transactions."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.in_memory = self.path == ":memory:"
        if not self.in_memory:
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        self.lock = threading.RLock()
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.conn.execute("PRAGMA foreign_keys = ON")
        if not self.in_memory:
            self._retry(lambda: self.conn.execute("PRAGMA journal_mode = WAL"))
            self.conn.execute("PRAGMA synchronous = NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        with self.lock:
            version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self.path} was written by a newer memora (schema version {version}; this "
                    f"one reads up to {SCHEMA_VERSION}). Fix: upgrade memora "
                    "(pip install -U memora), or export the data with the newer version"
                )
            if version < SCHEMA_VERSION:
                self._retry(lambda: self._upgrade())

    def _upgrade(self) -> None:
        """Create or migrate the schema in one transaction (the version is re-read under the
        write lock, so concurrent openers migrate once)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:
                _script(conn, SCHEMA)
            else:
                for step in range(version, SCHEMA_VERSION):
                    _script(conn, MIGRATIONS[step])
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): all of it commits, or none of it."""
        with self.lock:
            self._retry(lambda: self.conn.execute("BEGIN IMMEDIATE"))
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self._retry(lambda: self.conn.execute("COMMIT"))

    def next_seq(self) -> int:
        """Bump and return the change sequence; call inside :meth:`write`."""
        row = self.conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'seq' RETURNING value"
        ).fetchone()
        return int(row[0])

    def current_seq(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])

    def get_meta(self, key: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def _retry(self, action: object) -> None:
        """Run ``action``; when SQLite still reports a lock after its busy timeout, back off
        and try again, a bounded number of times."""
        assert callable(action)
        for attempt in range(LOCK_RETRIES + 1):
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if attempt == LOCK_RETRIES:
                    raise StoreBusyError(
                        f"{self.path} stayed locked by other writers for over "
                        f"{LOCK_RETRIES * BUSY_TIMEOUT_MS // 1000} s; retry later, or find the "
                        "process holding a long transaction"
                    ) from exc
                time.sleep(0.05 * (2**attempt) * (1 + random.random()))


def _script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements inside the current transaction (``executescript`` would
    commit it); trigger bodies keep their inner semicolons."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""

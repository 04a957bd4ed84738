"""What both stores of record run as the same SQL (``?`` placeholders, scope conditions from
:func:`~memora.memory.rows.scope_sql`): a record by id, the records and count of a scope, a
record's history, meta values, the neural tables and the lifecycle. SQLite and PostgreSQL differ
only in the column list and the insertion-order key (``rowid``, ``key``)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from memora.memory.contract import NeuralLog, NewRecord, SQLDatabase
from memora.memory.neural_bank import NeuralTables
from memora.memory.rows import scope_sql, to_record
from memora.memory.types import HistoryEntry, MemoryRecord, Occurrence, Scope

__all__ = ["OCCURRENCES", "TIMES_AND_KEYS", "SQLRecordsBase", "occurrence_row", "occurrences_of"]

_OCCURRENCE = "INSERT INTO occurrences (memory_id, at, metadata, actor) VALUES (?, ?, ?, ?)"
#: Memory schema 3, the same statements for SQLite and PostgreSQL: the occurrences of texts
#: added again, and records kept apart from de-duplication (``dedup`` false).
OCCURRENCES = """
ALTER TABLE memories ADD COLUMN dedup {bool} NOT NULL DEFAULT {true};
DROP INDEX IF EXISTS memories_dedup;
CREATE UNIQUE INDEX IF NOT EXISTS memories_dedup
    ON memories (scope_key, content_hash) WHERE deleted_at IS NULL AND dedup;
CREATE TABLE IF NOT EXISTS occurrences (
    id {id},
    memory_id TEXT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    at {real} NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{{}}',
    actor TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS occurrences_memory ON occurrences (memory_id);
"""
#: Memory schema 4, the same for SQLite and PostgreSQL: when what a record says happened
#: (``occurred_at``), and search keys (``key_of``: the record a key finds; keys are rows that
#: searches see and collapse onto their record, never listed or counted; deleted with it).
TIMES_AND_KEYS = """
ALTER TABLE memories ADD COLUMN occurred_at {real};
ALTER TABLE memories ADD COLUMN key_of TEXT;
CREATE INDEX IF NOT EXISTS memories_key_of ON memories (key_of) WHERE key_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS memories_occurred ON memories (occurred_at)
    WHERE occurred_at IS NOT NULL;
"""


def occurrence_row(o: Occurrence) -> tuple[Any, ...]:
    return (o.memory_id, o.at, json.dumps(o.metadata), o.actor)


def occurrences_of(items: Sequence[NewRecord], inserted: Collection[str]) -> list[Occurrence]:
    """The occurrences carried by the inserted ``items`` (an import, a migration)."""
    return [Occurrence(i.record.id, at, dict(meta), actor) for i in items
            if i.record.id in inserted for at, meta, actor in i.occurrences]  # fmt: skip


class SQLRecordsBase:
    """Mixed into a store of record with ``db``, ``_columns`` (what
    :func:`~memora.memory.rows.to_record` reads), ``_order`` (the insertion-order key),
    ``_owns_db`` (close ``db`` with the store) and ``_neural`` (None until first used)."""

    db: SQLDatabase
    _columns: str
    _order: str
    _owns_db: bool
    _neural: NeuralTables | None

    def get(self, record_id: str, scope: Scope | None) -> MemoryRecord | None:
        sql, params = scope_sql(scope)
        row = self.db.one(
            f"SELECT {self._columns} FROM memories WHERE id = ? AND {sql}", (record_id, *params)
        )
        return None if row is None else to_record(row)

    def records(
        self, scope: Scope | None, *, include_deleted: bool, limit: int | None
    ) -> list[MemoryRecord]:
        sql, params = scope_sql(scope, live=not include_deleted)
        query = f"SELECT {self._columns} FROM memories WHERE {sql} ORDER BY {self._order}"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return [to_record(r) for r in self.db.query(query, params)]

    def count(self, scope: Scope | None, *, keys: bool = False) -> int:
        sql, params = scope_sql(scope, live=True, keys=keys)
        return int(self.db.one(f"SELECT COUNT(*) FROM memories WHERE {sql}", params)[0])

    def lexical_scored(
        self, words: Sequence[str], scope: Scope | None, filters: Mapping[str, Any] | None,
        depth: int,
    ) -> list[tuple[int, float]]:  # fmt: skip
        raise NotImplementedError

    def lexical(
        self, words: Sequence[str], scope: Scope | None, filters: Mapping[str, Any] | None,
        depth: int,
    ) -> list[int]:  # fmt: skip
        """Keys of the live records matching any of ``words``, best first."""
        return [key for key, _ in self.lexical_scored(words, scope, filters, depth)]

    def keys_of(self, record_id: str) -> list[MemoryRecord]:
        """The live search keys of a record, oldest first."""
        rows = self.db.query(
            f"SELECT {self._columns} FROM memories WHERE key_of = ? AND deleted_at IS NULL "
            f"ORDER BY {self._order}",
            (record_id,),
        )
        return [to_record(r) for r in rows]

    def around(self, record: MemoryRecord, n: int) -> list[MemoryRecord]:
        """Up to ``n`` live records written before ``record`` in its exact scope and ``n``
        after it, in time order (``occurred_at``, else when written)."""
        when, order = "COALESCE(occurred_at, created_at)", self._order
        row = self.db.one(f"SELECT {when}, {order} FROM memories WHERE id = ?", (record.id,))
        if row is None or n < 1:
            return []
        live, params = scope_sql(None, live=True)
        side = (
            f"SELECT {self._columns} FROM memories WHERE scope_key = ? AND {live} "
            f"AND ({when}, {order}) {{op}} (?, ?) ORDER BY {when} {{way}}, {order} {{way}} LIMIT ?"
        )
        args = (record.scope.key(), *params, row[0], row[1], n)
        before = self.db.query(side.format(op="<", way="DESC"), args)
        after = self.db.query(side.format(op=">", way="ASC"), args)
        return [to_record(r) for r in [*reversed(before), *after]]

    def history(self, record_id: str) -> list[HistoryEntry]:
        rows = self.db.query(
            "SELECT memory_id, event, old_text, new_text, actor, at FROM history "
            "WHERE memory_id = ? ORDER BY id",
            (record_id,),
        )
        return [HistoryEntry(*row) for row in rows]

    def add_occurrences(self, items: Sequence[Occurrence]) -> None:
        if items:
            with self.db.write() as conn:
                conn.executemany(_OCCURRENCE, [occurrence_row(o) for o in items])

    def occurrences(self, record_id: str) -> list[Occurrence]:
        rows = self.db.query(
            "SELECT memory_id, at, metadata, actor FROM occurrences WHERE memory_id = ? "
            "ORDER BY id",
            (record_id,),
        )
        return [Occurrence(r[0], float(r[1]), json.loads(r[2]), str(r[3])) for r in rows]

    def get_meta(self, key: str) -> str | None:
        row = self.db.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                "SET value = excluded.value",
                (key, value),
            )

    def neural(self) -> NeuralLog:
        if self._neural is None:
            self._neural = NeuralTables(self.db)
        return self._neural

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.db.closed

    def close(self) -> None:
        """Close the database when this store opened it (a shared one stays open)."""
        if self._owns_db:
            self.db.close()

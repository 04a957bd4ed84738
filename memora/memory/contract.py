"""The storage contract of the memory store: what a store of record must do.

:class:`~memora.memory.store.MemoryStore` keeps no SQL of its own; it talks to a
:class:`RecordStore`. :class:`~memora.memory.records.SQLiteRecords` is the embedded default; a
database server is another implementation of the same protocol, checked by the same contract
tests (``tests/test_record_contract.py``).

What every implementation guarantees:

- a write, its history rows and a bump of the change sequence commit together
  (:meth:`RecordStore.transaction`; writes outside one run in their own);
- every read takes a scope and applies it inside the query (None only for an explicit
  all-scopes read); records of other scopes are never returned. A scope whose ``user_id`` is
  unset matches only records without a user, unless it is an
  :class:`~memora.memory.types.AnyUserScope` (an explicit read across every user);
- :meth:`RecordStore.changes_since` lists every record changed after a sequence number (and
  every one removed for good), so derived views (the vector index) can catch up with writes of
  other processes;
- at most one live record per (exact scope, content hash); a conflicting insert is skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from memora._sqlite import Component
from memora.memory.types import Event, HistoryEntry, MemoryRecord, Occurrence, Scope

__all__ = ["Changes", "NeuralLog", "NewRecord", "RecordStore", "SQLDatabase", "VectorRow"]


@dataclass(frozen=True)
class NewRecord:
    """A record to insert, embedded already. ``history`` (event, old text, new text, actor,
    time) replaces the single ADD entry when a record is imported with its past;
    ``occurrences`` (time, metadata, actor) are the times it was added again."""

    record: MemoryRecord
    vector: np.ndarray
    history: tuple[tuple[Event, str | None, str | None, str, float], ...] = ()
    occurrences: tuple[tuple[float, dict[str, Any], str], ...] = ()


@dataclass(frozen=True)
class VectorRow:
    """What the vector view needs of one record: its key, scope, vector and life."""

    key: int
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    embedder: str
    vector: bytes | None  # None where the reader did not ask for vectors
    expires_at: float | None
    seq: int
    live: bool  # not soft-deleted

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, self.agent_id, self.session_id)


@dataclass(frozen=True)
class Changes:
    """Records changed after a sequence number, and keys removed for good, current to ``seq``."""

    rows: list[VectorRow] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    seq: int = 0


class SQLDatabase(Protocol):
    """What components need of a database: :class:`~memora._sqlite.Database` (SQLite) or
    :class:`~memora.memory.postgres.database.PgDatabase`. Statements use ``?`` placeholders
    and SQL both understand (``ON CONFLICT`` upserts, ``RETURNING``, ``IS NOT DISTINCT FROM``)."""

    path: str

    def write(self) -> contextlib.AbstractContextManager[Any]: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def after_commit(self, action: Callable[[], None]) -> None: ...

    def ensure(self, component: Component) -> None: ...

    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...


class NeuralLog(Protocol):
    """Where the neural memories of a store persist: the log of every write (to replay it)
    and, per write scope, a checkpoint of the state taken every so many writes. The memory
    now is the checkpoint with the log's later writes replayed on it."""

    def state(self, name: str) -> tuple[int, bytes, str] | None:
        """(step, state bytes, embedder) of scope ``name``'s latest checkpoint, None if it has
        none; the log may hold later steps (:meth:`head`)."""
        ...

    def head(self, name: str) -> int | None:
        """The step of scope ``name``'s latest write (logged or checkpointed), None if never
        written."""
        ...

    def put(
        self,
        name: str,
        embedder: str,
        step: int,
        state: bytes,
        at: float,
        pairs: Sequence[tuple[bytes, bytes]],
    ) -> None:
        """Log the written (key, value) pairs of write ``step`` and checkpoint the state after
        it, in the current transaction (no pairs: a checkpoint only)."""
        ...

    def append(self, name: str, step: int, at: float, pairs: Sequence[tuple[bytes, bytes]]) -> None:
        """Log the pairs of write ``step`` without a checkpoint, in the current transaction."""
        ...

    def names(self) -> list[str]:
        """Every scope with a checkpoint."""
        ...

    def log(self, name: str, after: int = 0) -> list[tuple[int, float, bytes, bytes]]:
        """(step, time, key, value) of scope ``name``'s writes after step ``after``, oldest
        first (float32 bytes; an empty key: the key is the value)."""
        ...


class RecordStore(Protocol):
    """The store of record under a :class:`~memora.memory.store.MemoryStore`.

    Records carry an integer ``key`` (stable while the record exists) that derived views use.
    Methods are safe to call from several threads.
    """

    location: str | None  # a file path, or None (nothing beside it persists)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Everything inside commits together (nested: joins the outer one)."""
        ...

    def atomic(self, work: Callable[[], Any]) -> Any:
        """``work()`` in one transaction, returning its result; a store whose server can abort
        a transaction (serialization failure, lost connection) runs it again, a bounded number
        of times. Inside another transaction it joins that one."""
        ...

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` after the current transaction commits (now, outside one)."""
        ...

    # writes
    def insert(self, items: Sequence[NewRecord], *, actor: str) -> list[bool]:
        """Insert records with one new change number; per item, whether it was inserted (False:
        its id, or its text in its scope, is already there)."""
        ...

    def update(
        self,
        record: MemoryRecord,
        vector: np.ndarray,
        *,
        old_text: str,
        metadata_changed: bool,
        actor: str,
    ) -> None:
        """Replace a record's text, vector, embedder (and metadata when ``metadata_changed``);
        raises :class:`InvalidRecordError` when its scope already holds the new text."""
        ...

    def soft_delete(self, record_id: str, *, old_text: str, at: float, actor: str) -> None: ...

    def hard_delete(self, record_id: str) -> None:
        """Remove a record and its history for good (its key goes to :meth:`changes_since`)."""
        ...

    # reads
    def get(self, record_id: str, scope: Scope | None) -> MemoryRecord | None: ...

    def by_hash(self, scope: Scope, hashes: Sequence[str]) -> list[MemoryRecord]:
        """Live records of exactly ``scope`` with these content hashes."""
        ...

    def records(
        self, scope: Scope | None, *, include_deleted: bool, limit: int | None
    ) -> list[MemoryRecord]:
        """Records of ``scope`` (None: all), oldest first."""
        ...

    def count(self, scope: Scope | None, *, keys: bool = False) -> int:
        """Live (not deleted, not expired) records of ``scope`` (and their search keys, with
        ``keys``)."""
        ...

    def history(self, record_id: str) -> list[HistoryEntry]: ...

    def add_occurrences(self, items: Sequence[Occurrence]) -> None:
        """Record texts added again to records that hold them (in the current transaction)."""
        ...

    def occurrences(self, record_id: str) -> list[Occurrence]:
        """The times a record's text was added again, oldest first."""
        ...

    def fetch(
        self, keys: Sequence[int], scope: Scope | None
    ) -> dict[int, tuple[MemoryRecord, np.ndarray]]:
        """Live records (with their vectors) among ``keys``, the scope applied again."""
        ...

    def fetch_ids(
        self, ids: Sequence[str], scope: Scope | None
    ) -> dict[int, tuple[MemoryRecord, np.ndarray]]:
        """Live records (with their vectors) with these ids, by key, the scope applied."""
        ...

    def keys_of(self, record_id: str) -> list[MemoryRecord]:
        """The live search keys of a record (rows whose ``key_of`` is it), oldest first."""
        ...

    def around(self, record: MemoryRecord, n: int) -> list[MemoryRecord]:
        """Up to ``n`` live records before ``record`` in its exact scope and ``n`` after it,
        in time order (``occurred_at``, else when written); keys excluded."""
        ...

    def lexical(
        self, words: Sequence[str], scope: Scope | None, filters: Mapping[str, Any] | None,
        depth: int,
    ) -> list[int]:  # fmt: skip
        """Keys of the live records of ``scope`` matching any of ``words``, best first
        (full-text ranking), at most ``depth``."""
        ...

    def lexical_scored(
        self, words: Sequence[str], scope: Scope | None, filters: Mapping[str, Any] | None,
        depth: int,
    ) -> list[tuple[int, float]]:  # fmt: skip
        """:meth:`lexical` with the full-text scores (higher is better); search keys of
        records included."""
        ...

    def matching(self, scope: Scope | None, filters: Mapping[str, Any], embedder: str) -> list[int]:
        """Keys of the live records of ``scope`` whose metadata match ``filters``."""
        ...

    # derived views
    def current_seq(self) -> int: ...

    def changes_since(self, seq: int) -> Changes:
        """Rows (with vectors) changed after ``seq`` and keys removed for good since."""
        ...

    def live_rows(self, embedder: str, *, vectors: bool, upto: int | None = None) -> Changes:
        """Every live record of one embedding space (changed at or before ``upto``)."""
        ...

    def export(self, include_deleted: bool) -> Iterator[tuple[MemoryRecord, bytes]]:
        """Every record (all scopes) with its vector, oldest first."""
        ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def neural(self) -> NeuralLog:
        """The persistence of this store's neural memories (its tables made on first use)."""
        ...

    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...

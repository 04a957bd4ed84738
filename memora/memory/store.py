"""The memory store: durable, scoped, searchable memory with history.

:class:`MemoryStore` is a small facade over parts with one job each: the records (the store of
record, :mod:`memora.memory.contract`; SQLite by default, :mod:`memora.memory.records`), the
vector view derived from them (:mod:`memora.memory.vectors`), the ranking
(:mod:`memora.memory.search`) and optionally a neural memory per write scope
(:mod:`memora.memory.neural_bank`). Scope isolation happens inside every query; reads without
a scope raise :class:`ScopeError` unless ``all_scopes=True``.

What an unset scope field means on a read: an unset ``agent_id`` or ``session_id`` matches any
value (``user_id="u"`` sees all of user ``u``'s agents and sessions), but an unset ``user_id``
fails closed and matches only records written without a user: ``agent_id="a"`` alone sees the
agent's own records, never what it stored for its users. ``all_users=True`` asks explicitly for
every user's records of that agent or session; ``all_scopes=True`` reads everything.

The embedder is loaded on first use (an embedding, a search, an add): listing, reading
history, exporting or deleting never load a model.
"""

from __future__ import annotations

import builtins
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Unpack

from memora._sqlite import Database
from memora.embed import Embedder
from memora.errors import ConfigError, RecordNotFoundError
from memora.memory.contract import NewRecord, RecordStore
from memora.memory.neural import NeuralConfig
from memora.memory.neural_bank import config_with, neural_keys
from memora.memory.parts import DerivedParts
from memora.memory.postgres import is_postgres_url, postgres_records
from memora.memory.records import SQLiteRecords
from memora.memory.retrieval import Retrieval
from memora.memory.rows import (
    check_batch,
    check_keys,
    check_metadata,
    check_text,
    check_time,
    new_record,
    read_scope,
    write_scope,
)
from memora.memory.search import RRF_K, SearchOptions
from memora.memory.transfer import Transfer
from memora.memory.types import (
    AddResult,
    HistoryEntry,
    IndexStatus,
    MemoryRecord,
    Occurrence,
    Scope,
    ScopeIds,
    SearchHit,
    SurpriseScore,
    content_hash,
    normalize_text,
)

__all__ = ["RRF_K", "IndexStatus", "MemoryStore", "SearchOptions", "normalize_text"]

ScopeArg = Scope | Mapping[str, Any] | None


class MemoryStore(DerivedParts, Transfer, Retrieval):
    """Scoped memories in one SQLite file (or ``":memory:"``) with a derived faiss index, or in
    a PostgreSQL database with pgvector (``"postgresql://..."``).

    Safe to share between threads (one store per process and file is enough; searches and
    writes of several threads interleave safely) and to use from several processes at once
    (each sees the others' writes).

    Args:
        path: the database file, ``":memory:"`` (nothing persists), or the DSN of a PostgreSQL
            database (``postgresql://user:password@host/db``; its server needs pgvector).
        embedder: anything with ``name``, ``dim`` and ``encode``, or the name of one for
            :func:`~memora.embed.load_embedder` (default: all-MiniLM-L6-v2); a name is loaded
            on first use, so reads that need no embedding never load a model.
        max_text_chars: longer texts are refused.
        approx_threshold: past this many vectors the index becomes HNSW (approximate).
        neural: a Titans-like neural memory per write scope (:mod:`memora.memory.neural`):
            ``True`` or a :class:`NeuralConfig`. Every added text is written to it (key: the
            text's ``cue`` when given, else the text itself; value: the text); the records get
            its surprise, and ``search`` can fuse candidates read through it.
        db: an open database of the file to share (a story file and its memory commit in one
            transaction); instead of ``path``.
        records: another store of record (:class:`~memora.memory.contract.RecordStore`);
            instead of ``path``.
        readonly: open the file for reading only: nothing is created or written (not even the
            index file); a missing file raises :class:`~memora.errors.ReadOnlyError`.
        embed_threads: torch CPU threads of an embedder loaded by name (``MEMORA_EMBED_THREADS``
            at the command line); None: torch's default.
    """

    def __init__(self, path: str | Path = ":memory:", *, embedder: Embedder | str | None = None,
                 max_text_chars: int = 10_000, approx_threshold: int = 250_000,
                 neural: NeuralConfig | bool = False, db: Database | None = None,
                 records: RecordStore | None = None, readonly: bool = False,
                 embed_threads: int | None = None) -> None:  # fmt: skip
        if max_text_chars < 1:
            raise ConfigError("max_text_chars must be >= 1")
        if db is not None and records is not None:
            raise ConfigError("pass db= or records=, not both")
        self.max_text_chars = max_text_chars
        if records is None and is_postgres_url(path):
            records = postgres_records(str(path), db=db, readonly=readonly)
        super().__init__(
            records if records is not None else SQLiteRecords(path, db=db, readonly=readonly),
            embedder, approx_threshold=approx_threshold, neural=config_with(neural),
            readonly=readonly, embed_threads=embed_threads,
        )  # fmt: skip

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Save the index (when it changed) and close the records. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self.records.closed and self._view is not None:
            self._view.sync()
            self._view.save()
        self.records.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------

    def add(self, text: str, scope: ScopeArg = None, *, metadata: Mapping[str, Any] | None = None,
            expires_at: float | None = None, actor: str = "memora", cue: str | None = None,
            dedup: bool = True, occurred_at: float | None = None,
            keys: Sequence[str] | None = None, **ids: Unpack[ScopeIds]) -> AddResult:  # fmt: skip
        """Store one text. A text whose normalized form is already stored in the same scope is
        not stored again: the result holds the existing record with ``created=False``, and this
        add (time, actor, metadata) becomes its occurrence (:meth:`occurrences`); with
        ``dedup=False`` the text is stored as its own record. With a neural memory the text
        (stored again or not) is also written to it, in the same transaction; ``cue`` is the
        key it is associated with. ``occurred_at``: when what the text says happened (default:
        now; a text stored again keeps its record's time); ``keys``: more texts that find this
        record (:meth:`add_keys`), checked first and stored after it."""
        if not isinstance(text, str):
            message = "MemoryStore.add with a list of texts is deprecated; use add_many"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            cues = cue if cue is None or isinstance(cue, str) else list(cue)
            many = self.add_many(list(text), scope, metadata=metadata, expires_at=expires_at,
                                 actor=actor, cues=cues, **ids)  # fmt: skip
            return many  # a list, as before add_many existed
        checked = check_keys([list(keys or [])], 1, self.max_text_chars)[0]  # before writing
        (result,) = self.add_many([text], scope, metadata=metadata, expires_at=expires_at,
                                  actor=actor, cues=cue, dedup=dedup, occurred_at=occurred_at,
                                  **ids)  # fmt: skip
        if checked:
            self.attach_keys([(result.record, checked)], actor)
        return result

    def add_many(self, texts: Sequence[str], scope: ScopeArg = None, *,
                 metadatas: Sequence[Mapping[str, Any] | None] | None = None,
                 metadata: Mapping[str, Any] | None = None, expires_at: float | None = None,
                 actor: str = "memora", cues: str | Sequence[str | None] | None = None,
                 dedup: bool = True, occurred_at: float | Sequence[float | None] | None = None,
                 **ids: Unpack[ScopeIds]) -> builtins.list[AddResult]:  # fmt: skip
        """Store several texts, embedded in one batch and committed in one transaction.
        ``metadatas``: one dict per text (or ``metadata``: one for all); ``cues``: one key per
        text for the neural memory; ``occurred_at``: one time for all or one per text.
        Duplicates (in the store or within ``texts``) behave as in :meth:`add`: the first is
        stored, the others become its occurrences; ``dedup=False`` stores each text as its own
        record."""
        self._open(write=True)
        where = write_scope(Scope.of(scope, **ids))
        metas, cue_list, times = check_batch(
            texts, self.max_text_chars, metadatas=metadatas, metadata=metadata,
            expires_at=expires_at, cues=cues, occurred_at=occurred_at)  # fmt: skip
        hashes = [content_hash(t) for t in texts]
        stored = {r.content_hash for r in self.records.by_hash(where, hashes)} if dedup else set()
        first: dict[str, int] = {}
        unique = [i for i, h in enumerate(hashes)
                  if not dedup or (h not in stored and first.setdefault(h, i) == i)]  # fmt: skip
        bank = self.neural  # a neural memory sees every text, stored again or not
        vectors = self.embed(list(texts) if bank is not None else [texts[i] for i in unique])
        cue_vectors = vectors if bank is None else (
            neural_keys(cue_list, vectors, self.embed([c for c in cue_list if c is not None]))
        )  # fmt: skip
        now = time.time()
        self.vectors.sync()  # opened (loaded or rebuilt) before the write, saved on close

        def write() -> tuple[dict[str, MemoryRecord], dict[int, MemoryRecord],
                             Sequence[SurpriseScore] | None]:  # fmt: skip
            scores, stored = None, vectors
            if bank is not None:
                scores = bank.write_in(self.records, where.key(), cue_vectors, vectors, now)
                stored = vectors[unique]
            items = [
                NewRecord(new_record(where, texts[i], metas[i], now,
                                     space=(self.space, self.embedder.dim), expires_at=expires_at,
                                     score=None if scores is None else scores[i], dedup=dedup,
                                     occurred_at=times[i]), v)
                for i, v in zip(unique, stored, strict=True)
            ]  # fmt: skip
            created = self.records.insert(items, actor=actor)
            made = {
                i: item.record for i, item, ok in zip(unique, items, created, strict=True) if ok
            }
            found = {r.content_hash: r for r in self.records.by_hash(where, hashes)}
            self.records.add_occurrences([Occurrence(found[hashes[i]].id, now, metas[i], actor)
                                          for i in range(len(texts)) if i not in made])  # fmt: skip
            self.records.after_commit(self._sync_view)
            return found, made, scores

        found, made, scores = self.records.atomic(write)
        return [AddResult(made.get(i) or found[h], i in made, None if scores is None else
                          scores[i]) for i, h in enumerate(hashes)]  # fmt: skip

    def update(self, record_id: str, text: str, scope: ScopeArg = None, *,
               all_scopes: bool = False, metadata: Mapping[str, Any] | None = None,
               actor: str = "memora", occurred_at: float | None = None,
               **ids: Unpack[ScopeIds]) -> MemoryRecord:  # fmt: skip
        """Replace a record's text (re-embedded) and, when given, its metadata and when what
        it says happened (``occurred_at``)."""
        self._open(write=True)
        check_text(text, self.max_text_chars)
        when = check_time(occurred_at, "occurred_at")
        meta = None if metadata is None else check_metadata(metadata)
        old = self.get(record_id, scope, all_scopes=all_scopes, **ids)
        if old.deleted:
            raise RecordNotFoundError(f"memory {record_id} is deleted; add it again instead")
        (vector,) = self.embed([text])
        new = replace(
            old, text=text, content_hash=content_hash(text), embedder=self.space,
            dim=self.embedder.dim, metadata=old.metadata if meta is None else meta,
            updated_at=time.time(), occurred_at=old.occurred_at if when is None else when,
        )  # fmt: skip

        def write() -> None:
            self.records.update(
                new, vector, old_text=old.text, metadata_changed=meta is not None, actor=actor
            )
            self.records.after_commit(self._sync_view)

        self.records.atomic(write)
        return self.get(record_id, all_scopes=True)

    def delete(self, record_id: str, scope: ScopeArg = None, *, all_scopes: bool = False,
               hard: bool = False, actor: str = "memora",
               **ids: Unpack[ScopeIds]) -> None:  # fmt: skip
        """Delete a record: soft by default (kept, hidden, with a DELETE history row); ``hard``
        removes the record and its history for good."""
        self._open(write=True)
        old = self.get(record_id, scope, all_scopes=all_scopes, **ids)
        if old.deleted and not hard:
            return

        def write() -> None:
            if hard:
                self.records.hard_delete(record_id)
            else:
                self.records.soft_delete(record_id, old_text=old.text, at=time.time(), actor=actor)
            self.records.after_commit(self._sync_view)

        self.records.atomic(write)

    # -- reads ---------------------------------------------------------------------------

    def get(self, record_id: str, scope: ScopeArg = None, *, all_scopes: bool = False,
            all_users: bool = False, **ids: Unpack[ScopeIds]) -> MemoryRecord:  # fmt: skip
        """The record with ``record_id`` (deleted ones included), if it is in ``scope``."""
        self._open()
        where = read_scope(Scope.of(scope, **ids), all_scopes, all_users)
        record = self.records.get(record_id, where)
        if record is None:
            raise RecordNotFoundError(
                f"no memory {record_id!r}" + ("" if all_scopes else " in this scope")
            )
        return record

    def list(self, scope: ScopeArg = None, *, all_scopes: bool = False, all_users: bool = False,
             include_deleted: bool = False, limit: int | None = None,
             **ids: Unpack[ScopeIds]) -> builtins.list[MemoryRecord]:  # fmt: skip
        """Records in ``scope``, oldest first."""
        self._open()
        where = read_scope(Scope.of(scope, **ids), all_scopes, all_users)
        return self.records.records(where, include_deleted=include_deleted, limit=limit)

    def count(self, scope: ScopeArg = None, *, all_scopes: bool = False, all_users: bool = False,
              **ids: Unpack[ScopeIds]) -> int:  # fmt: skip
        """Live records in ``scope``."""
        self._open()
        return self.records.count(read_scope(Scope.of(scope, **ids), all_scopes, all_users))

    def history(self, record_id: str, scope: ScopeArg = None, *, all_scopes: bool = False,
                all_users: bool = False,
                **ids: Unpack[ScopeIds]) -> builtins.list[HistoryEntry]:  # fmt: skip
        """Every ADD, UPDATE and DELETE of a record, oldest first."""
        self.get(record_id, scope, all_scopes=all_scopes, all_users=all_users, **ids)
        return self.records.history(record_id)

    def occurrences(self, record_id: str, scope: ScopeArg = None, *, all_scopes: bool = False,
                    **ids: Unpack[ScopeIds]) -> builtins.list[Occurrence]:  # fmt: skip
        """The times a record's text was added again (with the metadata each add carried)."""
        self.get(record_id, scope, all_scopes=all_scopes, **ids)
        return self.records.occurrences(record_id)

    def search(self, query: str, scope: ScopeArg = None, *, all_scopes: bool = False,
               all_users: bool = False, options: SearchOptions | None = None,
               user_id: str | None = None, agent_id: str | None = None,
               session_id: str | None = None,
               **changes: Any) -> builtins.list[SearchHit]:  # fmt: skip
        """The best records for ``query`` in ``scope``, best first. How they are ranked is a
        :class:`SearchOptions` (``options``), or its fields as keywords (``k=5``,
        ``mode="dense"``, ``neighbours=2``, ...); an unknown name raises
        :class:`InvalidOptionError`. A search key that matches finds its record
        (``SearchHit.via``); a time the query names ("last week") favours what occurred then."""
        return self.find(query, scope, all_scopes=all_scopes, all_users=all_users,
                         options=options, user_id=user_id, agent_id=agent_id,
                         session_id=session_id, **changes)  # fmt: skip

    # -- index ---------------------------------------------------------------------------

    def rebuild_index(self) -> int:
        """Rebuild the vector index from the stored vectors; returns how many it holds."""
        self._open()
        return self.vectors.rebuild()

    def verify_index(self) -> IndexStatus:
        """Compare the vector index with the records (see :class:`IndexStatus`)."""
        self._open()
        return self.vectors.verify()

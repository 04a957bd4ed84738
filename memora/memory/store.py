"""The memory store: durable, scoped, searchable memory with history.

- SQLite is the store of record (WAL, busy timeout, foreign keys); each write, its history row
  and a bump of the change sequence commit in one transaction.
- The faiss index is derived state: kept in memory, saved beside the database with its
  checksum and change sequence recorded in SQLite, loaded when both match, rebuilt from the
  stored vectors when the file is missing or corrupt, and brought up to date from the change
  sequence before every read (so writes of other processes are seen).
- Scope isolation happens inside every query: SQL conditions for the lexical side and faiss
  id selectors built from the scope for the dense side. Reads without a scope raise
  :class:`ScopeError` unless ``all_scopes=True``.
"""

from __future__ import annotations

import builtins
import json
import math
import re
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal, Unpack

import numpy as np

from memora.embed import Embedder, load_embedder
from memora.errors import (
    ConfigError,
    InvalidRecordError,
    RecordNotFoundError,
)
from memora.memory.db import Database
from memora.memory.index import VectorIndex, file_checksum
from memora.memory.neural import NeuralBank, NeuralConfig, NeuralMemory, config_with
from memora.memory.rows import (
    COLUMNS,
    check_cues,
    check_metadata,
    check_text,
    filter_sql,
    read_scope,
    scope_sql,
    to_record,
    write_scope,
)
from memora.memory.types import (
    AddResult,
    HistoryEntry,
    IndexStatus,
    MemoryRecord,
    Scope,
    ScopeIds,
    SearchHit,
    normalize_text,
)
from memora.memory.types import content_hash as _hash

__all__ = ["IndexStatus", "MemoryStore", "normalize_text"]  # re-exported from types

SearchMode = Literal["hybrid", "dense", "lexical"]
RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)


class MemoryStore:
    """Scoped memories in one SQLite file (or ``":memory:"``) with a derived faiss index.

    Args:
        path: the database file, or ``":memory:"`` (nothing persists).
        embedder: anything with ``name``, ``dim`` and ``encode`` (default: all-MiniLM-L6-v2).
        max_text_chars: longer texts are refused.
        approx_threshold: past this many vectors the index becomes HNSW (approximate).
        neural: a Titans-like neural memory per write scope (:mod:`memora.memory.neural`):
            ``True`` or a :class:`NeuralConfig`. Every added text is written to it (key: the
            text's ``cue`` when given, else the text itself; value: the text); the records get
            its surprise, and ``search`` can fuse candidates read through it.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        embedder: Embedder | None = None,
        max_text_chars: int = 10_000,
        approx_threshold: int = 250_000,
        neural: NeuralConfig | bool = False,
    ) -> None:
        if max_text_chars < 1:
            raise ConfigError("max_text_chars must be >= 1")
        self.embedder = embedder if embedder is not None else load_embedder()
        self.space = self.embedder.name
        self.max_text_chars = max_text_chars
        self.db = Database(path)
        self.index = VectorIndex(self.embedder.dim, approx_threshold=approx_threshold)
        self._by_field: dict[tuple[str, str], set[int]] = {}  # (column, value) -> vector ids
        self._live: set[int] = set()  # vector ids of live records of this space
        self._row_of: dict[int, int] = {}  # vector id -> rowid
        self._vid_of: dict[int, int] = {}  # rowid -> vector id
        self._scopes: dict[int, Scope] = {}  # vector id -> scope
        self._expiry: dict[int, float] = {}  # vector id -> expires_at
        self._seen_seq = 0
        # scope -> ((scope, change seq, expired ids), allowed vector ids), reused until a write
        self._allowed_cache: dict[Scope | None, tuple[Any, np.ndarray]] = {}
        config = config_with(neural)
        self.neural = None if config is None else NeuralBank(self.embedder.dim, config, self.space)
        self._open_index()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def index_path(self) -> Path | None:
        if self.db.in_memory:
            return None
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", self.space)
        return Path(self.db.path + ".index") / f"{safe}.faiss"

    def close(self) -> None:
        """Save the index (when it changed) and close the database. Idempotent."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self._sync()
        self._save_index()
        self.db.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------

    def add(
        self,
        text: str | Sequence[str],
        scope: Scope | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        expires_at: float | None = None,
        actor: str = "memora",
        cue: str | Sequence[str | None] | None = None,
        **ids: Unpack[ScopeIds],
    ) -> Any:
        """Store one text (returns an :class:`AddResult`) or a list (returns a list of them).

        A text whose normalized form is already stored in the same scope is not stored again:
        the result holds the existing record with ``created=False``. Texts are embedded in one
        batch; the records and their history rows commit in one transaction. With a neural
        memory, every text (stored again or not) is also written to it, in the same
        transaction; ``cue`` (one per text) is the key it is associated with.
        """
        where = write_scope(Scope.of(scope, **ids))
        texts = [text] if isinstance(text, str) else list(text)
        meta = check_metadata(metadata)
        if expires_at is not None and not math.isfinite(expires_at):
            raise InvalidRecordError("expires_at must be a finite timestamp")
        for t in texts:
            check_text(t, self.max_text_chars)
        cues = check_cues(cue, len(texts))
        hashes = [_hash(t) for t in texts]
        inserted: set[int] = set()
        existing = self._existing(where, hashes)
        todo = [i for i, h in enumerate(hashes) if h not in existing]
        first_of: dict[str, int] = {}
        unique = [i for i in todo if first_of.setdefault(hashes[i], i) == i]
        every = self.neural is not None
        vectors = self._embed(texts if every else [texts[i] for i in unique])
        keys = self._embed([c for c in cues if c is not None]) if every else vectors
        now = time.time()
        scores = None
        with self.db.write() as conn:
            seq = self.db.next_seq()
            if self.neural is not None:
                at_key = iter(keys)
                key_rows = np.stack(
                    [next(at_key) if c else v for c, v in zip(cues, vectors, strict=True)]
                )
                scores = self.neural.write(conn, where.key(), key_rows, vectors, now).scores
                vectors = vectors[unique]
            for i, vector in zip(unique, vectors, strict=True):
                score = None if scores is None else scores[i]
                record_id = uuid.uuid4().hex
                cursor = conn.execute(
                    "INSERT INTO memories (id, user_id, agent_id, session_id, scope_key, text, "
                    "metadata, content_hash, embedder, dim, vector, created_at, updated_at, "
                    "expires_at, seq, surprise, salient) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT DO NOTHING",
                    (
                        record_id, where.user_id, where.agent_id, where.session_id, where.key(),
                        texts[i], json.dumps(meta), hashes[i], self.space, self.embedder.dim,
                        vector.tobytes(), now, now, expires_at, seq,
                        None if score is None else score.normalized, bool(score and score.salient),
                    ),
                )  # fmt: skip
                if cursor.rowcount == 0:
                    continue  # another process stored the same text meanwhile
                inserted.add(i)
                conn.execute(
                    "INSERT INTO history (memory_id, event, old_text, new_text, actor, at) "
                    "VALUES (?, 'ADD', NULL, ?, ?, ?)",
                    (record_id, texts[i], actor, now),
                )
        if self.neural is not None:
            self.neural.commit()
        fresh = {r.content_hash: r for r in self._records_by_hash(where, hashes)}
        results = []
        for i, h in enumerate(hashes):
            record = fresh.get(h)
            if record is None:  # pragma: no cover - a concurrent hard delete
                raise RecordNotFoundError(f"the record for text {i} vanished during add")
            surprise = None if scores is None else scores[i]
            results.append(AddResult(record=record, created=i in inserted, surprise=surprise))
        self._sync()
        return results[0] if isinstance(text, str) else results

    def update(
        self,
        record_id: str,
        text: str,
        scope: Scope | None = None,
        *,
        all_scopes: bool = False,
        metadata: Mapping[str, Any] | None = None,
        actor: str = "memora",
        **ids: Unpack[ScopeIds],
    ) -> MemoryRecord:
        """Replace a record's text (re-embedded) and, when given, its metadata."""
        check_text(text, self.max_text_chars)
        meta = None if metadata is None else check_metadata(metadata)
        old = self.get(
            record_id,
            scope,
            **ids,
            all_scopes=all_scopes,
        )
        if old.deleted:
            raise RecordNotFoundError(f"memory {record_id} is deleted; add it again instead")
        (vector,) = self._embed([text])
        now = time.time()
        with self.db.write() as conn:
            seq = self.db.next_seq()
            try:
                conn.execute(
                    "UPDATE memories SET text = ?, content_hash = ?, vector = ?, embedder = ?, "
                    "dim = ?, metadata = COALESCE(?, metadata), updated_at = ?, seq = ? "
                    "WHERE id = ?",
                    (
                        text, _hash(text), vector.tobytes(), self.space, self.embedder.dim,
                        None if meta is None else json.dumps(meta), now, seq, record_id,
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
                "INSERT INTO history (memory_id, event, old_text, new_text, actor, at) "
                "VALUES (?, 'UPDATE', ?, ?, ?, ?)",
                (record_id, old.text, text, actor, now),
            )
        self._sync()
        return self.get(record_id, all_scopes=True)

    def delete(
        self,
        record_id: str,
        scope: Scope | None = None,
        *,
        all_scopes: bool = False,
        hard: bool = False,
        actor: str = "memora",
        **ids: Unpack[ScopeIds],
    ) -> None:
        """Delete a record: soft by default (kept, hidden, with a DELETE history row); ``hard``
        removes the record and its history for good."""
        old = self.get(
            record_id,
            scope,
            **ids,
            all_scopes=all_scopes,
        )
        now = time.time()
        with self.db.write() as conn:
            seq = self.db.next_seq()
            if hard:
                row = conn.execute("SELECT rowid FROM memories WHERE id = ?", (record_id,))
                rowid = row.fetchone()[0]
                conn.execute("DELETE FROM memories WHERE id = ?", (record_id,))
                conn.execute("INSERT OR REPLACE INTO tombstones VALUES (?, ?)", (rowid, seq))
            else:
                if old.deleted:
                    return
                conn.execute(
                    "UPDATE memories SET deleted_at = ?, seq = ? WHERE id = ?",
                    (now, seq, record_id),
                )
                conn.execute(
                    "INSERT INTO history (memory_id, event, old_text, new_text, actor, at) "
                    "VALUES (?, 'DELETE', ?, NULL, ?, ?)",
                    (record_id, old.text, actor, now),
                )
        self._sync()

    # -- reads ---------------------------------------------------------------------------

    def get(
        self,
        record_id: str,
        scope: Scope | None = None,
        *,
        all_scopes: bool = False,
        **ids: Unpack[ScopeIds],
    ) -> MemoryRecord:
        """The record with ``record_id`` (deleted ones included), if it is in ``scope``."""
        where = read_scope(Scope.of(scope, **ids), all_scopes)
        sql, params = scope_sql(where)
        with self.db.lock:
            row = self.db.conn.execute(
                f"SELECT {COLUMNS} FROM memories WHERE id = ? AND {sql}", (record_id, *params)
            ).fetchone()
        if row is None:
            raise RecordNotFoundError(
                f"no memory {record_id!r}" + ("" if all_scopes else " in this scope")
            )
        return to_record(row)

    def list(
        self,
        scope: Scope | None = None,
        *,
        all_scopes: bool = False,
        include_deleted: bool = False,
        limit: int | None = None,
        **ids: Unpack[ScopeIds],
    ) -> builtins.list[MemoryRecord]:
        """Records in ``scope``, oldest first."""
        where = read_scope(Scope.of(scope, **ids), all_scopes)  # fmt: skip
        sql, params = scope_sql(where, live=not include_deleted)
        query = f"SELECT {COLUMNS} FROM memories WHERE {sql} ORDER BY rowid"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self.db.lock:
            rows = self.db.conn.execute(query, params).fetchall()
        return [to_record(r) for r in rows]

    def count(
        self,
        scope: Scope | None = None,
        *,
        all_scopes: bool = False,
        **ids: Unpack[ScopeIds],
    ) -> int:
        """Live records in ``scope``."""
        where = read_scope(Scope.of(scope, **ids), all_scopes)  # fmt: skip
        sql, params = scope_sql(where, live=True)
        with self.db.lock:
            return int(
                self.db.conn.execute(
                    f"SELECT COUNT(*) FROM memories WHERE {sql}", params
                ).fetchone()[0]
            )

    def history(
        self,
        record_id: str,
        scope: Scope | None = None,
        *,
        all_scopes: bool = False,
        **ids: Unpack[ScopeIds],
    ) -> builtins.list[HistoryEntry]:
        """Every ADD, UPDATE and DELETE of a record, oldest first."""
        self.get(
            record_id,
            scope,
            **ids,
            all_scopes=all_scopes,
        )
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT memory_id, event, old_text, new_text, actor, at FROM history "
                "WHERE memory_id = ? ORDER BY id",
                (record_id,),
            ).fetchall()
        return [HistoryEntry(*row) for row in rows]

    def search(
        self,
        query: str,
        scope: Scope | None = None,
        *,
        all_scopes: bool = False,
        k: int = 10,
        filters: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        mode: SearchMode = "hybrid",
        recency_weight: float = 0.0,
        recency_half_life_days: float = 30.0,
        neural_weight: float = 0.0,
        neural_query: str | None = None,
        salience_weight: float = 0.0,
        **ids: Unpack[ScopeIds],
    ) -> builtins.list[SearchHit]:
        """The ``k`` best records for ``query`` in ``scope``.

        ``mode``: ``"dense"`` (embeddings), ``"lexical"`` (SQLite FTS5, BM25) or ``"hybrid"``
        (both, fused by reciprocal rank fusion). ``filters`` match metadata keys exactly.
        ``min_score`` drops hits whose cosine similarity is below it. ``recency_weight`` adds
        ``weight * 0.5 ** (age / half_life)`` to the fused score.

        With a neural memory, ``neural_weight`` > 0 reads ``r = M(q)`` (the scope's memory at
        the embedding of ``neural_query``, default the query): the dense candidates of ``q``
        and of ``r`` are pooled and ranked by ``cos(q, x) + neural_weight * cos(r, x)``;
        ``salience_weight`` adds that much to the score of records flagged salient.
        """
        if not query.strip():
            raise InvalidRecordError("the query is empty")
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        if mode not in ("hybrid", "dense", "lexical"):
            raise ConfigError(f"mode must be 'hybrid', 'dense' or 'lexical', got {mode!r}")
        where = read_scope(Scope.of(scope, **ids), all_scopes)  # fmt: skip
        self._sync()
        depth = k if mode == "dense" else max(k * 4, 20)  # fusion wants deeper lists
        (qvec,) = self._embed([query])
        dense: builtins.list[int] = []
        if mode != "lexical":
            allowed = self._allowed(where, filters)
            vids, _ = self.index.search(qvec, depth, allowed)
            dense = [self._row_of[int(v)] for v in vids]
        lexical = self._lexical(query, where, filters, depth) if mode != "dense" else []
        pool: dict[int, tuple[MemoryRecord, np.ndarray]] = {}
        if neural_weight and dense and where is not None and (memory := self.neural_memory(where)):
            (key,) = self._embed([neural_query]) if neural_query else (qvec,)
            read = memory.read(key)
            if float(np.linalg.norm(read)) > 1e-6:
                read = read / np.linalg.norm(read)
                vids, _ = self.index.search(read, depth, self._allowed(where, filters))
                pool = self._rows(
                    list(dict.fromkeys(dense + [self._row_of[int(v)] for v in vids])), where
                )
                blend = {
                    r: float(v @ qvec + neural_weight * (v @ read)) for r, (_, v) in pool.items()
                }
                dense = sorted(pool, key=lambda r: -blend[r])[:depth]
        fused: dict[int, float] = {}
        for ranking in (dense, lexical):
            for rank, rowid in enumerate(ranking, start=1):
                fused[rowid] = fused.get(rowid, 0.0) + 1.0 / (RRF_K + rank)
        missing = [r for r in fused if r not in pool]  # the neural pool is already read
        records = {r: pool[r] for r in fused if r in pool} | self._rows(missing, where)
        now = time.time()
        hits = []
        for rowid, (record, vector) in records.items():
            similarity = float(vector @ qvec)
            if min_score is not None and similarity < min_score:
                continue
            score = fused[rowid]
            if recency_weight:
                age_days = max(0.0, now - record.updated_at) / 86_400
                score += recency_weight * 0.5 ** (age_days / recency_half_life_days)
            score += salience_weight * record.salient
            hits.append(
                SearchHit(
                    record=record,
                    score=score,
                    similarity=similarity,
                    dense_rank=dense.index(rowid) + 1 if rowid in dense else None,
                    lexical_rank=lexical.index(rowid) + 1 if rowid in lexical else None,
                )
            )
        hits.sort(key=lambda h: (-h.score, -h.similarity, h.record.id))
        return hits[:k]

    # -- neural memory -------------------------------------------------------------------

    def neural_memory(
        self, scope: Scope | None = None, **ids: Unpack[ScopeIds]
    ) -> NeuralMemory | None:
        """The neural memory of exactly this write scope (None: never written, or the store
        has no neural memory). Treat it as read-only: writes go through :meth:`add`."""
        where = write_scope(Scope.of(scope, **ids))
        if self.neural is None:
            return None
        with self.db.lock:
            return self.neural.get(self.db.conn, where.key())

    def replay_neural(self, scope: Scope | None = None, **ids: Unpack[ScopeIds]) -> NeuralMemory:
        """The scope's neural memory rebuilt from scratch from its write log (the same seed and
        writes give the same weights); it does not replace the stored one."""
        where = write_scope(Scope.of(scope, **ids))
        if self.neural is None:
            raise ConfigError("this store has no neural memory; open it with neural=True")
        with self.db.lock:
            return self.neural.replay(self.db.conn, where.key())

    # -- import / export / index ---------------------------------------------------------

    def export(self, out: IO[str], *, include_deleted: bool = False) -> int:
        """Write every record (all scopes) as JSON lines, with its history and vector."""
        from memora.memory.jsonl import export_jsonl

        return export_jsonl(self, out, include_deleted=include_deleted)

    def import_(self, lines: Iterable[str], *, actor: str = "import") -> tuple[int, int]:
        """Read records written by :meth:`export`; returns (imported, skipped). A record whose
        id or text is already in its scope is skipped. Vectors of this store's embedder are
        reused, others re-embedded. Everything commits in one transaction."""
        from memora.memory.jsonl import import_jsonl

        return import_jsonl(self, lines, actor=actor)

    def rebuild_index(self) -> int:
        """Rebuild the vector index from the vectors in SQLite; returns how many it holds."""
        with self.db.lock:
            seq = self.db.current_seq()
            rows = self.db.conn.execute(
                "SELECT rowid, user_id, agent_id, session_id, vector, expires_at, seq "
                "FROM memories WHERE deleted_at IS NULL AND embedder = ?",
                (self.space,),
            ).fetchall()
        self._by_field.clear()
        self._live.clear()
        self._row_of.clear()
        self._vid_of.clear()
        self._scopes.clear()
        self._expiry.clear()
        vectors = np.zeros((len(rows), self.embedder.dim), dtype=np.float32)
        vids = np.zeros(len(rows), dtype=np.int64)
        for i, row in enumerate(rows):
            vids[i] = self._remember(row)
            vectors[i] = np.frombuffer(row[4], dtype=np.float32)
        self.index.rebuild(vids, vectors)
        self._seen_seq = seq
        self._index_dirty = True
        self._save_index()
        return len(rows)

    def verify_index(self) -> IndexStatus:
        """Compare the vector index with SQLite: the live records of this embedding space and
        the vectors the index would return must be the same set."""
        self._sync()
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT rowid FROM memories WHERE deleted_at IS NULL AND embedder = ?",
                (self.space,),
            ).fetchall()
        in_db = {r[0] for r in rows}
        indexed_vids = set(self.index.ids().tolist())
        in_index = {self._row_of[v] for v in indexed_vids & self._live}
        return IndexStatus(
            db_count=len(in_db),
            index_count=len(in_index),
            missing=len(in_db - in_index),
            extra=len(in_index - in_db) + len(self._live - indexed_vids),
            kind=self.index.kind,
        )

    # -- internals: scope ----------------------------------------------------------------

    def _allowed(self, where: Scope | None, filters: Mapping[str, Any] | None) -> np.ndarray | None:
        """Vector ids a dense search may return, from the scope (and filters, via SQL)."""
        now = time.time()
        if filters:
            scope_cond, params = scope_sql(where, live=True)
            filter_cond, fparams = filter_sql(filters)
            with self.db.lock:
                rows = self.db.conn.execute(
                    f"SELECT rowid FROM memories WHERE {scope_cond} AND {filter_cond} "
                    "AND embedder = ?",
                    [*params, *fparams, self.space],
                ).fetchall()
            return np.array(
                [self._vid_of[r[0]] for r in rows if r[0] in self._vid_of], dtype=np.int64
            )
        if where is None:
            ids: set[int] = self._live
        else:
            sets = sorted((self._by_field.get(item, set()) for item in where.items()), key=len)
            # one field: the set itself (copying a million ids costs more than the search)
            ids = sets[0] if len(sets) == 1 else sets[0].intersection(*sets[1:])
        expired = {v for v, t in self._expiry.items() if t <= now and v in ids}
        if not expired and not self.index.dead and len(ids) == self.index.ntotal:
            return None  # every vector in the index is allowed: no selector needed
        key = (where, self._seen_seq, frozenset(expired))
        cached = self._allowed_cache.get(where)
        if cached is not None and cached[0] == key:
            return cached[1]
        allowed = np.fromiter((v for v in ids if v not in expired), dtype=np.int64)
        if len(self._allowed_cache) >= 1024:
            self._allowed_cache.clear()
        self._allowed_cache[where] = (key, allowed)
        return allowed

    # -- internals: storage --------------------------------------------------------------

    def _embed(self, texts: builtins.list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        vectors = np.asarray(self.embedder.encode(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self.embedder.dim):
            raise ConfigError(
                f"the embedder returned shape {vectors.shape}, expected "
                f"({len(texts)}, {self.embedder.dim})"
            )
        return vectors

    def _existing(self, where: Scope, hashes: builtins.list[str]) -> dict[str, str]:
        """Content hash -> id of the live records of ``where`` among ``hashes``."""
        return {r.content_hash: r.id for r in self._records_by_hash(where, hashes)}

    def _records_by_hash(
        self, where: Scope, hashes: builtins.list[str]
    ) -> builtins.list[MemoryRecord]:
        if not hashes:
            return []
        marks = ",".join("?" * len(set(hashes)))
        with self.db.lock:
            rows = self.db.conn.execute(
                f"SELECT {COLUMNS} FROM memories WHERE scope_key = ? AND deleted_at IS NULL "
                f"AND content_hash IN ({marks})",
                (where.key(), *set(hashes)),
            ).fetchall()
        return [to_record(r) for r in rows]

    def _rows(
        self, rowids: builtins.list[int], where: Scope | None
    ) -> dict[int, tuple[MemoryRecord, np.ndarray]]:
        """Live records by rowid, the scope checked again in SQL."""
        if not rowids:
            return {}
        scope_cond, params = scope_sql(where, live=True)
        marks = ",".join("?" * len(rowids))
        with self.db.lock:
            rows = self.db.conn.execute(
                f"SELECT {COLUMNS}, vector FROM memories WHERE rowid IN ({marks}) AND {scope_cond}",
                (*rowids, *params),
            ).fetchall()
        return {r[0]: (to_record(r[:-1]), np.frombuffer(r[-1], dtype=np.float32)) for r in rows}

    def _lexical(
        self, query: str, where: Scope | None, filters: Mapping[str, Any] | None, depth: int
    ) -> builtins.list[int]:
        words = _WORD.findall(query)
        if not words:
            return []
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        scope_cond, params = scope_sql(where, live=True)
        filter_cond, fparams = filter_sql(filters)
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT memories.rowid FROM memories_fts JOIN memories "
                "ON memories.rowid = memories_fts.rowid "
                f"WHERE memories_fts MATCH ? AND {scope_cond} AND {filter_cond} "
                "ORDER BY bm25(memories_fts) LIMIT ?",
                (match, *params, *fparams, depth),
            ).fetchall()
        return [r[0] for r in rows]

    # -- internals: the derived index ----------------------------------------------------

    def _remember(self, row: Sequence[Any]) -> int:
        """Track a live record (rowid, user, agent, session, vector, expires_at, seq) in the
        in-memory maps; returns its vector id."""
        rowid, user_id, agent_id, session_id, _, expires_at, seq = row
        # unique per stored vector: rows written by one change differ in their low bits
        vid = (int(seq) << 32) | (int(rowid) & 0xFFFFFFFF)
        self._live.add(vid)
        self._row_of[vid] = rowid
        self._vid_of[rowid] = vid
        for column, value in (("user_id", user_id), ("agent_id", agent_id),
                              ("session_id", session_id)):  # fmt: skip
            if value is not None:
                self._by_field.setdefault((column, value), set()).add(vid)
        if expires_at is not None:
            self._expiry[vid] = float(expires_at)
        return vid

    def _forget(self, rowid: int) -> int | None:
        vid = self._vid_of.pop(rowid, None)
        if vid is None:
            return None
        self._live.discard(vid)
        self._row_of.pop(vid, None)
        self._expiry.pop(vid, None)
        for members in self._by_field.values():
            members.discard(vid)
        return vid

    def _sync(self) -> None:
        """Bring the index up to date with every write committed since it last looked."""
        seq = self.db.current_seq()
        if seq == self._seen_seq:
            return
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT rowid, user_id, agent_id, session_id, vector, expires_at, seq, "
                "deleted_at, embedder FROM memories WHERE seq > ? ORDER BY seq",
                (self._seen_seq,),
            ).fetchall()
            gone = self.db.conn.execute(
                "SELECT rowid FROM tombstones WHERE seq > ?", (self._seen_seq,)
            ).fetchall()
        stale = [self._forget(r[0]) for r in rows] + [self._forget(r[0]) for r in gone]
        self.index.remove(np.array([v for v in stale if v is not None], dtype=np.int64))
        add = [r for r in rows if r[7] is None and r[8] == self.space]
        if add:
            vids = np.array([self._remember(r[:7]) for r in add], dtype=np.int64)
            vectors = np.stack([np.frombuffer(r[4], dtype=np.float32) for r in add])
            self.index.add(vids, vectors)
        self._seen_seq = max(seq, max((r[6] for r in rows), default=0))
        self._index_dirty = True
        if self.index.needs_rebuild(len(self._live)):
            self.rebuild_index()

    def _open_index(self) -> None:
        """Load the saved index when the database vouches for it, else rebuild."""
        self._index_dirty = False
        path = self.index_path
        saved = self.db.get_meta(f"index:{self.space}")
        if path is not None and saved is not None and path.is_file():
            info = json.loads(saved)
            try:
                if file_checksum(path) == info["sha256"] and info["dim"] == self.embedder.dim:
                    self.index.load(path)
                    self.index.dead = int(info.get("dead", 0))
                    self._load_maps(int(info["seq"]))
                    self._sync()
                    return
            except (OSError, ValueError, RuntimeError, KeyError):
                pass  # unreadable or inconsistent: rebuild below
        self.rebuild_index()

    def _load_maps(self, seq: int) -> None:
        """The in-memory maps for a loaded index that is current as of change ``seq``."""
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT rowid, user_id, agent_id, session_id, NULL, expires_at, seq "
                "FROM memories WHERE deleted_at IS NULL AND embedder = ? AND seq <= ?",
                (self.space, seq),
            ).fetchall()
        for row in rows:
            self._remember(row)
        self._seen_seq = seq
        if self.index.ntotal - self.index.dead != len(self._live):
            raise ValueError("the saved index does not match the database")

    def _save_index(self) -> None:
        path = self.index_path
        if path is None or not self._index_dirty:
            return
        checksum = self.index.save(path)
        info = {
            "seq": self._seen_seq,
            "sha256": checksum,
            "dim": self.embedder.dim,
            "dead": self.index.dead,
            "kind": self.index.kind,
        }
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (f"index:{self.space}", json.dumps(info)),
            )
        self._index_dirty = False

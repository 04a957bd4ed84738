"""The parts of a memory store derived from its records, each made on first use: the
embedder, the vector view (faiss) and the neural memories. Reads that need none of them (list,
get, history, export, delete) never load a model or faiss. The neural memories are read here
too (writes go through the store's ``add``)."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack, cast

import numpy as np

from memora._sqlite import Database
from memora.embed import Embedder, check_threads, load_embedder
from memora.errors import ClosedError, ConfigError, ReadOnlyError
from memora.memory.contract import RecordStore, SQLDatabase
from memora.memory.fusion import asks_latest
from memora.memory.neural import NeuralConfig, NeuralMemory
from memora.memory.neural_bank import NeuralBank, earns_latest, read_unit
from memora.memory.records import SQLiteRecords
from memora.memory.rows import write_scope
from memora.memory.search import SearchOptions, neural_blend
from memora.memory.types import IndexStatus, MemoryRecord, Scope, ScopeIds

if TYPE_CHECKING:
    from memora.memory.index import VectorIndex
    from memora.memory.vectors import VectorView

__all__ = ["DerivedParts", "NativeVectors"]

ScopeArg = Scope | Mapping[str, Any] | None


class NativeVectors:
    """The vector view of records that search their own vectors (PostgreSQL + pgvector): no
    index beside them, nothing to sync or save; it has the calls of
    :class:`~memora.memory.vectors.VectorView` that a store makes."""

    path: Path | None = None

    def __init__(self, records: Any, space: str, dim: int) -> None:
        self.records = records
        self.space, self.dim = space, dim

    @property
    def kind(self) -> str:
        return str(self.records.vector_index())

    @property
    def index(self) -> VectorIndex:
        raise ConfigError("this store searches its vectors in the database; it has no faiss index")

    def sync(self) -> None:
        """Nothing to do: the database's index is updated with every write."""

    def save(self) -> None:
        """Nothing to do: the database's index is updated with every write."""

    def search(
        self, query: np.ndarray, depth: int, scope: Scope | None, keys: builtins.list[int] | None
    ) -> builtins.list[int]:
        return list(self.records.dense(query, depth, scope, keys))

    def rebuild(self) -> int:
        return int(self.records.reindex())

    def verify(self) -> IndexStatus:
        live = int(self.records.count(None, keys=True))  # records and their search keys
        indexed = len(self.records.live_rows(self.space, vectors=False).rows)
        return IndexStatus(live, indexed, live - indexed, 0, self.kind)


class DerivedParts:
    """The embedder (an object, or a name loaded on first use), the vector view and the
    neural memories of ``records``; safe to use from threads."""

    def __init__(
        self, records: RecordStore, embedder: Embedder | str | None, *, approx_threshold: int,
        neural: NeuralConfig | None, readonly: bool = False, embed_threads: int | None = None,
    ) -> None:  # fmt: skip
        self.records = records
        self._embedder = None if embedder is None or isinstance(embedder, str) else embedder
        self._embedder_name = embedder if isinstance(embedder, str) else "default"
        self._space_checked = False
        self._embed_threads = check_threads(embed_threads)
        if embed_threads is not None and self._embedder is not None:
            raise ConfigError(
                "embed_threads applies to an embedder memora loads by name; set the threads of "
                "the embedder you pass instead (SentenceTransformerEmbedder(threads=...))"
            )
        self.approx_threshold = approx_threshold
        self.readonly = readonly  # the vector view is kept in memory, never written
        self._config = neural
        self._view: VectorView | NativeVectors | None = None
        self._neural: NeuralBank | None = None
        self._lazy_lock = threading.RLock()
        self._embed_lock = threading.Lock()  # tokenizers refuse concurrent calls
        self._closed = False

    @property
    def database(self) -> SQLDatabase:
        """The database of the records (SQLite or Postgres), for the agent journal."""
        db = getattr(self.records, "db", None)
        if db is None:
            raise ConfigError("this store's records keep no database other components can use")
        return cast("SQLDatabase", db)

    @property
    def db(self) -> Database:
        """The SQLite database of a store on SQLite."""
        if not isinstance(self.records, SQLiteRecords):
            raise ConfigError("this store's records are not in SQLite")
        return self.records.db

    def _open(self, *, write: bool = False) -> None:
        if self._closed or self.records.closed:
            raise ClosedError("the memory store was closed; open a new MemoryStore to use it")
        if write and self.readonly:
            raise ReadOnlyError(
                "this store was opened read-only (readonly=True); open it without to write"
            )

    @property
    def embedder(self) -> Embedder:
        """The embedder, loaded on first use (a database bound to another embedder's vectors
        refuses it: :class:`~memora.errors.EmbedderMismatchError`)."""
        if self._embedder is None or not self._space_checked:
            with self._lazy_lock:
                embedder = self._embedder or load_embedder(
                    self._embedder_name, threads=self._embed_threads
                )
                space = getattr(self.records, "space", None)
                if space is not None and space() is not None:
                    self.records.bind(embedder.name, embedder.dim)  # type: ignore[attr-defined]
                self._embedder, self._space_checked = embedder, True
        return self._embedder

    @property
    def space(self) -> str:
        """The embedding space of this store's vectors (the embedder's name)."""
        return self.embedder.name

    @property
    def vectors(self) -> VectorView | NativeVectors:
        """The vector view, opened (loaded or rebuilt) on first use; records that search their
        own vectors (pgvector) need none."""
        if self._view is None and hasattr(self.records, "dense"):
            with self._lazy_lock:
                self._view = NativeVectors(self.records, self.space, self.embedder.dim)
        if self._view is None:
            from memora.memory.vectors import VectorView  # faiss: only where vectors are used

            with self._lazy_lock:
                if self._view is None:
                    view = VectorView(self.records, self.space, self.embedder.dim,
                                      approx_threshold=self.approx_threshold,
                                      readonly=self.readonly)  # fmt: skip
                    view.open()
                    self._view = view
        return self._view

    @property
    def neural(self) -> NeuralBank | None:
        """The neural memories (None: the store has none)."""
        if self._config is not None and self._neural is None:
            with self._lazy_lock:
                if self._neural is None:
                    self._neural = NeuralBank(
                        self.embedder.dim, self._config, self.space, self.records.neural()
                    )
        return self._neural

    def _sync_view(self) -> None:
        """Bring an opened vector view up to date (one not opened yet catches up when it is)."""
        if self._view is not None:
            self._view.sync()

    @property
    def index(self) -> VectorIndex:
        return self.vectors.index

    @property
    def index_path(self) -> Path | None:
        return self.vectors.path

    def embed(self, texts: builtins.list[str]) -> np.ndarray:
        """The store's embeddings of ``texts`` (one row each), safe to call from threads."""
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        with self._embed_lock:
            vectors = np.asarray(self.embedder.encode(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self.embedder.dim):
            raise ConfigError(
                f"the embedder returned shape {vectors.shape}, expected "
                f"({len(texts)}, {self.embedder.dim})"
            )
        return vectors

    # -- neural memory -------------------------------------------------------------------

    def neural_memory(self, scope: ScopeArg = None, **ids: Unpack[ScopeIds]) -> NeuralMemory | None:
        """The neural memory of exactly this write scope (None: never written, or the store
        has no neural memory). Treat it as read-only: writes go through :meth:`add`."""
        self._open()
        where = write_scope(Scope.of(scope, **ids))
        return None if self.neural is None else self.neural.get(where.key())

    def replay_neural(self, scope: ScopeArg = None, **ids: Unpack[ScopeIds]) -> NeuralMemory:
        """The scope's neural memory rebuilt from scratch from its write log (the same seed and
        writes give the same weights); it does not replace the stored one."""
        self._open()
        where = write_scope(Scope.of(scope, **ids))
        if self.neural is None:
            raise ConfigError("this store has no neural memory; open it with neural=True")
        return self.neural.replay(where.key())

    def _latest_options(
        self, query: str, where: Scope | None, opts: SearchOptions
    ) -> SearchOptions:
        """``opts`` with ``neural_latest_weight`` as the neural weight when the query asks for
        the current state and the scope's neural memory earned it (:func:`earns_latest`)."""
        if (self.neural is None or where is None or opts.neural_weight or not opts.latest
                or not opts.neural_latest_weight or opts.mode == "lexical"
                or not asks_latest(query)):  # fmt: skip
            return opts
        memory = self.neural_memory(where)
        if memory is None or not earns_latest(memory):
            return opts
        return replace(opts, neural_weight=opts.neural_latest_weight)

    def _neural_candidates(
        self, where: Scope, opts: SearchOptions, qvec: np.ndarray, dense: builtins.list[int],
        keys: builtins.list[int] | None, depth: int,
    ) -> tuple[dict[int, tuple[MemoryRecord, np.ndarray]], builtins.list[int]]:  # fmt: skip
        """The dense candidates of ``q`` and of ``M(q)`` (``depth`` each), pooled and blended."""
        memory = self.neural_memory(where)
        (key,) = self.embed([opts.neural_query]) if opts.neural_query else (qvec,)
        read = None if memory is None else read_unit(memory, key)
        if read is None:
            return {}, dense
        near = self.vectors.search(read, depth, where, keys)
        pool = self.records.fetch(list(dict.fromkeys(dense + near)), where)
        return pool, neural_blend(pool, qvec, read, opts.neural_weight, depth)

"""The neural memories of a memory store: one :class:`~memora.memory.neural.NeuralMemory` per
write scope, persisted next to the records (its own schema component in a SQLite file).

:meth:`NeuralBank.write` runs inside the store's write transaction: the pairs go to the write
log, and every :data:`CHECKPOINT_EVERY` writes (and on a scope's first) the whole state is
checkpointed too, so that a write costs a log row, not a rewrite of the state. The memory is
its latest checkpoint with the later writes replayed on it (bit for bit the memory that made
them). This process adopts a new memory only once the commit happened; a memory whose logged
step is ahead of the one in this process (another process wrote) catches up from the log.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from memora._sqlite import Component, has_table
from memora.errors import ConfigError, StoreError
from memora.memory.contract import NeuralLog, RecordStore, SQLDatabase
from memora.memory.neural import NeuralConfig, NeuralMemory, WriteResult
from memora.memory.types import SurpriseScore

__all__ = [
    "CHECKPOINT_EVERY",
    "NEURAL",
    "NeuralBank",
    "NeuralTables",
    "SQLiteNeuralLog",
    "config_with",
    "earns_latest",
    "neural_keys",
    "read_unit",
]

#: The neural component of a memora file (its tables came with memory schema 2 before).
NEURAL = Component(
    name="neural",
    version=1,
    schema="""
CREATE TABLE IF NOT EXISTS neural_state (
    name TEXT PRIMARY KEY,
    embedder TEXT NOT NULL,
    step INTEGER NOT NULL,
    state BLOB NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS neural_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    at REAL NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS neural_log_name ON neural_log (name, step);
""",
    legacy=lambda conn: 1 if has_table(conn, "neural_state") else 0,
    postgres="""
CREATE TABLE IF NOT EXISTS neural_state (
    name TEXT PRIMARY KEY,
    embedder TEXT NOT NULL,
    step BIGINT NOT NULL,
    state BYTEA NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS neural_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    step BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    key BYTEA NOT NULL,
    value BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS neural_log_name ON neural_log (name, step);
""",
)


class NeuralTables:
    """:class:`~memora.memory.contract.NeuralLog` in the tables of a SQLite file or a
    PostgreSQL database."""

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db
        db.ensure(NEURAL)

    def state(self, name: str) -> tuple[int, bytes, str] | None:
        row = self.db.one("SELECT step, state, embedder FROM neural_state WHERE name = ?", (name,))
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def head(self, name: str) -> int | None:
        row = self.db.one(
            "SELECT max(step) FROM (SELECT max(step) AS step FROM neural_log WHERE name = ? "
            "UNION ALL SELECT step FROM neural_state WHERE name = ?) AS steps",
            (name, name),
        )
        return None if row is None or row[0] is None else int(row[0])

    def put(
        self,
        name: str,
        embedder: str,
        step: int,
        state: bytes,
        at: float,
        pairs: Sequence[tuple[bytes, bytes]],
    ) -> None:
        with self.db.write() as conn:
            self._append(conn, name, step, at, pairs)
            conn.execute(
                "INSERT INTO neural_state (name, embedder, step, state, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET embedder = "
                "excluded.embedder, step = excluded.step, state = excluded.state, "
                "updated_at = excluded.updated_at",
                (name, embedder, step, state, at),
            )

    def append(self, name: str, step: int, at: float, pairs: Sequence[tuple[bytes, bytes]]) -> None:
        with self.db.write() as conn:
            self._append(conn, name, step, at, pairs)

    @staticmethod
    def _append(
        conn: Any, name: str, step: int, at: float, pairs: Sequence[tuple[bytes, bytes]]
    ) -> None:
        if pairs:
            conn.executemany(
                "INSERT INTO neural_log (name, step, at, key, value) VALUES (?, ?, ?, ?, ?)",
                [(name, step, at, k, v) for k, v in pairs],
            )

    def names(self) -> list[str]:
        return [str(r[0]) for r in self.db.query("SELECT name FROM neural_state ORDER BY name")]

    def log(self, name: str, after: int = 0) -> list[tuple[int, float, bytes, bytes]]:
        rows = self.db.query(
            "SELECT step, at, key, value FROM neural_log WHERE name = ? AND step > ? ORDER BY id",
            (name, after),
        )
        return [(int(r[0]), float(r[1]), bytes(r[2]), bytes(r[3])) for r in rows]


#: The name of :class:`NeuralTables` before it also served PostgreSQL.
SQLiteNeuralLog = NeuralTables


#: Writes between two checkpoints of a scope's state (a write in between logs its pairs only).
CHECKPOINT_EVERY = 256


class NeuralBank:
    """The neural memories of a store, one per write scope (``name``: the scope's key).
    ``checkpoint_every``: writes between two checkpoints of a scope's state."""

    def __init__(
        self,
        dim: int,
        config: NeuralConfig,
        embedder: str,
        log: NeuralLog,
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> None:
        if checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.dim, self.config, self.embedder = dim, config, embedder
        self.log, self.checkpoint_every = log, checkpoint_every
        self._memories: dict[str, NeuralMemory] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> NeuralMemory | None:
        """The memory of scope ``name`` as stored (None if it was never written)."""
        head = self.log.head(name)
        with self._lock:
            cached = self._memories.get(name)
            if head is None:
                self._memories.pop(name, None)
                return None
        if cached is not None and cached.step == head:
            return cached
        if cached is not None and cached.step < head:  # another process wrote: catch up
            memory = _replayed(cached.copy(), self.log.log(name, after=cached.step))
        else:
            memory = self._load(name)
        with self._lock:
            self._memories[name] = memory
        return memory

    def _load(self, name: str) -> NeuralMemory:
        """The latest checkpoint with the later writes replayed on it."""
        stored = self.log.state(name)
        if stored is None:  # a log without a checkpoint: replay it all
            return _replayed(self._empty(), self.log.log(name))
        step, state, embedder = stored
        if embedder != self.embedder:
            raise StoreError(
                f"the neural memory of {name} was trained on embeddings of {embedder!r}, not "
                f"{self.embedder!r}. Fix: open the store with that embedder, or rebuild it"
            )
        return _replayed(NeuralMemory.from_bytes(state), self.log.log(name, after=step))

    def _empty(self) -> NeuralMemory:
        return NeuralMemory(self.dim, self.config, embedder=self.embedder)

    def write(
        self, name: str, keys: np.ndarray, values: np.ndarray, at: float
    ) -> tuple[WriteResult, NeuralMemory]:
        """Write the pairs to scope ``name``'s memory inside the caller's transaction; returns
        the result and the new memory, which :meth:`adopt` takes once the commit happened."""
        current = self.get(name)
        memory = current.copy() if current is not None else self._empty()
        result = memory.write(keys, values, at=at)
        pairs = [_logged(k, v) for k, v in zip(keys, values, strict=True)]
        if current is None or memory.step % self.checkpoint_every == 0:
            self.log.put(name, self.embedder, memory.step, memory.state_bytes(), at, pairs)
        else:
            self.log.append(name, memory.step, at, pairs)
        return result, memory

    def write_in(
        self, records: RecordStore, name: str, keys: np.ndarray, values: np.ndarray, at: float
    ) -> tuple[SurpriseScore, ...]:
        """:meth:`write` inside ``records``' current transaction, the new state adopted after
        its commit; returns each pair's surprise (measured before the write)."""
        result, memory = self.write(name, keys, values, at)
        records.after_commit(lambda: self.adopt(name, memory))
        return result.scores

    def adopt(self, name: str, memory: NeuralMemory) -> None:
        """Use ``memory`` (written and committed) for scope ``name`` from now on."""
        with self._lock:
            cached = self._memories.get(name)
            if cached is None or cached.step < memory.step:
                self._memories[name] = memory

    def replay(self, name: str) -> NeuralMemory:
        """A memory rebuilt from scratch from scope ``name``'s whole write log."""
        stored = self.get(name)
        fresh = stored.fresh() if stored is not None else self._empty()
        return _replayed(fresh, self.log.log(name))


def _logged(key: np.ndarray, value: np.ndarray) -> tuple[bytes, bytes]:
    """A pair as the log holds it: float32 bytes, the key empty when it is the value (a text
    written without a cue is its own key)."""
    k, v = key.astype(np.float32).tobytes(), value.astype(np.float32).tobytes()
    return (b"" if k == v else k), v


def _replayed(
    memory: NeuralMemory, rows: Sequence[tuple[int, float, bytes, bytes]]
) -> NeuralMemory:
    """``memory`` after the logged writes ``rows`` (one write per step, in order)."""
    for batch in _batches(rows):
        keys = np.stack([np.frombuffer(r[2] or r[3], dtype=np.float32) for r in batch])
        values = np.stack([np.frombuffer(r[3], dtype=np.float32) for r in batch])
        memory.write(keys, values, at=batch[0][1])
    return memory


def neural_keys(
    cues: Sequence[str | None], vectors: np.ndarray, cue_vectors: np.ndarray
) -> np.ndarray:
    """The key of each written text: its cue's embedding (``cue_vectors``, one per cue that is
    not None, in order), else the text's own embedding."""
    if all(c is None for c in cues):
        return vectors
    rows = iter(cue_vectors)
    keys = [next(rows) if c is not None else v for c, v in zip(cues, vectors, strict=True)]
    return np.stack(keys) if keys else vectors


#: What a scope's neural memory needs before search applies ``neural_latest_weight`` to a
#: query that asks for the current state: the windowed update, at least this wide, and at least
#: this share of its pairs written with question keys (``cue=``). bench/neural_ablation.py
#: measured the gain there only (docs/neural-memory.md).
LATEST_MIN_WINDOW = 8
LATEST_MIN_CUED = 0.5


def earns_latest(memory: NeuralMemory) -> bool:
    """Whether ``memory`` is one whose read made stale answers rarer (see above)."""
    return (
        memory.config.window >= LATEST_MIN_WINDOW
        and memory.writes > 0
        and memory.cued >= LATEST_MIN_CUED * memory.writes
    )


def read_unit(memory: NeuralMemory, key: np.ndarray) -> np.ndarray | None:
    """``M(key)`` scaled to unit length (None when the memory reads nothing there)."""
    read = memory.read(key)
    norm = float(np.linalg.norm(read))
    return None if norm <= 1e-6 else read / norm


def _batches(rows: Sequence[Any]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for row in rows:
        if out and out[-1][0][0] == row[0]:
            out[-1].append(row)
        else:
            out.append([row])
    return out


def config_with(config: NeuralConfig | bool | None) -> NeuralConfig | None:
    """Normalize the store's ``neural=`` argument."""
    if config is None or config is False:
        return None
    if config is True:
        return NeuralConfig()
    if isinstance(config, NeuralConfig):
        return replace(config)
    raise ConfigError(f"neural must be a NeuralConfig or a bool, got {type(config).__name__}")

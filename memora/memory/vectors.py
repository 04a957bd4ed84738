"""The derived vector view of a memory store: a faiss index of one embedding space, with the
maps that turn a scope into the vector ids a search may return.

The records are the truth; this view is rebuilt from them at will. It is kept in memory, saved
beside the database file with its checksum and change sequence recorded in the records' meta
table, loaded when both match, rebuilt when the file is missing or corrupt, and brought up to
date from the change sequence (:meth:`VectorView.sync`) before every read, so writes of other
processes are seen.

Thread safety: the view owns one lock and never holds it while it reads the records (reads
first, then applies under the lock, skipping what a concurrent sync applied already), so it
cannot deadlock with the record store's own lock.
"""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from memora.errors import NotMemoraFileError
from memora.memory.contract import RecordStore, VectorRow
from memora.memory.index import VectorIndex, file_checksum
from memora.memory.types import DamagedStoreWarning, IndexStatus, Scope

__all__ = ["DamagedStoreWarning", "VectorView", "check_index_path"]


class VectorView:
    """The vectors of the live records of one embedding space (``space``), by scope."""

    def __init__(
        self, records: RecordStore, space: str, dim: int, *, approx_threshold: int = 250_000,
        readonly: bool = False,
    ) -> None:  # fmt: skip
        self.records = records
        self.space = space
        self.dim = dim
        self.readonly = readonly  # keep the index in memory only: never write it
        self.damaged: set[int] = set()  # record keys whose vector cannot be indexed
        self._warned = 0
        self.index = VectorIndex(dim, approx_threshold=approx_threshold)
        self._lock = threading.RLock()
        self._by_field: dict[tuple[str, str], set[int]] = {}  # (column, value) -> vector ids
        self._no_user: set[int] = set()  # vector ids of records without a user
        self._live: set[int] = set()  # vector ids of live records of this space
        self._key_of: dict[int, int] = {}  # vector id -> record key
        self._vid_of: dict[int, int] = {}  # record key -> vector id
        self._expiry: dict[int, float] = {}  # vector id -> expires_at
        self._seen = 0
        self._dirty = False
        # scope -> ((scope, change seq, expired ids), allowed vector ids), reused until a write
        self._allowed_cache: dict[Scope | None, tuple[Any, np.ndarray]] = {}

    @property
    def path(self) -> Path | None:
        """Where the index is saved (None for a store that keeps nothing on disk)."""
        if self.records.location is None:
            return None
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", self.space)
        return Path(self.records.location + ".index") / f"{safe}.faiss"

    @property
    def kind(self) -> str:
        return self.index.kind

    # -- keeping up with the records -----------------------------------------------------

    def open(self) -> None:
        """Load the saved index when the records vouch for it, else rebuild."""
        path = self.path
        if path is not None and not self.readonly:
            check_index_path(path)
        saved = self.records.get_meta(f"index:{self.space}")
        if path is not None and saved is not None and path.is_file():
            info = json.loads(saved)
            try:
                if file_checksum(path) == info["sha256"] and info["dim"] == self.dim:
                    self._load(path, info)
                    self.sync()
                    return
            except (OSError, ValueError, RuntimeError, KeyError, TypeError):
                pass  # unreadable or inconsistent: rebuild below
        self.rebuild()

    def _load(self, path: Path, info: Mapping[str, Any]) -> None:
        seq = int(info["seq"])
        damaged = {int(k) for k in info.get("damaged", ())}
        rows = self.records.live_rows(self.space, vectors=False, upto=seq).rows
        with self._lock:
            self.index.load(path)
            self.index.dead = int(info.get("dead", 0))
            self._clear()
            for row in rows:
                if row.key in damaged:
                    self.damaged.add(row.key)
                else:
                    self._remember(row)
            self._seen = seq
            if self.index.ntotal - self.index.dead != len(self._live):
                raise ValueError("the saved index does not match the database")

    def sync(self) -> None:
        """Apply every change committed since the view last looked."""
        changes = self.records.changes_since(self._seen)
        if changes.seq == self._seen and not changes.rows and not changes.removed:
            return
        rebuild = False
        with self._lock:
            if changes.seq <= self._seen:
                return  # a concurrent sync got there first
            fresh = [r for r in changes.rows if r.seq > self._seen]
            stale = [self._forget(r.key) for r in fresh]
            stale += [self._forget(key) for key in changes.removed]
            self.index.remove(np.array([v for v in stale if v is not None], dtype=np.int64))
            for r in fresh:
                self.damaged.discard(r.key)
            for key in changes.removed:
                self.damaged.discard(key)
            add = self._indexable([r for r in fresh if r.live and r.embedder == self.space])
            if add:
                vids = np.array([self._remember(r) for r, _ in add], dtype=np.int64)
                self.index.add(vids, np.stack([v for _, v in add]))
            self._seen = changes.seq
            self._dirty = True
            rebuild = self.index.needs_rebuild(len(self._live))
        if rebuild:
            self.rebuild()
        self._warn()

    def rebuild(self) -> int:
        """Rebuild the index from the vectors of the records; returns how many it holds."""
        changes = self.records.live_rows(self.space, vectors=True)
        with self._lock:
            self._clear()
            good = self._indexable(changes.rows)
            vectors = np.zeros((len(good), self.dim), dtype=np.float32)
            vids = np.zeros(len(good), dtype=np.int64)
            for i, (row, vector) in enumerate(good):
                vids[i] = self._remember(row)
                vectors[i] = vector
            self.index.rebuild(vids, vectors)
            self._seen = changes.seq
            self._dirty = True
        self.save()
        self._warn()
        return len(good)

    def _indexable(self, rows: list[VectorRow]) -> list[tuple[VectorRow, np.ndarray]]:
        """The rows whose vector fits this index, with it; the others go to :attr:`damaged`."""
        good = []
        for row in rows:
            vector = _vector(row, self.dim)
            if vector is None:
                self.damaged.add(row.key)
            else:
                good.append((row, vector))
        return good

    def _warn(self) -> None:
        """Say once (per count) that records are damaged and how to repair them."""
        count = len(self.damaged)
        if count and count != self._warned:
            self._warned = count
            where = self.records.location or "this store"
            warnings.warn(
                f"{count} memories in {where} have a damaged vector and are left out of dense "
                f"searches; run `memora memory doctor --db {where} --repair`",
                DamagedStoreWarning,
                stacklevel=4,
            )

    def save(self) -> None:
        """Write the index beside the database (when it changed since it was last written)."""
        path = self.path
        with self._lock:
            if path is None or not self._dirty or self.readonly:
                return
            check_index_path(path)
            checksum = self.index.save(path)
            info = {
                "seq": self._seen,
                "sha256": checksum,
                "dim": self.dim,
                "dead": self.index.dead,
                "kind": self.index.kind,
                "damaged": sorted(self.damaged),
            }
            self._dirty = False
        self.records.set_meta(f"index:{self.space}", json.dumps(info))

    def verify(self) -> IndexStatus:
        """Compare the index with the records: the live records of this embedding space and
        the vectors the index would return must be the same set."""
        self.sync()
        in_db = {r.key for r in self.records.live_rows(self.space, vectors=False).rows}
        with self._lock:
            indexed = set(self.index.ids().tolist())
            in_index = {self._key_of[v] for v in indexed & self._live}
            extra = len(in_index - in_db) + len(self._live - indexed)
        return IndexStatus(
            db_count=len(in_db),
            index_count=len(in_index),
            missing=len(in_db - in_index),
            extra=extra,
            kind=self.index.kind,
        )

    # -- search --------------------------------------------------------------------------

    def search(
        self, query: np.ndarray, depth: int, scope: Scope | None, keys: list[int] | None = None
    ) -> list[int]:
        """Record keys of the ``depth`` vectors nearest ``query`` among the live records of
        ``scope`` (and, when given, among ``keys``: records that passed a metadata filter)."""
        with self._lock:
            allowed = self._allowed(scope, keys)
            vids, _ = self.index.search(query, depth, allowed)
            return [self._key_of[int(v)] for v in vids]

    def _allowed(self, scope: Scope | None, keys: list[int] | None) -> np.ndarray | None:
        """Vector ids a search may return (None: every vector of the index)."""
        if keys is not None:
            return np.array([self._vid_of[k] for k in keys if k in self._vid_of], dtype=np.int64)
        if scope is None:
            ids: set[int] = self._live
        else:
            sets = [self._by_field.get(item, set()) for item in scope.items()]
            if scope.user_id is None and not scope.any_user:
                sets.append(self._no_user)  # fail closed: a read without a user sees no user's
            sets.sort(key=len)
            # one field: the set itself (copying a million ids costs more than the search)
            ids = sets[0] if len(sets) == 1 else sets[0].intersection(*sets[1:])
        now = time.time()
        expired = {v for v, t in self._expiry.items() if t <= now and v in ids}
        if not expired and not self.index.dead and len(ids) == self.index.ntotal:
            return None  # every vector in the index is allowed: no selector needed
        key = (scope, self._seen, frozenset(expired))
        cached = self._allowed_cache.get(scope)
        if cached is not None and cached[0] == key:
            return cached[1]
        allowed = np.fromiter((v for v in ids if v not in expired), dtype=np.int64)
        if len(self._allowed_cache) >= 1024:
            self._allowed_cache.clear()
        self._allowed_cache[scope] = (key, allowed)
        return allowed

    # -- the maps ------------------------------------------------------------------------

    def _clear(self) -> None:
        for mapping in (self._by_field, self._key_of, self._vid_of, self._expiry):
            mapping.clear()
        self._live.clear()
        self._no_user.clear()
        self.damaged.clear()
        self._allowed_cache.clear()

    def _remember(self, row: VectorRow) -> int:
        """Track a live record; returns its vector id (unique per stored vector: rows written
        by one change differ in their low bits)."""
        vid = (row.seq << 32) | (row.key & 0xFFFFFFFF)
        self._live.add(vid)
        self._key_of[vid] = row.key
        self._vid_of[row.key] = vid
        for column, value in (("user_id", row.user_id), ("agent_id", row.agent_id),
                              ("session_id", row.session_id)):  # fmt: skip
            if value is not None:
                self._by_field.setdefault((column, value), set()).add(vid)
        if row.user_id is None:
            self._no_user.add(vid)
        if row.expires_at is not None:
            self._expiry[vid] = row.expires_at
        return vid

    def _forget(self, key: int) -> int | None:
        vid = self._vid_of.pop(key, None)
        if vid is None:
            return None
        self._live.discard(vid)
        self._no_user.discard(vid)
        self._key_of.pop(vid, None)
        self._expiry.pop(vid, None)
        for members in self._by_field.values():
            members.discard(vid)
        return vid


def _vector(row: VectorRow, dim: int) -> np.ndarray | None:
    """The row's vector, or None when it is damaged (not ``dim`` finite float32 values)."""
    if row.vector is None or len(row.vector) != 4 * dim:
        return None
    vector = np.frombuffer(row.vector, dtype=np.float32)
    return vector if np.isfinite(vector).all() else None


def check_index_path(path: Path) -> None:
    """Refuse an index location taken by something that is not memora's index."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise NotMemoraFileError(
            f"{folder} is a file, but the store keeps its vector index in a folder there; move "
            "that file away (memora never overwrites it), then run the command again"
        )
    if path.exists() and not path.is_file():
        raise NotMemoraFileError(
            f"{path} is a folder, but it is where the store's vector index file goes; move it "
            "away (memora never deletes it), then run the command again"
        )

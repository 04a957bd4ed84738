"""The vector index of one embedding space: derived state, rebuilt from SQLite at will.

Vectors carry *vector ids* (the change sequence of the write that stored them), not record
ids, so an updated record's new vector never shares an id with its old one. Searches always say
which vector ids may be returned (an ``IDSelectorBatch`` built from the caller's scope), so
isolation holds inside faiss, and vectors of deleted or replaced records are never returned even
by an index that cannot remove them (HNSW).

Exact inner-product search (``IndexFlatIP``) by default; past ``approx_threshold`` vectors the
index is rebuilt as HNSW (approximate; its recall is measured in ``bench/memory_store.py``).
With HNSW, a scope of at most ``exact_subset_max`` vectors is searched exactly over its own
vectors, and a larger one widens the graph walk in proportion to how selective it is.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from memora.errors import missing_extra

try:
    import faiss as _faiss
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("faiss-cpu", "memory") from exc

faiss: Any = _faiss  # the SWIG bindings' stubs miss most of the API

__all__ = ["VectorIndex", "file_checksum"]


class VectorIndex:
    """Vectors by vector id, exact or HNSW."""

    def __init__(
        self,
        dim: int,
        *,
        approx_threshold: int = 250_000,
        hnsw_m: int = 32,
        ef_search: int = 256,
        ef_construction: int = 80,
        exact_subset_max: int = 50_000,
    ) -> None:
        self.dim = dim
        self.approx_threshold = approx_threshold
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self.exact_subset_max = exact_subset_max
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.dead = 0  # vectors an HNSW index still holds but no record uses

    @property
    def kind(self) -> str:
        return "hnsw" if self.approximate else "flat"

    @property
    def approximate(self) -> bool:
        return isinstance(faiss.downcast_index(self._index.index), faiss.IndexHNSW)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """Every vector id the index holds (dead ones of an HNSW index included)."""
        ids: np.ndarray = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return ids

    def add(self, vids: np.ndarray, vectors: np.ndarray) -> None:
        if len(vids):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), vids.astype(np.int64)
            )

    def remove(self, vids: np.ndarray) -> None:
        if not len(vids):
            return
        if self.approximate:
            self.dead += len(vids)  # HNSW cannot remove; selectors keep them out
        else:
            self._index.remove_ids(vids.astype(np.int64))

    def needs_rebuild(self, live: int) -> bool:
        """An exact index grown past the threshold, or an HNSW index a fifth dead."""
        if not self.approximate:
            return live > self.approx_threshold
        return self.dead > 0.2 * max(live, 1)

    def rebuild(self, vids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the contents, choosing flat or HNSW by size."""
        if len(vids) > self.approx_threshold:
            hnsw = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = self.ef_construction
            index: Any = faiss.IndexIDMap2(hnsw)
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self._index = index
        self.dead = 0
        self.add(vids, vectors)

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (vector ids, inner products) among ``allowed`` vector ids (None: all)."""
        if self.ntotal == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        params: Any = None
        if allowed is not None:
            if self.approximate and len(allowed) <= self.exact_subset_max:
                return self._exact_subset(query[0], k, allowed)
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if self.approximate:
                # A selective filter prunes the graph walk: widen it in proportion.
                ef = min(4096, max(self.ef_search, k * self.ntotal // max(1, len(allowed))))
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
            else:
                params = faiss.SearchParameters(sel=selector)
        elif self.approximate:
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
        sims, vids = self._index.search(query, min(k, self.ntotal), params=params)
        keep = vids[0] >= 0
        return vids[0][keep], sims[0][keep]

    def _exact_subset(
        self, query: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over a small allowed set (HNSW walks miss most of a small subset)."""
        vids = np.ascontiguousarray(allowed, dtype=np.int64)
        sims = self._index.reconstruct_batch(vids) @ query
        top = np.argsort(-sims, kind="stable")[:k] if len(sims) <= 4 * k else None
        if top is None:
            part = np.argpartition(-sims, k)[:k]
            top = part[np.argsort(-sims[part], kind="stable")]
        return vids[top], sims[top].astype(np.float32)

    def save(self, path: Path) -> str:
        """Write the index atomically; return the file's checksum."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        try:
            faiss.write_index(self._index, tmp)
            checksum = file_checksum(Path(tmp))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return checksum

    def load(self, path: Path) -> None:
        """Read an index written by :meth:`save` (the caller checks the checksum first)."""
        index = faiss.read_index(str(path))
        if index.d != self.dim:
            raise ValueError(f"index dimension {index.d} != {self.dim}")
        self._index = index
        self.dead = 0


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""Memory: the scoped, searchable store of record (SQLite + a derived faiss index)."""

from memora.memory.types import AddResult, HistoryEntry, MemoryRecord, Scope, SearchHit

__all__ = ["AddResult", "HistoryEntry", "MemoryRecord", "MemoryStore", "Scope", "SearchHit"]


def __getattr__(name: str) -> object:
    # MemoryStore pulls in faiss and the embedder: load it on first use.
    if name == "MemoryStore":
        from memora.memory.store import MemoryStore

        return MemoryStore
    raise AttributeError(f"module 'memora.memory' has no attribute {name!r}")

"""Memory: the scoped, searchable store of record (SQLite + a derived faiss index), a
Titans-like neural memory, and LongMem-style memory banks for reading past the context."""

from memora.memory.neural import NeuralConfig, NeuralMemory, NextMemory
from memora.memory.search import SearchOptions
from memora.memory.types import (
    AddResult,
    HistoryEntry,
    MemoryRecord,
    Scope,
    SearchHit,
    SurpriseScore,
)

__all__ = [
    "AddResult",
    "HistoryEntry",
    "KVMemoryBank",
    "LongContextReader",
    "MemoryBank",
    "MemoryRecord",
    "MemoryStore",
    "NeuralConfig",
    "NeuralMemory",
    "NextMemory",
    "Scope",
    "SearchHit",
    "SearchOptions",
    "SurpriseScore",
]

_LAZY = {
    # MemoryStore pulls in faiss and the embedder: load it on first use.
    "MemoryStore": "memora.memory.store",
    "KVMemoryBank": "memora.memory.longmem",
    "LongContextReader": "memora.memory.longmem",
    "MemoryBank": "memora.memory.longmem",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memora.memory' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

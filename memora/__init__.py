"""memora: LLM agent memory and long-text generation on local GGUF models (llama.cpp) or any
OpenAI-compatible endpoint.

``import memora`` is cheap: the heavy parts (llama_cpp, torch, faiss, textual, openai) load only
when a backend or embedder is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memora.errors import (
    AuthenticationError,
    BackendError,
    ClosedError,
    ConfigError,
    ConnectionFailedError,
    ContextOverflowError,
    EmptyQueryError,
    GenerationError,
    InvalidOptionError,
    InvalidRecordError,
    InvalidSchemaError,
    MemoraError,
    MissingDependencyError,
    ModelError,
    ModelLoadError,
    ModelNotFoundError,
    OutputValidationError,
    RateLimitError,
    RecordNotFoundError,
    SchemaVersionError,
    ScopeError,
    ServerError,
    StoreBusyError,
    StoreError,
    UnsupportedError,
)
from memora.llm.base import LLM, Completion, Message, Stream, Usage
from memora.llm.options import SamplingOptions
from memora.llm.registry import available_models, load_model, model_path
from memora.memory.types import AddResult, HistoryEntry, MemoryRecord, Scope, SearchHit
from memora.prompting import Choice, SetPrompt, choose
from memora.settings import Settings, load_settings

if TYPE_CHECKING:
    from memora.embed import Embedder, SentenceTransformerEmbedder, load_embedder
    from memora.llm.llamacpp import LlamaCppLLM
    from memora.llm.openai import OpenAILLM
    from memora.memory.store import MemoryStore

__version__ = "0.1.0"

__all__ = [
    "LLM",
    "AddResult",
    "AuthenticationError",
    "BackendError",
    "Choice",
    "ClosedError",
    "Completion",
    "ConfigError",
    "ConnectionFailedError",
    "ContextOverflowError",
    "Embedder",
    "EmptyQueryError",
    "GenerationError",
    "HistoryEntry",
    "InvalidOptionError",
    "InvalidRecordError",
    "InvalidSchemaError",
    "LlamaCppLLM",
    "MemoraError",
    "MemoryRecord",
    "MemoryStore",
    "Message",
    "MissingDependencyError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OpenAILLM",
    "OutputValidationError",
    "RateLimitError",
    "RecordNotFoundError",
    "SamplingOptions",
    "SchemaVersionError",
    "Scope",
    "ScopeError",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "ServerError",
    "SetPrompt",
    "Settings",
    "StoreBusyError",
    "StoreError",
    "Stream",
    "UnsupportedError",
    "Usage",
    "available_models",
    "choose",
    "load_embedder",
    "load_model",
    "load_settings",
    "model_path",
]

# Names whose modules import heavy libraries: resolved on first access.
_LAZY = {
    "LlamaCppLLM": "memora.llm.llamacpp",
    "OpenAILLM": "memora.llm.openai",
    "MemoryStore": "memora.memory.store",
    "Embedder": "memora.embed",
    "SentenceTransformerEmbedder": "memora.embed",
    "load_embedder": "memora.embed",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memora' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

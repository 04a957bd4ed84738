"""The package itself: a cheap import, a pinned public API, the install layout."""

from __future__ import annotations

import subprocess
import sys

import pytest

import memora

HEAVY = {"torch", "llama_cpp", "faiss", "textual", "openai", "sentence_transformers"}


def test_import_memora_loads_no_heavy_library() -> None:
    code = (
        "import sys, memora, memora.llm, memora.errors, memora.settings, memora.prompting\n"
        f"print(sorted(set({sorted(HEAVY)!r}) & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_pinned() -> None:
    assert memora.__all__ == [
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
    for name in memora.__all__:
        assert getattr(memora, name) is not None


def test_every_error_descends_from_memora_error() -> None:
    import memora.errors as tree

    errors = [getattr(memora, n) for n in memora.__all__ if n.endswith("Error")]
    assert len(errors) == 25
    assert all(issubclass(e, memora.MemoraError) for e in errors)
    every = [n for n in tree.__all__ if n.endswith("Error")]
    assert {e.__name__ for e in errors} <= set(every)
    for name in every:  # every error of the tree is drawn in the module's docstring
        assert issubclass(getattr(tree, name), tree.MemoraError), name
        assert f" {name} " in (tree.__doc__ or "") or name == "MemoraError", name


def test_agents_and_tui_install_under_memora() -> None:
    import memora.agents
    import memora.tui

    assert memora.agents.__file__ is not None and memora.agents.__file__.endswith(
        "agents/__init__.py"
    )
    assert memora.tui.__file__ is not None and memora.tui.__file__.endswith("tui/__init__.py")
    assert "agents" not in sys.modules, "nothing may claim the generic top-level name 'agents'"


def test_an_empty_query_is_one_error_everywhere() -> None:
    from memora.errors import EmptyQueryError, InvalidRecordError
    from memora.memory.bank import question_text
    from memora.memory.search import query_words
    from memora.rank.rerankers import load_reranker
    from memora.testing import ScriptedLLM

    llm = ScriptedLLM(["A"])
    with pytest.raises(EmptyQueryError, match="empty"):
        memora.choose(llm, "  ", ["a", "b"], method="plain")
    with pytest.raises(EmptyQueryError, match="empty"):
        load_reranker("full", llm).rank(" ", ["a doc", "another doc"])
    with pytest.raises(EmptyQueryError, match="empty"):
        question_text("", "")
    with pytest.raises(InvalidRecordError):  # what a search raised before: still caught
        query_words(" ")

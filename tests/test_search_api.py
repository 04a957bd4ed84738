"""Search API consistency: a lexical search loads no model, and the embedder's torch threads
are a setting (the bundled MiniLM, real SQLite)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from memora.embed import SentenceTransformerEmbedder, load_embedder
from memora.errors import ConfigError, InvalidOptionError
from memora.memory.store import MemoryStore
from memora.settings import load_settings

pytestmark = pytest.mark.slow

TEXTS = ["Alice drinks green tea every morning.", "Alice's dog is called Rex."]


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    path = tmp_path / "memories.db"
    with MemoryStore(path, embedder=load_embedder()) as store:
        store.add_many(TEXTS, user_id="alice")
    return path


def test_a_lexical_search_in_a_fresh_process_imports_no_model(stored: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from memora.memory.store import MemoryStore
        with MemoryStore({str(stored)!r}, readonly=True) as store:
            hits = store.search("green tea", user_id="alice", mode="lexical")
        print([h.record.text for h in hits], [h.similarity for h in hits])
        print(sorted(m for m in ("torch", "sentence_transformers", "faiss") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()  # fmt: skip
    assert out == [f"[{TEXTS[0]!r}] [None]", "[]"]


def test_a_lexical_search_from_the_cli_imports_no_model(stored: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "memora.cli", "memory", "search", "dog",
         "--db", str(stored), "--user", "alice", "--mode", "lexical", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert '"text": "Alice\'s dog is called Rex."' in done.stdout
    assert '"similarity": null' in done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert not {"torch", "sentence_transformers", "faiss"} & imported


def test_other_modes_still_embed_and_min_score_needs_vectors(stored: Path) -> None:
    with MemoryStore(stored, embedder=load_embedder()) as store:
        dense = store.search("green tea", user_id="alice", mode="dense", k=1)
        assert dense[0].similarity is not None and dense[0].similarity > 0.3
        lexical = store.search("green tea", user_id="alice", mode="lexical", min_score=0.3)
        assert [h.record.text for h in lexical] == [TEXTS[0]]
        assert lexical[0].similarity is not None  # min_score compares similarities: embedded


def test_embed_threads_set_torchs_threads_for_each_encode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedder = SentenceTransformerEmbedder(threads=1)
    seen: list[int] = []
    encode = embedder._model.encode

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(torch.get_num_threads())
        return encode(*args, **kwargs)

    monkeypatch.setattr(embedder._model, "encode", spy)
    before = torch.get_num_threads()
    one = embedder.encode(TEXTS)
    assert seen == [1] and torch.get_num_threads() == before  # set for the call, then restored
    embedder.threads = None
    assert abs(embedder.encode(TEXTS) - one).max() < 1e-5  # the same vectors either way
    assert seen == [1, before]
    with pytest.raises(ConfigError, match=">= 1"):
        SentenceTransformerEmbedder(threads=0)
    with pytest.raises(ConfigError, match="embedder you pass"):
        MemoryStore(":memory:", embedder=embedder, embed_threads=2)


def test_embed_threads_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORA_EMBED_THREADS", "1")
    assert load_settings().embed_threads == 1
    monkeypatch.setenv("MEMORA_EMBED_THREADS", "0")
    with pytest.raises(InvalidOptionError, match="MEMORA_EMBED_THREADS"):
        load_settings()
    with MemoryStore(":memory:", embed_threads=1) as store:
        assert store.embedder.threads == 1  # type: ignore[attr-defined]
        store.embedder.threads = None  # type: ignore[attr-defined]  # shared: leave it as found

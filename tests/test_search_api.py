"""Search API consistency: prefix-stable rankings on both backends, a lexical search loads no
model, and the embedder's torch threads are a setting (the bundled MiniLM, real SQLite and a
real PostgreSQL server)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memora.embed import SentenceTransformerEmbedder, load_embedder
from memora.errors import ConfigError, InvalidOptionError, InvalidRecordError
from memora.memory.search import SearchOptions, Tier, tiered
from memora.memory.store import MemoryStore
from memora.memory.types import MemoryRecord, Scope
from memora.rank.pointwise import BiEncoderReranker, PointwiseReranker
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


# -- prefix-stable rankings ----------------------------------------------------------------

WORDS = ["tea", "coffee", "dog", "cat", "garden", "train", "red", "blue", "morning", "Lyon"]
_STORES = iter(range(1_000_000))


@pytest.fixture(params=["sqlite", "postgres"], scope="module")
def ranking_store(request: pytest.FixtureRequest) -> Iterator[MemoryStore | None]:
    """None: a new in-memory SQLite store per example; else one Postgres store shared by the
    examples, each in its own scope."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres")
    with MemoryStore(server.create_database("ranking"), embedder=load_embedder()) as store:
        yield store


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    texts=st.lists(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join),
        min_size=1, max_size=60, unique=True,
    ),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
    mode=st.sampled_from(["hybrid", "dense", "lexical"]),
    fusion_depth=st.integers(1, 8),
    ks=st.tuples(st.integers(1, 12), st.integers(1, 70)),
)  # fmt: skip
def test_a_ranking_is_prefix_stable_in_every_mode(
    ranking_store: MemoryStore | None, texts: list[str], query: str, mode: str,
    fusion_depth: int, ks: tuple[int, int],
) -> None:  # fmt: skip
    """For the same store, search(k=a) is the first a hits of search(k=b), for a < b."""
    a, b = sorted(ks)
    user = f"u{next(_STORES)}"
    with contextlib.ExitStack() as stack:
        store = ranking_store or stack.enter_context(
            MemoryStore(":memory:", embedder=load_embedder())
        )
        store.add_many(texts, user_id=user)
        options = {"mode": mode, "fusion_depth": fusion_depth, "user_id": user}
        short = [h.record.id for h in store.search(query, k=a, **options)]  # type: ignore[arg-type]
        long = [h.record.id for h in store.search(query, k=b, **options)]  # type: ignore[arg-type]
        assert short == long[:a]
        if mode != "lexical":  # every record is a dense candidate: k hits while there are k
            assert len(long) == min(b, len(texts))


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 120),
    seed=st.integers(0, 2**32 - 1),
    fusion_depth=st.integers(1, 12),
    ks=st.tuples(st.integers(1, 130), st.integers(1, 130)),
    recency=st.sampled_from([0.0, 0.5]),
)
def test_tiered_fusion_is_prefix_stable_for_any_rankings(
    n: int, seed: int, fusion_depth: int, ks: tuple[int, int], recency: float
) -> None:
    """The fusion itself, over random dense and lexical rankings that disagree (what a store
    hands it): k=a is the first a hits of k=b, and there are min(k, candidates) hits."""
    rng = np.random.default_rng(seed)
    dense = [int(k) for k in rng.permutation(n)]
    lexical = [int(k) for k in rng.permutation(n)[: int(rng.integers(0, n + 1))]]
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    query = rng.normal(size=8).astype(np.float32)
    records = {
        k: MemoryRecord(id=f"r{k:03d}", scope=Scope(user_id="u"), text=f"text {k}", metadata={},
                        created_at=0.0, updated_at=float(rng.integers(0, 10**6)),
                        embedder="test", dim=8, content_hash=f"h{k}")
        for k in range(n)
    }  # fmt: skip

    def candidates(depth: int) -> Tier:
        head = dict.fromkeys([*dense[:depth], *lexical[:depth]])
        return {k: (records[k], vectors[k]) for k in head}, dense[:depth], lexical[:depth]

    a, b = sorted(ks)
    ranked = {
        k: [h.record.id for h in tiered(candidates, query, SearchOptions(
            k=k, fusion_depth=fusion_depth, recency_weight=recency))]
        for k in (a, b)
    }  # fmt: skip
    assert ranked[a] == ranked[b][:a]
    assert len(ranked[b]) == min(b, n) and len(set(ranked[b])) == len(ranked[b])


# -- a second stage --------------------------------------------------------------------------

NOTES = [
    "Alice drinks green tea every morning.",
    "Alice's dog Rex likes the park.",
    "The train to Lyon leaves at nine.",
    "Alice grows tomatoes in her garden.",
    "Green tea and jasmine are Alice's favourites.",
    "Bob fixed Alice's red bicycle.",
]


def test_rerankers_take_search_hits_and_records(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "m.db", embedder=load_embedder()) as store:
        store.add_many(NOTES, user_id="alice")
        hits = store.search("what does alice drink", user_id="alice", k=4)
        reranker = BiEncoderReranker(store.embedder)
        ranked = reranker.rank("what does alice drink", hits)
        assert sorted(ranked.ids) == sorted(h.record.id for h in hits)
        records = [h.record for h in hits]
        assert reranker.rank("what does alice drink", records).ids == ranked.ids
        with pytest.raises(InvalidRecordError, match="memory record or search hit"):
            reranker.rank("tea", [object()])


def test_search_reranks_its_hits_in_one_call_reusing_stored_vectors(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "m.db", embedder=load_embedder()) as store:
        store.add_many(NOTES, user_id="alice")
        encoded: list[list[str]] = []
        encode = store.embedder.encode

        def spy(texts: list[str]) -> np.ndarray:
            encoded.append(list(texts))
            return encode(texts)

        reranker = BiEncoderReranker(store.embedder)
        plain = store.search("tea", user_id="alice", mode="lexical", k=6)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(store.embedder, "encode", spy)
            hits = store.search("tea", user_id="alice", mode="lexical", k=2, rerank=reranker,
                                rerank_depth=6)  # fmt: skip
        assert encoded == [["tea"]]  # the query only: the records' vectors came from the store
        assert len(hits) == 2 and all(h.rerank_score is not None for h in hits)
        scores = [h.rerank_score for h in hits]
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
        assert {h.record.id for h in hits} <= {h.record.id for h in plain}
        with pytest.raises(ConfigError, match="rerank must be a reranker"):
            store.search("tea", user_id="alice", rerank="biencoder")
        with pytest.raises(ConfigError, match="rerank_depth"):
            store.search("tea", user_id="alice", rerank=reranker, rerank_depth=0)


def test_a_model_reranker_as_the_second_stage(tmp_path: Path, local_llm: object) -> None:
    """The bundled SmolLM2 judges the first stage's hits (pointwise), in the same call."""
    with MemoryStore(tmp_path / "m.db", embedder=load_embedder()) as store:
        store.add_many(NOTES, user_id="alice")
        first = store.search("what does alice drink", user_id="alice", k=4)
        hits = store.search("what does alice drink", user_id="alice", k=4,
                            rerank=PointwiseReranker(local_llm), rerank_depth=4)  # type: ignore[arg-type]  # fmt: skip
        assert sorted(h.record.id for h in hits) == sorted(h.record.id for h in first)
        assert all(isinstance(h.rerank_score, float) for h in hits)

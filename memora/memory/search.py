"""How the memory store ranks: the search options as one frozen value, and the fusion as pure
functions (reciprocal rank fusion, the neural blend, recency, salience).

The store gathers the candidates (dense from the vector view, lexical from the records, and
with a neural memory the candidates near ``M(q)``); everything here is arithmetic on them.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from memora.errors import (
    ConfigError,
    EmptyQueryError,
    InvalidOptionError,
    unknown_option,
)
from memora.memory.contract import RecordStore
from memora.memory.types import MemoryRecord, Scope, SearchHit

__all__ = [
    "RRF_K",
    "SearchMode",
    "SearchOptions",
    "fits",
    "fuse",
    "lexical_hits",
    "neural_blend",
    "query_words",
    "score_hits",
    "second_stage",
    "tiered",
]

SearchMode = Literal["hybrid", "dense", "lexical"]
RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)
_ALIASES = {
    "top_k": "k", "limit": "k", "n_results": "k", "topk": "k",
    "filter": "filters", "where": "filters", "metadata": "filters",
    "threshold": "min_score", "score_threshold": "min_score", "min_similarity": "min_score",
}  # fmt: skip


@dataclass(frozen=True)
class SearchOptions:
    """How :meth:`MemoryStore.search <memora.memory.store.MemoryStore.search>` ranks.

    Attributes:
        k: how many hits to return (>= 1).
        mode: ``"dense"`` (embeddings), ``"lexical"`` (full text, BM25) or ``"hybrid"`` (both,
            fused by reciprocal rank fusion).
        filters: metadata keys that must match exactly.
        min_score: hits whose cosine similarity is below it are dropped.
        recency_weight: adds ``weight * 0.5 ** (age / half_life)`` to the fused score.
        recency_half_life_days: the half life of that bonus.
        neural_weight: > 0 reads ``r = M(q)`` through the scope's neural memory and ranks the
            pooled dense candidates of ``q`` and ``r`` by ``cos(q, x) + weight * cos(r, x)``
            (needs a store with a neural memory).
        neural_query: the text whose embedding is read through the memory (default: the query).
        salience_weight: added to the score of records the neural memory flagged salient
            (needs a store with a neural memory).
        fusion_depth: how deep each retriever looks before fusion, whatever ``k``: so that a
            ranking is prefix-stable (``k=a`` gives the first ``a`` hits of ``k=b``). When
            ``k`` needs more hits, the lists are read deeper in tiers (twice as deep each) and
            each tier's new records rank after the ones before.
        rerank: a second stage, any :mod:`memora.rank` reranker (or anything with
            ``rank(query, docs)`` returning ranked ids): it reorders the first
            ``rerank_depth`` hits; the rest follow. A bi-encoder of the store's embedder uses
            the stored vectors instead of encoding the texts again.
    """

    k: int = 10
    mode: SearchMode = "hybrid"
    filters: Mapping[str, Any] | None = field(default=None, hash=False)
    min_score: float | None = None
    recency_weight: float = 0.0
    recency_half_life_days: float = 30.0
    neural_weight: float = 0.0
    neural_query: str | None = None
    salience_weight: float = 0.0
    fusion_depth: int = 50
    rerank: Any = field(default=None, hash=False, compare=False)
    rerank_depth: int = 20

    def __post_init__(self) -> None:
        if self.rerank is not None and not callable(getattr(self.rerank, "rank", None)):
            raise ConfigError("rerank must be a reranker (memora.rank), with rank(query, docs)")
        for name in ("k", "fusion_depth", "rerank_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if self.mode not in ("hybrid", "dense", "lexical"):
            raise ConfigError(f"mode must be 'hybrid', 'dense' or 'lexical', got {self.mode!r}")
        if self.filters is not None and not isinstance(self.filters, Mapping):
            raise ConfigError("filters must be a dict of metadata keys and values")
        for name in ("recency_weight", "neural_weight", "salience_weight"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if not self.recency_half_life_days > 0:
            raise ConfigError("recency_half_life_days must be > 0")

    @classmethod
    def build(cls, base: SearchOptions | None = None, **changes: Any) -> SearchOptions:
        """``base`` (default: the defaults) with ``changes``; an unknown option name raises
        :class:`~memora.errors.InvalidOptionError` with the nearest valid one."""
        names = [f.name for f in dataclasses.fields(cls)]
        valid = [*names, "user_id", "agent_id", "session_id"]
        for name in changes:
            if name in _ALIASES:  # the names other libraries use
                raise InvalidOptionError(
                    f"search has no option '{name}'; did you mean '{_ALIASES[name]}'? "
                    f"options: {', '.join(valid)}"
                )
            if name not in names:
                raise unknown_option(name, valid, "search")
        return dataclasses.replace(base or cls(), **changes)

    @property
    def needs_neural(self) -> bool:
        return bool(self.neural_weight or self.salience_weight)

    def check_neural(self, available: bool) -> None:
        """Refuse options that need a neural memory where there is none."""
        if self.needs_neural and not available:
            raise ConfigError(
                "neural_weight and salience_weight need a store with a neural memory: open it "
                "with MemoryStore(path, neural=True), or leave them at 0"
            )

    @property
    def depth(self) -> int:
        """How deep each retriever looks in the first tier (:attr:`fusion_depth`)."""
        return self.fusion_depth


def query_words(query: str) -> list[str]:
    """The words of a query for full-text search; an empty query is an error."""
    if not isinstance(query, str) or not query.strip():
        raise EmptyQueryError("the query is empty; search for some text")
    return _WORD.findall(query)


def neural_blend(
    pool: Mapping[int, tuple[MemoryRecord, np.ndarray]],
    query: np.ndarray,
    read: np.ndarray,
    weight: float,
    depth: int,
) -> list[int]:
    """The pooled candidates ranked by ``cos(q, x) + weight * cos(r, x)``."""
    blend = {key: float(v @ query + weight * (v @ read)) for key, (_, v) in pool.items()}
    return sorted(pool, key=lambda key: -blend[key])[:depth]


def fuse(rankings: Sequence[Sequence[int]]) -> dict[int, float]:
    """Reciprocal rank fusion: ``sum 1 / (RRF_K + rank)`` over the rankings."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
    return fused


def score_hits(
    records: Mapping[int, tuple[MemoryRecord, np.ndarray]],
    fused: Mapping[int, float],
    dense: Sequence[int],
    lexical: Sequence[int],
    query: np.ndarray | None,
    options: SearchOptions,
    now: float,
) -> list[SearchHit]:
    """The hits, best first (all of them: the caller cuts): fused score plus the recency and
    salience bonuses; ties by similarity, then id (a stable order). Without a query vector (a
    lexical search) the hits have no similarity."""
    dense_rank = {key: i for i, key in enumerate(dense, start=1)}
    lexical_rank = {key: i for i, key in enumerate(lexical, start=1)}
    hits = []
    for key, (record, vector) in records.items():
        similarity = None if query is None else float(vector @ query)
        if options.min_score is not None and (similarity or 0.0) < options.min_score:
            continue
        score = fused[key]
        if options.recency_weight:
            age_days = max(0.0, now - record.updated_at) / 86_400
            score += options.recency_weight * 0.5 ** (age_days / options.recency_half_life_days)
        score += options.salience_weight * record.salient
        hits.append(
            SearchHit(
                record=record,
                score=score,
                similarity=similarity,
                dense_rank=dense_rank.get(key),
                lexical_rank=lexical_rank.get(key),
            )
        )
    hits.sort(key=lambda h: (-h.score, -(h.similarity or 0.0), h.record.id))
    return hits


def lexical_hits(
    records: RecordStore, query: str, where: Scope | None, options: SearchOptions
) -> list[SearchHit]:
    """A full-text search alone: neither the embedder nor the vector index is loaded, and the
    hits carry no similarity."""

    words = query_words(query)

    def tier(depth: int) -> Tier:
        lexical = records.lexical(words, where, options.filters, depth)
        return records.fetch(lexical, where), [], lexical

    return second_stage(query, tier, None, options)


@dataclass(frozen=True)
class _Candidate:
    """A hit as a reranker's candidate, with its stored vector."""

    id: str
    text: str
    vector: np.ndarray | None
    embedder: str


def second_stage(
    query: str, candidates: Callable[[int], Tier], qvec: np.ndarray | None,
    options: SearchOptions,
) -> list[SearchHit]:  # fmt: skip
    """The fused hits, their first ``rerank_depth`` reordered by ``options.rerank`` (when set;
    ``rerank_score`` is the reranker's score), the rest after them, cut to ``k``."""
    if options.rerank is None:
        return tiered(candidates, qvec, options)
    vectors: dict[str, np.ndarray] = {}
    wide = dataclasses.replace(options, k=max(options.k, options.rerank_depth))
    hits = tiered(candidates, qvec, wide, vectors)
    head, tail = hits[: options.rerank_depth], hits[options.rerank_depth :]
    if not head:
        return hits
    docs = [_Candidate(h.record.id, h.record.text, vectors.get(h.record.id), h.record.embedder)
            for h in head]  # fmt: skip
    ranking = options.rerank.rank(query, docs)
    scores = dict(zip(ranking.ids, ranking.scores or [None] * len(docs), strict=True))
    by_id = {h.record.id: h for h in head}
    ordered = [dataclasses.replace(by_id[i], rerank_score=scores[i]) for i in ranking.ids]
    return (ordered + tail)[: options.k]


#: The candidates of one tier: the fetched records (key -> record, vector) and the dense and
#: lexical rankings they came from.
Tier = tuple[Mapping[int, tuple[MemoryRecord, np.ndarray]], Sequence[int], Sequence[int]]


def tiered(
    candidates: Callable[[int], Tier], query: np.ndarray | None, options: SearchOptions,
    vectors: dict[str, np.ndarray] | None = None,
) -> list[SearchHit]:  # fmt: skip
    """The first ``k`` hits, prefix-stable: tier ``t`` fuses rankings ``fusion_depth * 2**t``
    deep, and ranks the records it adds after those of the tiers before. What a tier holds does
    not depend on ``k``, so ``k=a`` returns the first ``a`` hits of ``k=b``. A search needing
    at most ``fusion_depth`` candidates reads one tier. ``vectors`` collects the hits' stored
    vectors (by record id)."""
    hits: list[SearchHit] = []
    seen: set[int] = set()
    depth, now = options.fusion_depth, time.time()
    while True:
        found, dense, lexical = candidates(depth)
        fused = fuse([dense, lexical])
        new = {key: hit for key, hit in found.items() if key not in seen}
        if vectors is not None:
            vectors.update((record.id, vector) for record, vector in new.values())
        hits += score_hits(new, fused, dense, lexical, query, options, now)
        seen.update(fused)
        if len(hits) >= options.k or (len(dense) < depth and len(lexical) < depth):
            return hits[: options.k]
        depth *= 2


def fits(vector: np.ndarray, query: np.ndarray) -> bool:
    """Whether a stored vector can be compared with the query (a damaged one cannot)."""
    return vector.shape == query.shape and bool(np.isfinite(vector).all())

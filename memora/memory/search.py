"""How the memory store ranks: prefix-stable tiers of candidates, the second stage and the
neural blend, as pure functions (the options are :mod:`memora.memory.options`, the fusion of
one tier :mod:`memora.memory.fusion`).

The store gathers the candidates (dense from the vector view, lexical from the records, the
records of search keys, and with a neural memory the candidates near ``M(q)``); everything
here is arithmetic on them.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from memora.errors import EmptyQueryError
from memora.memory.contract import RecordStore
from memora.memory.fusion import RRF_K, Signals, collapse, ranked_hits, scored, searched_words
from memora.memory.options import SearchMode, SearchOptions
from memora.memory.types import MemoryRecord, Scope, SearchHit

if TYPE_CHECKING:
    from memora.memory.when import TimeWindow

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

_WORD = re.compile(r"\w+", re.UNICODE)


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
    records: RecordStore, query: str, where: Scope | None, options: SearchOptions,
    window: TimeWindow | None = None, qvec: np.ndarray | None = None,
) -> list[SearchHit]:  # fmt: skip
    """A full-text search alone, ranked by full text only: neither the embedder nor the vector
    index is loaded, and the hits carry no similarity unless the query's vector ``qvec`` is
    given."""
    if qvec is not None:
        options = dataclasses.replace(options, dense_weight=0.0, adaptive=False)

    words = searched_words(query_words(query))

    def tier(depth: int) -> Tier:
        lexical = records.lexical_scored(words, where, options.filters, depth)
        found = records.fetch([k for k, _ in lexical], where)
        if not options.keys:
            found = {k: hit for k, hit in found.items() if hit[0].key_of is None}
        found = with_owners(records, found, where)
        if qvec is not None:  # a damaged stored vector cannot be compared: left out
            found = {k: hit for k, hit in found.items() if fits(hit[1], qvec)}
        return found, [], lexical

    return second_stage(query, tier, qvec, options, window)


def with_owners(
    records: RecordStore, found: dict[int, tuple[MemoryRecord, np.ndarray]], where: Scope | None
) -> dict[int, tuple[MemoryRecord, np.ndarray]]:
    """``found`` with the records its search keys find (fetched when missing)."""
    have = {record.id for record, _ in found.values()}
    wanted = sorted({r.key_of for r, _ in found.values() if r.key_of and r.key_of not in have})
    return found | records.fetch_ids(wanted, where) if wanted else found


@dataclass(frozen=True)
class _Candidate:
    """A hit as a reranker's candidate, with its stored vector."""

    id: str
    text: str
    vector: np.ndarray | None
    embedder: str


def second_stage(
    query: str, candidates: Callable[[int], Tier], qvec: np.ndarray | None,
    options: SearchOptions, window: TimeWindow | None = None,
    merge: Callable[[list[SearchHit], int], list[SearchHit]] | None = None,
) -> list[SearchHit]:  # fmt: skip
    """The fused hits (``merge``-d with more, such as a second hop: given the hits and how many
    to return), their first ``rerank_depth`` reordered by ``options.rerank`` (when set;
    ``rerank_score`` is the reranker's score), the rest after them, cut to ``k``."""
    terms = query_words(query)
    vectors: dict[str, np.ndarray] = {}
    depth = options.rerank_depth if options.rerank is not None else 0
    wide = dataclasses.replace(options, k=max(options.k, depth, 2 if merge else 1))
    hits = tiered(candidates, qvec, wide, vectors, window, terms)
    if merge is not None:
        hits = merge(hits, wide.k)
    if options.rerank is None:
        return hits[: options.k]
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


#: The candidates of one tier: the fetched records and search keys (key -> record, vector),
#: the records of those keys, the dense ranking and the full-text ranking they came from (keys
#: with scores, or keys alone).
Tier = tuple[Mapping[int, tuple[MemoryRecord, np.ndarray]], Sequence[int], Sequence[Any]]


def tiered(
    candidates: Callable[[int], Tier], query: np.ndarray | None, options: SearchOptions,
    vectors: dict[str, np.ndarray] | None = None, window: TimeWindow | None = None,
    terms: Sequence[str] = (),
) -> list[SearchHit]:  # fmt: skip
    """The first ``k`` hits, prefix-stable: tier ``t`` fuses rankings ``fusion_depth * 2**t``
    deep, and ranks the records it adds after those of the tiers before. What a tier holds does
    not depend on ``k``, so ``k=a`` returns the first ``a`` hits of ``k=b``. A search needing
    at most ``fusion_depth`` candidates reads one tier. ``vectors`` collects the hits' stored
    vectors (by record id); ``window``: the time the query asks about."""
    hits: list[SearchHit] = []
    seen: set[int] = set()
    depth = options.fusion_depth
    now = time.time() if options.now is None else options.now
    while True:
        found, dense, lexical = candidates(depth)
        signals = collapse(found, dense, scored(lexical), query)
        if not hits and not seen and _nothing_relevant(signals, options):
            return []
        new = {key: s for key, s in signals.items() if key not in seen}
        if vectors is not None:
            vectors.update((s.record.id, found[key][1]) for key, s in new.items())
        hits += ranked_hits(new, options, now, window, terms)
        seen.update(signals)
        if len(hits) >= options.k or (len(dense) < depth and len(lexical) < depth):
            return hits[: options.k]
        depth *= 2


def _nothing_relevant(signals: Mapping[int, Signals], options: SearchOptions) -> bool:
    """Whether the best similarity among the first tier's candidates (whatever ``k``) is under
    ``abstain_below``: the search abstains."""
    if options.abstain_below is None:
        return False
    best = max((s.similarity for s in signals.values() if s.similarity is not None), default=None)
    return best is not None and best < options.abstain_below


def fits(vector: np.ndarray, query: np.ndarray) -> bool:
    """Whether a stored vector can be compared with the query (a damaged one cannot)."""
    return vector.shape == query.shape and bool(np.isfinite(vector).all())

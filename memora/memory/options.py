"""The options of a memory search as one frozen value (:class:`SearchOptions`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from memora.errors import ConfigError, InvalidOptionError, unknown_option

__all__ = ["ABSTAIN_BELOW", "DENSE_WEIGHT", "TIME_WEIGHT", "Fusion", "SearchMode", "SearchOptions"]

SearchMode = Literal["hybrid", "dense", "lexical"]
Fusion = Literal["score", "rrf"]
#: The defaults chosen on ``bench/retrieval.py`` (see ``bench/README.md``).
DENSE_WEIGHT = 0.5
TIME_WEIGHT = 1.5  # over the fused scores (0..1): what occurred in the window ranks first
#: A calibrated "nothing relevant" floor of the default embedder (all-MiniLM-L6-v2): on
#: ``bench/retrieval.py`` no answerable question's best hit is under it, so it abstains only
#: when nothing stored is even loosely related (bench/README.md has the whole trade-off: a
#: higher floor abstains on more unanswerable questions and on more answerable ones).
ABSTAIN_BELOW = 0.3
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
            fused as ``fusion`` says).
        fusion: ``"score"`` (normalized-score fusion: ``dense_weight`` times the min-max
            normalized similarity plus the rest times the full-text score over the best one) or
            ``"rrf"`` (reciprocal rank fusion); see :mod:`memora.memory.fusion`.
        dense_weight: the dense share of the ``"score"`` fusion (0..1) for a query whose
            content words all appear in one candidate.
        adaptive: the full-text share shrinks with the share of the query's content words
            that the best full-text candidate holds (a paraphrase leans on dense, names and
            rare terms keep full text).
        filters: metadata keys that must match exactly.
        min_score: hits whose cosine similarity is below it are dropped.
        recency_weight: adds ``weight * 0.5 ** (age / half_life)`` to the fused score; the age
            runs from ``occurred_at`` (else the last update) to ``now``.
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
        time_weight: a temporal expression in the query ("last week", "on March 3") is
            resolved to a time window (relative to ``now``) and records that occurred in it get
            this bonus (0: no time resolution).
        now: the time the query is asked (default: the clock), for relative expressions and
            recency.
        occurred_after / occurred_before: only records that occurred in ``[after, before)``
            (``occurred_at``, else when written).
        neighbours: each hit carries up to this many records written before and after it in
            its scope (its session), in time order (``SearchHit.context``).
        abstain_below: when the best similarity among the first ``fusion_depth`` candidates of
            each retriever is below it (whatever ``k``), the search returns no hits (nothing
            relevant is stored); :data:`ABSTAIN_BELOW` is calibrated for the default
            embedder.
        keys: search the records' extra search keys too (their hits collapse onto the record).
        hops: 2: a second, full-text hop for the names the first two hits hold and the query
            does not ("my cousin who is a pilot" finds "Dagny", then what Dagny did); its hits
            are taken in turns with the first hop's. 1: one hop.
        latest: a query that asks for the current state ("now", "currently") ranks later
            statements of the same thing before earlier ones (a new job before the old).
        neural_latest_weight: the ``neural_weight`` of such a query (``latest`` on,
            ``neural_weight`` 0) in a scope whose neural memory earned it: a windowed update
            (``NeuralConfig(window >= 8)``) written mostly with question keys (``cue=``), where
            it made stale answers rarer (``docs/neural-memory.md``). Ignored elsewhere, and
            in a store without a neural memory.
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
    fusion: Fusion = "score"
    dense_weight: float = DENSE_WEIGHT
    time_weight: float = TIME_WEIGHT
    now: float | None = None
    occurred_after: float | None = None
    occurred_before: float | None = None
    neighbours: int = 0
    abstain_below: float | None = None
    keys: bool = True
    adaptive: bool = True
    hops: int = 2
    latest: bool = True
    neural_latest_weight: float = 0.25

    def __post_init__(self) -> None:
        if self.rerank is not None and not callable(getattr(self.rerank, "rank", None)):
            raise ConfigError("rerank must be a reranker (memora.rank), with rank(query, docs)")
        if self.hops not in (1, 2):
            raise ConfigError(f"hops must be 1 or 2, got {self.hops!r}")
        for name in ("k", "fusion_depth", "rerank_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if (
            isinstance(self.neighbours, bool)
            or not isinstance(self.neighbours, int)
            or not (0 <= self.neighbours <= 50)
        ):
            raise ConfigError(f"neighbours must be an integer 0..50, got {self.neighbours!r}")
        if self.fusion not in ("score", "rrf"):
            raise ConfigError(f"fusion must be 'score' or 'rrf', got {self.fusion!r}")
        if not isinstance(self.dense_weight, int | float) or not 0 <= self.dense_weight <= 1:
            raise ConfigError(f"dense_weight must be from 0 to 1, got {self.dense_weight!r}")
        for name in ("now", "occurred_after", "occurred_before", "abstain_below", "min_score"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):  # fmt: skip
                raise ConfigError(f"{name} must be a finite number or None, got {value!r}")
        if self.mode not in ("hybrid", "dense", "lexical"):
            raise ConfigError(f"mode must be 'hybrid', 'dense' or 'lexical', got {self.mode!r}")
        if self.filters is not None and not isinstance(self.filters, Mapping):
            raise ConfigError("filters must be a dict of metadata keys and values")
        for name in ("recency_weight", "neural_weight", "salience_weight", "time_weight",
                     "neural_latest_weight"):  # fmt: skip
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

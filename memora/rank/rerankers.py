"""Rerankers: one interface, ``rank(query, docs) -> Ranking``, several strategies.

- ``full``, ``sliding`` and ``psc`` (any backend): listwise prompts, see
  :mod:`memora.rank.listwise`;
- ``setwise`` (local models with KV sequences): order-invariant scoring in one pass, see
  :mod:`memora.rank.setwise`;
- ``pointwise`` (models with logits) and ``biencoder`` (embeddings): each passage alone, see
  :mod:`memora.rank.pointwise`.

Every strategy returns a permutation of its input, whatever the model answers. The contract
(:class:`Reranker`) is in :mod:`memora.rank.base`; the prompts are package data under
``memora/rank/prompts/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from memora.errors import ConfigError
from memora.rank.base import Reranker, cut_text
from memora.rank.listwise import FullReranker, PSCReranker, SlidingReranker
from memora.rank.pointwise import BiEncoderReranker, PointwiseReranker
from memora.rank.setwise import SetwiseReranker

if TYPE_CHECKING:
    from memora.llm.base import LLM

__all__ = [
    "STRATEGIES",
    "BiEncoderReranker",
    "FullReranker",
    "PSCReranker",
    "PointwiseReranker",
    "Reranker",
    "SetwiseReranker",
    "SlidingReranker",
    "cut_text",
    "load_reranker",
]

STRATEGIES: Mapping[str, type[Reranker]] = {
    "full": FullReranker,
    "sliding": SlidingReranker,
    "setwise": SetwiseReranker,
    "pointwise": PointwiseReranker,
    "biencoder": BiEncoderReranker,
    "psc": PSCReranker,
}


def load_reranker(strategy: str, llm: LLM | None = None, **options: Any) -> Reranker:
    """The reranker for ``strategy`` (``biencoder`` needs no model; the others need ``llm``)."""
    cls = STRATEGIES.get(strategy)
    if cls is None:
        raise ConfigError(f"unknown strategy {strategy!r}; strategies: {', '.join(STRATEGIES)}")
    if cls is BiEncoderReranker:
        return BiEncoderReranker(**options)
    if llm is None:
        raise ConfigError(f"strategy {strategy!r} needs a model; pass llm=load_model(...)")
    return cls(llm, **options)  # type: ignore[call-arg]

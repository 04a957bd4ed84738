"""Rerankers (full-ranking listwise, sliding window, order-invariant setwise, pointwise,
bi-encoder, permutation self-consistency), long-document ranking, and batch ranking."""

from memora.rank.longdoc import PassageReranker, split_passages
from memora.rank.parse import parse_permutation
from memora.rank.rerankers import (
    STRATEGIES,
    BiEncoderReranker,
    FullReranker,
    PointwiseReranker,
    PSCReranker,
    Reranker,
    SetwiseReranker,
    SlidingReranker,
    load_reranker,
)
from memora.rank.types import Diagnostics, Doc, ParseStats, Ranking, as_docs

__all__ = [
    "STRATEGIES",
    "BiEncoderReranker",
    "Diagnostics",
    "Doc",
    "FullReranker",
    "PSCReranker",
    "ParseStats",
    "PassageReranker",
    "PointwiseReranker",
    "Ranking",
    "Reranker",
    "SetwiseReranker",
    "SlidingReranker",
    "as_docs",
    "load_reranker",
    "parse_permutation",
    "split_passages",
]

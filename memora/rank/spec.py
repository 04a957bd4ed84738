"""A reranker's lifecycle in a batch run: built from plain data (:class:`RerankerSpec`, which
Ray actors can receive), closed with what it owns, and its passage length chosen for long
documents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memora.errors import InvalidOptionError
from memora.rank.base import Reranker
from memora.rank.types import Diagnostics, Doc

if TYPE_CHECKING:
    from memora.llm.base import LLM

__all__ = ["PASSAGE_WORDS", "RerankerSpec", "choose_passage_words", "close_reranker"]

#: Words per passage that fit each strategy's default per-passage token budget (~1.3 tokens a
#: word): 100 tokens for the listwise and setwise prompts, 200 for pointwise, 256 word pieces for
#: the bundled MiniLM.
PASSAGE_WORDS = {
    "full": 75,
    "sliding": 75,
    "psc": 75,
    "setwise": 75,
    "pointwise": 150,
    "biencoder": 190,
}


class _WithModel(Reranker):
    """``inner`` together with the model it was built on, which it owns: ``close()`` closes
    both. It ranks as ``inner`` does, under ``inner``'s name."""

    def __init__(self, inner: Reranker, llm: LLM) -> None:
        self.inner, self.llm, self.name = inner, llm, inner.name

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        return self.inner._rank(query, docs, diag)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.llm.close()


@dataclass(frozen=True)
class RerankerSpec:
    """How to build a reranker, as plain data, so that Ray actors can build their own.

    ``model_options`` go to :func:`memora.llm.load_model`, ``options`` to the strategy;
    ``passage_words`` (None: no splitting) wraps it in a
    :class:`~memora.rank.longdoc.PassageReranker` (MaxP, stride 2/3 of a passage)."""

    strategy: str
    model: str = "default"
    model_options: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    passage_words: int | None = None

    def build(self) -> Reranker:
        """The reranker, which owns the model loaded here: ``close()`` frees it."""
        from memora.rank.longdoc import PassageReranker
        from memora.rank.rerankers import STRATEGIES, load_reranker

        if self.strategy not in STRATEGIES:
            raise InvalidOptionError(
                f"unknown strategy {self.strategy!r}; strategies: {', '.join(STRATEGIES)}"
            )
        reranker: Reranker
        if self.strategy == "biencoder":
            reranker = load_reranker(self.strategy, None, **dict(self.options))
        else:
            from memora.llm.registry import load_model

            llm = load_model(self.model, **dict(self.model_options))
            try:
                reranker = load_reranker(self.strategy, llm, **dict(self.options))
            except BaseException:
                llm.close()
                raise
            reranker = _WithModel(reranker, llm)
        if self.passage_words is not None:
            stride = max(1, self.passage_words * 2 // 3)
            reranker = PassageReranker(reranker, passage_words=self.passage_words, stride=stride)
        return reranker


def close_reranker(reranker: Reranker) -> None:
    """Free what a reranker built by :meth:`RerankerSpec.build` owns (``reranker.close()``)."""
    reranker.close()


def choose_passage_words(
    strategy: str, docs: Sequence[Doc], requested: int | None = None
) -> int | None:
    """``requested`` when given (0: never split); else the strategy's passage length in words
    when some doc is longer than it, else None (rank whole docs)."""
    if requested is not None:
        if requested < 0:
            raise InvalidOptionError(f"passage_words must be >= 0, got {requested}")
        return requested or None
    budget = PASSAGE_WORDS.get(strategy, 75)
    longest = max((len(d.text.split()) for d in docs), default=0)
    return budget if longest > budget else None

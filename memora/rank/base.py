"""The reranker contract: ``rank(query, docs) -> Ranking`` over one method a strategy
implements, ``_rank``, and ``close()`` for what a reranker owns."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from memora.errors import EmptyQueryError, UnsupportedError
from memora.rank.types import Diagnostics, Doc, Ranking, as_docs

if TYPE_CHECKING:
    from memora.llm.base import LLM

__all__ = ["Reranker", "cut_text"]

#: The package whose ``prompts/`` folder holds the rank prompts (see :mod:`memora.templates`).
PROMPTS = "memora.rank"


class Reranker(ABC):
    """``rank(query, docs)`` orders ``docs`` (``Doc``, ``(id, text)``, ``{"docid", "text"}`` or
    strings) by relevance to ``query`` and returns a :class:`Ranking`.

    ``close()`` frees what the reranker owns. A reranker does not own a model it was given, so
    the default does nothing; a reranker that wraps another closes it."""

    name = "reranker"
    _progress: Callable[[int, int], None] | None = None

    def on_progress(self, callback: Callable[[int, int], None] | None) -> None:
        """Call ``callback(done, total)`` after each model call inside a query (None: stop);
        a strategy of one call reports nothing. Wrappers pass it to the reranker they wrap."""
        self._progress = callback

    def _step(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(done, total)

    def rank(self, query: str, docs: Sequence[Any]) -> Ranking:
        if not isinstance(query, str) or not query.strip():
            raise EmptyQueryError("the query is empty; pass the text to rank for")
        candidates = as_docs(docs)
        diag = Diagnostics(strategy=self.name)
        started = time.perf_counter()
        order, scores = self._rank(query, candidates, diag)
        diag.seconds = time.perf_counter() - started
        assert sorted(order) == list(range(len(candidates))), "a reranker lost a candidate"
        return Ranking(
            ids=tuple(candidates[i].id for i in order),
            scores=None if scores is None else tuple(float(scores[i]) for i in order),
            diagnostics=diag,
        )

    @abstractmethod
    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        """Indices of ``docs`` best first, and a score per doc (input order) or None."""

    def close(self) -> None:  # noqa: B027 - not abstract: most rerankers own nothing
        """Free what this reranker owns (nothing by default)."""


def cut_text(llm: LLM, text: str, budget: int) -> str:
    """``text`` cut to ``budget`` tokens (words when the backend cannot tokenize)."""
    if not llm.supports_tokenize:
        words = text.split()
        return " ".join(words[:budget])
    tokens = llm.tokenize(text)
    if len(tokens) <= budget:
        return " ".join(text.split())
    try:
        return " ".join(llm.detokenize(tokens[:budget]).split())
    except (NotImplementedError, UnsupportedError):  # a backend whose tokens are one-way
        return " ".join(text.split()[:budget])

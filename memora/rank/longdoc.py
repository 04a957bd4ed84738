"""Ranking long documents: split each into passages, rank the passages, score each document
by its passages (MaxP: its best passage; FirstP: its first; SumP: the sum of its passages'
reciprocal ranks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from memora.errors import ConfigError
from memora.rank.base import Reranker
from memora.rank.types import Diagnostics, Doc

__all__ = ["PassageReranker", "split_passages"]

Aggregate = Literal["maxp", "firstp", "sump"]


def split_passages(text: str, words: int, stride: int) -> list[str]:
    """Windows of ``words`` words every ``stride`` words (the last window reaches the end)."""
    tokens = text.split()
    if len(tokens) <= words:
        return [" ".join(tokens)]
    starts = list(range(0, len(tokens) - words + 1, stride))
    if starts[-1] + words < len(tokens):
        starts.append(len(tokens) - words)
    return [" ".join(tokens[s : s + words]) for s in starts]


class PassageReranker(Reranker):
    """Wraps a reranker for documents longer than its per-passage budget.

    Args:
        inner: ranks the passages (any strategy).
        passage_words: passage length in words (about 1.3 tokens each in English).
        stride: words between passage starts (overlap = passage_words - stride).
        aggregate: ``maxp`` (default), ``firstp`` or ``sump``. Without scores from ``inner``, a
            passage's score is minus its rank.

    ``close()`` closes ``inner``.
    """

    def __init__(
        self,
        inner: Reranker,
        *,
        passage_words: int = 75,
        stride: int = 50,
        aggregate: Aggregate = "maxp",
    ) -> None:
        if passage_words < 1 or not 1 <= stride <= passage_words:
            raise ConfigError("need passage_words >= 1 and 1 <= stride <= passage_words")
        if aggregate not in ("maxp", "firstp", "sump"):
            raise ConfigError(f"aggregate must be maxp, firstp or sump, got {aggregate!r}")
        self.inner, self.passage_words, self.stride = inner, passage_words, stride
        self.aggregate = aggregate
        self.name = f"{inner.name}+{aggregate}"

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        passages: list[Doc] = []
        owner: list[int] = []
        for i, doc in enumerate(docs):
            pieces = split_passages(doc.text, self.passage_words, self.stride)
            if self.aggregate == "firstp":
                pieces = pieces[:1]
            for k, piece in enumerate(pieces):
                passages.append(Doc(f"{i}:{k}", piece))
                owner.append(i)
        inner = self.inner.rank(query, passages)
        by_id = {p.id: n for n, p in enumerate(passages)}
        best: dict[int, float] = {}
        for r, pid in enumerate(inner.ids):
            i = owner[by_id[pid]]
            if self.aggregate == "sump":
                best[i] = best.get(i, 0.0) + 1.0 / (r + 1)
            else:
                score = inner.scores[r] if inner.scores is not None else -float(r)
                best[i] = max(best.get(i, float("-inf")), score)
        got = inner.diagnostics
        diag.calls += got.calls
        diag.input_tokens += got.input_tokens
        diag.output_tokens += got.output_tokens
        diag.parse.add(got.parse)
        diag.notes += [*got.notes, f"{len(passages)} passages from {len(docs)} documents"]
        scores = [best[i] for i in range(len(docs))]
        return sorted(range(len(docs)), key=lambda i: (-scores[i], i)), scores

    def on_progress(self, callback: Callable[[int, int], None] | None) -> None:
        self.inner.on_progress(callback)

    def close(self) -> None:
        self.inner.close()

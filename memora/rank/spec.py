"""A reranker's lifecycle in a batch run: built from plain data (:class:`RerankerSpec`, which
Ray actors can receive), closed with what it owns, and its passage length chosen for long
documents."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memora.errors import InvalidOptionError
from memora.rank.base import Reranker
from memora.rank.types import Diagnostics, Doc

if TYPE_CHECKING:
    from memora.llm.base import LLM

__all__ = [
    "PASSAGE_WORDS",
    "RerankerSpec",
    "choose_passage_words",
    "close_reranker",
    "estimate_calls",
]

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

    def on_progress(self, callback: Callable[[int, int], None] | None) -> None:
        self.inner.on_progress(callback)

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

    def fingerprint(self) -> dict[str, Any]:
        """What decides this spec's rankings, as JSON data: a resumed run must match it.
        Threads and other settings that change only the speed are left out."""
        speed_only = {"n_threads", "n_gpu_layers", "timeout", "max_retries", "api_key", "base_url"}
        options = {k: v for k, v in self.model_options.items() if k not in speed_only}
        if self.strategy == "biencoder":  # ranks with the embedder, whatever the model
            options = {}
        return {
            "strategy": self.strategy,
            "model": None if self.strategy == "biencoder" else self.model,
            "model_options": dict(sorted(options.items())),
            "options": dict(sorted(self.options.items())),
            "passage_words": self.passage_words,
        }

    def estimate_calls(self, docs: Sequence[Doc]) -> int:
        """The model calls that ranking ``docs`` will make (passages counted after splitting),
        computed from the options alone, before any model is loaded."""
        n = len(docs)
        if self.passage_words is not None:
            from memora.rank.longdoc import split_passages

            stride = max(1, self.passage_words * 2 // 3)
            n = sum(len(split_passages(d.text, self.passage_words, stride)) for d in docs)
        return estimate_calls(self.strategy, n, self.options)


def estimate_calls(strategy: str, n: int, options: Mapping[str, Any]) -> int:
    """Model calls of ``strategy`` over ``n`` candidates with ``options`` (its defaults for
    those left out): pointwise one per candidate, sliding one per window and pass, psc ``k``,
    setwise one (two calibrated), full and biencoder one."""
    if strategy == "pointwise":
        return n
    if strategy == "sliding":
        window, step = int(options.get("window", 20)), int(options.get("step", 10))
        windows = 1 + max(0, -(-(n - window) // max(1, step)))
        return windows * int(options.get("passes", 1))
    if strategy == "psc":
        return int(options.get("k", 5))
    if strategy == "setwise":
        return 2 if options.get("calibrate") else 1
    return 1


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

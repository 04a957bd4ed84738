"""Listwise rerankers: the model reads numbered passages and answers with their order.

- ``full``: every candidate in one prompt (``[i] passage``; the answer ``[a] > [b] > ...``),
  each passage cut to a token budget so that the prompt fits the context ("Sliding Windows Are
  Not the End", Liu et al., 2024). When even a minimal budget does not fit, it raises
  :class:`ContextOverflowError` naming ``sliding``.
- ``sliding``: RankGPT's sliding window, from the bottom up (window 20, step 10), ``passes``.
- ``psc``: ``full`` on ``k`` shuffled orders, aggregated by Borda count. This reduces order
  dependence; it does not remove it.

The prompt is ``prompts/system.txt`` and ``prompts/listwise_user.txt`` with one
``prompts/listwise_passage.txt`` line per passage (see :func:`listwise_messages`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from memora import templates
from memora.errors import ConfigError, ContextOverflowError
from memora.llm.sequence import canonical_order
from memora.prompting.aggregate import borda
from memora.rank.base import PROMPTS, Reranker, cut_text
from memora.rank.parse import parse_permutation
from memora.rank.types import Diagnostics, Doc

if TYPE_CHECKING:
    from memora.llm.base import LLM

__all__ = ["FullReranker", "PSCReranker", "SlidingReranker", "listwise_messages"]


def listwise_messages(
    query: str, passages: Sequence[str], *, n: int | None = None
) -> list[dict[str, str]]:
    """The listwise chat: the system turn, then the query, the passages numbered from 1 and the
    instruction to rank ``n`` passages (default: as many as given; the token budget counts the
    prompt of ``n`` passages without them)."""
    lines = "".join(
        templates.render(PROMPTS, "listwise_passage", number=i + 1, passage=passage) + "\n"
        for i, passage in enumerate(passages)
    )
    count = len(passages) if n is None else n
    user = templates.render(PROMPTS, "listwise_user", query=query, passages=lines, n=count)
    return [
        {"role": "system", "content": templates.render(PROMPTS, "system")},
        {"role": "user", "content": user},
    ]


class _Listwise(Reranker):
    """The listwise prompt and its parsing, shared by full, sliding and psc."""

    def __init__(
        self,
        llm: LLM,
        *,
        passage_tokens: int = 100,
        min_passage_tokens: int = 16,
        tokens_per_id: int = 5,
    ) -> None:
        if passage_tokens < min_passage_tokens or min_passage_tokens < 1:
            raise ConfigError("need passage_tokens >= min_passage_tokens >= 1")
        self.llm = llm
        self.passage_tokens = passage_tokens
        self.min_passage_tokens = min_passage_tokens
        self.tokens_per_id = tokens_per_id

    def _call(self, query: str, docs: Sequence[Doc], diag: Diagnostics) -> list[int]:
        """One listwise call over ``docs``; the permutation of ``range(len(docs))``."""
        n = len(docs)
        max_tokens = n * self.tokens_per_id + 8
        budget = self._budget(query, n, max_tokens)
        messages = listwise_messages(query, [self._cut(d.text, budget) for d in docs])
        done = self.llm.generate(messages, max_tokens=max_tokens, temperature=0.0)
        diag.calls += 1
        diag.input_tokens += done.usage.prompt_tokens
        diag.output_tokens += done.usage.completion_tokens
        order, stats = parse_permutation(done.text, n)
        diag.parse.add(stats)
        return order

    def _budget(self, query: str, n: int, max_tokens: int) -> int:
        """Tokens per passage such that the prompt and the answer fit the context."""
        overhead = self.llm.count_tokens(listwise_messages(query, [], n=n))
        room = self.llm.n_ctx - overhead - max_tokens - n * 4  # "[i] " and newline per line
        budget = min(self.passage_tokens, room // n)
        if budget < self.min_passage_tokens:
            raise ContextOverflowError(
                f"{n} candidates do not fit one listwise prompt in n_ctx={self.llm.n_ctx} with "
                f"at least {self.min_passage_tokens} tokens each. Fix: strategy 'sliding' "
                "(windows of 20), fewer candidates (--top-k), or a model with a larger context",
                prompt_tokens=overhead + n * self.min_passage_tokens,
                max_tokens=max_tokens,
                n_ctx=self.llm.n_ctx,
            )
        return budget

    def _cut(self, text: str, budget: int) -> str:
        return cut_text(self.llm, text, budget)


class FullReranker(_Listwise):
    """All candidates in one listwise call."""

    name = "full"

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        return self._call(query, docs, diag), None


class SlidingReranker(_Listwise):
    """RankGPT's sliding window: windows of ``window`` from the bottom up, moving by ``step``."""

    name = "sliding"

    def __init__(
        self, llm: LLM, *, window: int = 20, step: int = 10, passes: int = 1, **options: Any
    ) -> None:
        super().__init__(llm, **options)
        if not 1 <= step <= window or window < 2 or passes < 1:
            raise ConfigError("need window >= 2, 1 <= step <= window and passes >= 1")
        self.window, self.step, self.passes = window, step, passes

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        order = list(range(len(docs)))
        windows = 1 + max(0, -(-(len(docs) - self.window) // self.step))
        total, done = windows * self.passes, 0
        for _ in range(self.passes):
            end = len(order)
            while True:
                start = max(0, end - self.window)
                part = order[start:end]
                local = self._call(query, [docs[i] for i in part], diag)
                order[start:end] = [part[j] for j in local]
                done += 1
                self._step(done, total)
                if start == 0:
                    break
                end -= self.step
        return order, None


class PSCReranker(_Listwise):
    """Permutation self-consistency: ``full`` on ``k`` shuffles (from the canonical order, by
    passage text), aggregated by Borda count."""

    name = "psc"

    def __init__(self, llm: LLM, *, k: int = 5, seed: int = 0, **options: Any) -> None:
        super().__init__(llm, **options)
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self.k, self.seed = k, seed

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        canonical = canonical_order(docs, key=lambda d: (d.text, d.id))
        rng = random.Random(self.seed)
        rankings: list[list[str]] = []
        for _ in range(self.k):
            shown = canonical[:]
            rng.shuffle(shown)
            local = self._call(query, [docs[i] for i in shown], diag)
            self._step(len(rankings) + 1, self.k)
            rankings.append([docs[shown[j]].text + "\x00" + docs[shown[j]].id for j in local])
        keyed = {docs[i].text + "\x00" + docs[i].id: i for i in range(len(docs))}
        return [keyed[key] for key in borda(rankings)], None

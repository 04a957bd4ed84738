"""Pointwise rerankers: each passage is scored alone, so the order of the input never matters.

- ``pointwise`` (models with logits): log P("yes") to "Is the passage relevant?"
  (``prompts/pointwise_user.txt``; a model that renders its chat template gets the rendered
  text followed by ``prompts/pointwise_answer.txt``). The "yes" tokens are those of
  ``prompts/pointwise_yes.json`` that are one token.
- ``biencoder``: cosine similarity of query and passage embeddings (the default embedder).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from memora import templates
from memora.errors import UnsupportedError
from memora.llm.set_prompt import ChatRenderer
from memora.rank.base import PROMPTS, Reranker, cut_text
from memora.rank.types import Diagnostics, Doc

if TYPE_CHECKING:
    from memora.embed import Embedder
    from memora.llm.base import LLM, Prompt

__all__ = ["BiEncoderReranker", "PointwiseReranker", "pointwise_prompt"]


def pointwise_prompt(llm: object, query: str, passage: str) -> Prompt:
    """The question about one passage: the text of ``llm``'s chat template with the answer
    started when ``llm`` renders its template itself, else the chat messages."""
    content = templates.render(PROMPTS, "pointwise_user", query=query, passage=passage)
    messages = [{"role": "user", "content": content}]
    if isinstance(llm, ChatRenderer):
        return llm.render_chat(messages) + templates.render(PROMPTS, "pointwise_answer")
    return messages


class PointwiseReranker(Reranker):
    """Each passage alone: log P(" yes") that it is relevant (needs next-token logits)."""

    name = "pointwise"

    def __init__(self, llm: LLM, *, passage_tokens: int = 200) -> None:
        if not llm.supports_logits:
            raise UnsupportedError(
                f"pointwise needs next-token logits; {type(llm).__name__} has none. Fix: "
                "strategy 'full', 'psc' or 'biencoder'"
            )
        self.llm, self.passage_tokens = llm, passage_tokens
        words = templates.data(PROMPTS, "pointwise_yes")
        yes = [t for w in words if len(t := llm.tokenize(w)) == 1]
        if not yes:
            raise UnsupportedError(f"'yes' is not one token in {llm.name}")
        self._yes = sorted({t[0] for t in yes})

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        scores = []
        for doc in docs:
            passage = cut_text(self.llm, doc.text, self.passage_tokens)
            prompt: Any = pointwise_prompt(self.llm, query, passage)
            logits = self.llm.logits(prompt).astype(np.float64)
            logz = float(np.log(np.exp(logits - logits.max()).sum()) + logits.max())
            scores.append(float(np.logaddexp.reduce(logits[self._yes])) - logz)
            diag.calls += 1
            diag.input_tokens += self.llm.count_tokens(prompt)
            self._step(len(scores), len(docs))
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
        return order, scores


class BiEncoderReranker(Reranker):
    """Cosine similarity of sentence embeddings (default: the bundled MiniLM). A candidate that
    carries a vector of the same embedder (hits of a memory store's search) is not encoded
    again."""

    name = "biencoder"

    def __init__(self, embedder: Embedder | None = None) -> None:
        from memora.embed import load_embedder

        self.embedder = embedder if embedder is not None else load_embedder()

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        name, dim = self.embedder.name, self.embedder.dim
        stored = [d.vector is not None and d.embedder == name and len(d.vector) == dim
                  for d in docs]  # fmt: skip
        fresh = self.embedder.encode(
            [query] + [d.text for d, ok in zip(docs, stored, strict=True) if not ok]
        )
        made = iter(fresh[1:])
        vectors = np.asarray(
            [d.vector if ok else next(made) for d, ok in zip(docs, stored, strict=True)]
        )
        scores = [float(s) for s in vectors.astype(np.float32) @ fresh[0]]
        diag.calls += 1
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
        return order, scores

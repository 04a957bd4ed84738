"""Setwise reranking (local models with KV sequences): order-invariant listwise scoring in one
forward pass.

The candidates are the items of a :class:`SetPrompt`, each with a one-token label inside it;
each candidate scores its label's next-token logit after the question. Labels are given in a
canonical order (by passage text), so the scores are the same, bit for bit, for every input
order.

The prompt is ``prompts/system.txt`` and ``prompts/setwise_user.txt``, whose ``{passages}``
is where the set goes, one ``prompts/setwise_passage.txt`` item per candidate. That item starts
with its label (``Passage {label}:``), and the answer starts with the text before the label
(``Passage``), so the answer's next token is a label. Labels are picked from
``prompts/setwise_labels.json``; calibration uses ``prompts/setwise_content_free.txt`` as
every passage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from memora import templates
from memora.errors import ConfigError, UnsupportedError
from memora.llm.sequence import canonical_order, sequence_model
from memora.llm.set_prompt import SetPrompt
from memora.rank.base import PROMPTS, Reranker, cut_text
from memora.rank.types import Diagnostics, Doc

if TYPE_CHECKING:
    from memora.llm.base import LLM

__all__ = ["SetwiseReranker", "setwise_prompt"]


def _item_head() -> tuple[str, str]:
    """The item template's head (``Passage {label}:``) and the answer's start (``Passage``)."""
    head = templates.template(PROMPTS, "setwise_passage").partition("{passage}")[0].rstrip()
    return head, head.partition("{label}")[0].rstrip()


def setwise_prompt(
    llm: object, query: str, labels: Sequence[str], passages: Sequence[str] | None
) -> SetPrompt:
    """The set prompt in ``llm``'s chat template (see :meth:`SetPrompt.from_chat`): one item
    per label, with its passage (``None``: the content-free passage for calibration)."""
    if passages is None:
        passages = [templates.render(PROMPTS, "setwise_content_free")] * len(labels)
    items = [
        templates.render(PROMPTS, "setwise_passage", label=label, passage=passage) + "\n"
        for label, passage in zip(labels, passages, strict=True)
    ]
    before, _, after = templates.template(PROMPTS, "setwise_user").partition("{passages}")
    values = {"query": query}
    return SetPrompt.from_chat(
        llm,
        templates.fill(before, values),
        items,
        templates.fill(after, values),
        system=templates.render(PROMPTS, "system"),
        answer_prefix=_item_head()[1],
    )


class SetwiseReranker(Reranker):
    """Order-invariant listwise scoring in one pass (see the module docstring)."""

    name = "setwise"

    def __init__(self, llm: LLM, *, passage_tokens: int = 100, calibrate: bool = False) -> None:
        if not llm.supports_sequences:
            raise UnsupportedError(
                f"setwise needs KV sequences (a local llama.cpp model); {type(llm).__name__} "
                "has none. Fix: strategy 'psc' (reduces order dependence) or 'full'"
            )
        sequence_model(llm, "setwise reranking")  # the set decode needs the whole contract
        self.llm, self.passage_tokens, self.calibrate = llm, passage_tokens, calibrate
        self._labels: list[tuple[str, int]] | None = None

    def labels(self) -> list[tuple[str, int]]:
        """(word, token) pairs: words of ``prompts/setwise_labels.json`` (chosen to be one token
        in common tokenizers) that are one token after a space, also inside the item's
        ``"Passage <word>:"`` head (so the answer's next token is it)."""
        if self._labels is None:
            head, answer = _item_head()
            start = self.llm.tokenize(answer)
            found: list[tuple[str, int]] = []
            used: set[int] = set()
            for word in templates.data(PROMPTS, "setwise_labels"):
                tokens = self.llm.tokenize(" " + word)
                if len(tokens) != 1 or tokens[0] in used:
                    continue
                labelled = self.llm.tokenize(templates.fill(head, {"label": word}))
                if labelled[: len(start) + 1] != start + tokens:
                    continue
                used.add(tokens[0])
                found.append((word, tokens[0]))
            self._labels = found
        return self._labels

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        labels = self.labels()
        if len(docs) > len(labels):
            raise ConfigError(
                f"setwise labels {len(labels)} candidates at most with this tokenizer, got "
                f"{len(docs)}. Fix: pre-select with --top-k, or strategy 'pointwise'"
            )
        canonical = canonical_order(docs, key=lambda d: (d.text, d.id))
        label_of = {index: labels[rank] for rank, index in enumerate(canonical)}
        texts = [cut_text(self.llm, d.text, self.passage_tokens) for d in docs]
        words = [label_of[i][0] for i in range(len(docs))]
        logits = self._label_logits(query, words, texts, diag)
        if self.calibrate:  # contextual calibration: the labels' logits with empty passages
            logits = logits - self._label_logits(query, words, None, diag)
        scores = [float(logits[label_of[i][1]]) for i in range(len(docs))]
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], canonical.index(i)))
        return order, scores

    def _label_logits(
        self, query: str, words: list[str], texts: list[str] | None, diag: Diagnostics
    ) -> Any:
        prompt = setwise_prompt(self.llm, query, words, texts)
        diag.calls += 1
        diag.input_tokens += self.llm.count_tokens(prompt)
        return self.llm.logits(prompt).astype(np.float64)

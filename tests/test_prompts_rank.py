"""Golden prompts of the rank package: what each reranker sends for fixed inputs is checked in
under ``tests/golden/rank/`` (``MEMORA_UPDATE_GOLDEN=1`` rewrites them; review the diff).

The prompts are produced through the rerankers themselves, on a scripted model that records
what it is asked to generate from, score or count (no real model is needed to build a prompt),
and by the prompt builders directly, which must give the same text. User text is never
substituted: a query or passage that says ``{query}`` reaches the prompt as written.
"""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from memora.llm.base import Prompt
from memora.llm.set_prompt import SetPrompt
from memora.rank import load_reranker
from memora.rank.listwise import listwise_messages
from memora.rank.pointwise import pointwise_prompt
from memora.rank.setwise import setwise_prompt
from memora.testing import ScriptedLLM

Golden = Callable[[str, object], None]

QUERY = "How do bees turn nectar into honey?"
BRACES = "Write {query}, {passage}, {passages}, {label} or {n} and {{x}} {"
DOCS = [
    ("d1", "Bees fan their wings over the comb until the nectar thickens into honey."),
    ("d2", "The stock market fell on Tuesday after the   bank announcement."),
    ("d3", "Beekeepers harvest honey in late summer and leave some for the winter."),
]


class RecordingLLM(ScriptedLLM):
    """A scripted model that also has next-token logits (all zero) and records every prompt it
    scores (:attr:`scored`) or counts (:attr:`counted`). Tokens are words and punctuation
    marks, with stable ids."""

    supports_logits = True
    n_vocab = 1 << 16

    def __init__(self, replies: Sequence[str] = ("[1]",)) -> None:
        super().__init__(replies)
        self.scored: list[Prompt] = []
        self.counted: list[Prompt] = []

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return [zlib.crc32(t.encode()) % self.n_vocab for t in re.findall(r"\w+|[^\w\s]", text)]

    def count_tokens(self, prompt: Prompt) -> int:
        self.counted.append(prompt)
        if isinstance(prompt, SetPrompt):
            return len(self.tokenize(prompt.concatenated()))
        return super().count_tokens(prompt)

    def logits(self, prompt: Prompt) -> np.ndarray:
        self.scored.append(prompt)
        return np.zeros(self.n_vocab, dtype=np.float32)


class ChatRecordingLLM(RecordingLLM):
    """A :class:`RecordingLLM` that renders a simple chat template itself and claims KV
    sequences (setwise needs them to build its prompt; scoring it needs only :meth:`logits`)."""

    supports_sequences = True

    def render_chat(self, prompt: Prompt, *, add_generation_prompt: bool = True) -> str:
        assert isinstance(prompt, list)
        turns = "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in prompt)
        return turns + ("<|assistant|>\n" if add_generation_prompt else "")

    def sequences(
        self, n_seq: int, *, keep_slots: bool = False
    ) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def continuation_logprobs(
        self, prompt: Prompt, continuations: Sequence[str], *, keep_slots: bool = False
    ) -> list[Any]:
        raise NotImplementedError

    def is_end_of_generation(self, token: int) -> bool:
        raise NotImplementedError

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        raise NotImplementedError


def set_blocks(prompt: Prompt) -> list[dict[str, str]]:
    """A set prompt as ``### part`` blocks for its golden file."""
    assert isinstance(prompt, SetPrompt)
    items = [{"role": "item", "content": item} for item in prompt.items]
    return [{"role": "prefix", "content": prompt.prefix}, *items,
            {"role": "suffix", "content": prompt.suffix}]  # fmt: skip


def scored(strategy: str, llm: RecordingLLM, **options: Any) -> Iterator[Prompt]:
    load_reranker(strategy, llm, **options).rank(QUERY, DOCS)
    yield from llm.scored


def test_listwise_prompt(golden: Golden) -> None:
    llm = RecordingLLM(["[2] > [1] > [3]"])
    load_reranker("full", llm).rank(QUERY, DOCS)
    golden("rank/listwise", llm.prompts[0])
    golden("rank/listwise_budget", llm.counted[0])  # the prompt without passages, counted


def test_setwise_prompt(golden: Golden) -> None:
    (prompt,) = scored("setwise", ChatRecordingLLM())
    golden("rank/setwise", set_blocks(prompt))
    plain, content_free = scored("setwise", ChatRecordingLLM(), calibrate=True)
    assert plain == prompt
    golden("rank/setwise_calibration", set_blocks(content_free))


def test_pointwise_prompt(golden: Golden) -> None:
    rendered = list(scored("pointwise", ChatRecordingLLM()))
    assert len(rendered) == len(DOCS)
    golden("rank/pointwise_rendered", rendered[0])
    messages = list(scored("pointwise", RecordingLLM()))
    golden("rank/pointwise_messages", messages[0])


def test_the_builders_give_the_golden_prompts(golden: Golden) -> None:
    passages = [" ".join(text.split()) for _, text in DOCS]  # as cut to the token budget
    golden("rank/listwise", listwise_messages(QUERY, passages))
    golden("rank/listwise_budget", listwise_messages(QUERY, [], n=3))
    labels, order = ["river", "stone", "apple"], [0, 1, 2]
    prompt = setwise_prompt(ChatRecordingLLM(), QUERY, labels, [passages[i] for i in order])
    golden("rank/setwise", set_blocks(prompt))
    golden("rank/setwise_calibration", set_blocks(setwise_prompt(ChatRecordingLLM(), QUERY,
                                                                 labels, None)))  # fmt: skip
    golden("rank/pointwise_rendered", pointwise_prompt(ChatRecordingLLM(), QUERY, passages[0]))
    golden("rank/pointwise_messages", pointwise_prompt(RecordingLLM(), QUERY, passages[0]))


def test_user_text_with_braces_reaches_every_prompt_verbatim() -> None:
    query, docs = f"{BRACES}?", [("a", f"One {BRACES}."), ("b", "Two {query} {n}.")]
    llm = RecordingLLM()
    load_reranker("full", llm).rank(query, docs)
    (_, user) = llm.prompts[0]  # type: ignore[misc]
    assert user["content"].startswith(f"Query: {query}\n\n[1] One {BRACES}.\n[2] Two {{query}}")
    assert "Rank the 2 passages above" in user["content"]

    llm = ChatRecordingLLM()
    load_reranker("setwise", llm).rank(query, docs)
    (prompt,) = llm.scored
    assert isinstance(prompt, SetPrompt) and f"Query: {query}\n\nPassages:\n" in prompt.prefix
    assert sorted(prompt.items) == [
        f"Passage apple: One {BRACES}.\n",  # labels go in canonical order, by text
        "Passage river: Two {query} {n}.\n",
    ]

    llm = ChatRecordingLLM()
    load_reranker("pointwise", llm).rank(query, docs)
    first = llm.scored[0]
    assert isinstance(first, str) and f"Query: {query}\nPassage: One {BRACES}.\n\n" in first

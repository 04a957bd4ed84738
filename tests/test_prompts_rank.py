"""Golden prompts of the rank package: what each reranker sends for fixed inputs is checked in
under ``tests/golden/rank/`` (``MEMORA_UPDATE_GOLDEN=1`` rewrites them; review the diff).

The prompts are produced through the rerankers themselves, on a scripted model that records
what it is asked to generate from, score or count; no real model is needed to build a prompt.
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
from memora.testing import ScriptedLLM

Golden = Callable[[str, object], None]

QUERY = "How do bees turn nectar into honey?"
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

    def sequences(self, n_seq: int) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def continuation_logprobs(self, prompt: Prompt, continuations: Sequence[str]) -> list[Any]:
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

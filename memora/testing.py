"""Deterministic stand-ins for tests of logic above the model layer (never for the model layer
itself: its tests run the bundled GGUF model)."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Sequence
from typing import Any

from memora.llm.base import LLM, Completion, FinishReason, Prompt, Usage, as_messages
from memora.llm.options import SamplingOptions

__all__ = ["ScriptedLLM"]


class ScriptedLLM(LLM):
    """Answers with the given replies in order (cycling through the last one), streamed word by
    word. Records every prompt it was given in :attr:`prompts`. Tokens are whitespace words.
    ``delay``: seconds to wait before each word (to test what happens while it generates)."""

    supports_raw_json = True

    def __init__(
        self,
        replies: Iterable[str],
        *,
        name: str = "scripted",
        n_ctx: int = 8192,
        delay: float = 0.0,
    ):
        self.replies = list(replies)
        if not self.replies:
            raise ValueError("ScriptedLLM needs at least one reply")
        self.name = name
        self.n_ctx = n_ctx
        self.defaults = SamplingOptions()
        self.prompts: list[Prompt] = []
        self.supports_tokenize = True
        self.delay = delay
        self._next = 0

    def _run(
        self, prompt: Prompt, options: SamplingOptions, schema: dict[str, Any] | None
    ) -> Generator[str, None, Completion]:
        self.prompts.append(prompt)
        reply = self.replies[min(self._next, len(self.replies) - 1)]
        self._next += 1
        words = reply.split(" ")[: options.max_tokens]
        for i, word in enumerate(words):
            if self.delay:
                time.sleep(self.delay)
            yield word if i == 0 else " " + word
        finish: FinishReason = "length" if len(reply.split(" ")) > options.max_tokens else "stop"
        return Completion(
            text=" ".join(words),
            finish_reason=finish,
            usage=Usage(prompt_tokens=self.count_tokens(prompt), completion_tokens=len(words)),
            model=self.name,
        )

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return [hash(word) % 50_000 for word in text.split()]

    def detokenize(self, tokens: Sequence[int]) -> str:
        raise NotImplementedError("ScriptedLLM tokens are one-way hashes")

    def count_tokens(self, prompt: Prompt) -> int:
        if isinstance(prompt, str):
            return len(prompt.split())
        return sum(len(m.content.split()) for m in as_messages(prompt))

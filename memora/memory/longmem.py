"""LongMem-style memory for reading past the context window (after "Augmenting Language Models
with Long-Term Memory", Wang et al., 2023), built from parts that run on a small local model.

- :class:`MemoryBank` (:mod:`memora.memory.bank`): a bounded set of past-context chunks keyed
  by their embeddings; the top-k chunks for a query come back in the order they were read.
- :class:`LongContextReader`: reads text of any length, keeps the most recent tokens in a local
  window and files older chunks into a bank; answers from retrieved chunks + window + question.
- :class:`KVMemoryBank` (:mod:`memora.memory.kvbank`, llama.cpp only): each chunk's keys and
  values are computed once, in its own KV sequence; queries attend to the retrieved chunks'
  cells without evaluating them again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from memora.errors import ConfigError, InvalidOptionError
from memora.llm.base import LLM, Message, Prompt
from memora.memory.bank import (
    DEFAULT_INSTRUCTION,
    Chunk,
    MemoryBank,
    ReaderAnswer,
    ScoredChunk,
    context_text,
    overflow_error,
    question_text,
)
from memora.memory.kvbank import KVMemoryBank

__all__ = [
    "Chunk",
    "KVMemoryBank",
    "LongContextReader",
    "MemoryBank",
    "ReaderAnswer",
    "ScoredChunk",
]


class LongContextReader:
    """Reads text of any length through a model with a bounded context.

    Text is split into the bank's chunks; the most recent ``window_tokens`` tokens' worth of
    chunks stay in a local window, older chunks are filed into the bank as they leave it.
    With a :class:`MemoryBank`, a question is one chat prompt (any backend with a chat
    template): the retrieved chunks in read order, the window, the question; retrieved chunks
    that do not fit ``n_ctx`` are dropped, least similar first. With a :class:`KVMemoryBank`,
    the retrieved chunks are attended from the cache; only window and question are evaluated.
    """

    def __init__(
        self,
        llm: LLM,
        bank: MemoryBank | KVMemoryBank | None = None,
        *,
        window_tokens: int = 512,
        k: int = 4,
        instruction: str = DEFAULT_INSTRUCTION,
    ) -> None:
        if bank is None:
            bank = MemoryBank(tokenizer=llm if llm.supports_tokenize else None)
        kv = isinstance(bank, KVMemoryBank)
        self.memory = bank.memory if isinstance(bank, KVMemoryBank) else bank
        if isinstance(bank, KVMemoryBank) and bank.llm is not llm:  # type: ignore[comparison-overlap]
            raise ConfigError("the KVMemoryBank runs another model; pass the bank's own llm")
        limit = bank.query_reserve if isinstance(bank, KVMemoryBank) else llm.n_ctx
        if k < 1 or not 0 <= window_tokens < limit:
            raise InvalidOptionError(
                f"k must be >= 1 and window_tokens below {limit} (the window is evaluated with "
                f"every question: below {'query_reserve' if kv else 'n_ctx'}), got k={k} and "
                f"window_tokens={window_tokens}"
            )
        if 0 < window_tokens < self.memory.chunk_tokens:
            raise InvalidOptionError(
                f"window_tokens={window_tokens} is below the bank's chunk size: the window holds "
                f"whole chunks and would often be empty. Fix: 0 (no window) or at least "
                f"{self.memory.chunk_tokens}"
            )
        self.llm, self.bank, self.window_tokens, self.k = llm, bank, window_tokens, k
        self.instruction = bank.instruction if isinstance(bank, KVMemoryBank) else instruction
        self._window: deque[tuple[str, int]] = deque()
        self.read_tokens = self._window_size = 0
        self._last = ""  # the last chunk read: what continue_ retrieves for

    @property
    def window(self) -> str:
        """The local window: the most recent chunks, one per line."""
        return "\n".join(text for text, _ in self._window)

    def read(self, text: str) -> list[Chunk]:
        """Read ``text``; return the chunks it pushed out of the window into the bank."""
        return self._push(self.memory.split(text))

    def read_turns(self, turns: Iterable[str | Message]) -> list[Chunk]:
        """Read conversation turns (a message reads ``"role: content"``); chunks stay in a turn."""
        pieces: list[str] = []
        for turn in turns:
            text = f"{turn.role}: {turn.content}" if isinstance(turn, Message) else turn
            pieces += self.memory.split(text)
        return self._push(pieces)

    def _push(self, pieces: list[str]) -> list[Chunk]:
        leaving: list[str] = []
        for piece in pieces:
            n = self.memory.count_tokens(piece)
            self._last, self.read_tokens = piece, self.read_tokens + n
            self._window.append((piece, n))
            self._window_size += n
            while self._window and self._window_size > self.window_tokens:
                old, m = self._window.popleft()
                self._window_size -= m
                leaving.append(old)
        return self.bank.add_chunks(leaving)

    def ask(self, question: str, max_tokens: int = 32) -> ReaderAnswer:
        """Answer from the retrieved chunks, the window and ``question``, greedily."""
        if isinstance(self.bank, KVMemoryBank):
            return self.bank.ask(question, k=self.k, max_tokens=max_tokens, local=self.window)
        text = question_text(question, self.window)
        system = Message("system", self.instruction)
        return self._generate(
            self.bank.retrieve_scored(question, self.k),
            lambda chunks: [system, Message("user", context_text(chunks) + text)],
            max_tokens,
        )

    def continue_(self, max_tokens: int = 32) -> ReaderAnswer:
        """Continue the text read so far, greedily: a raw prompt of the chunks retrieved for the
        last chunk read, then the window (on a KV bank: after its prefix; needs a window). The
        continuation is returned, not read: pass it to :meth:`read` to keep it."""
        if not self._last:
            raise ConfigError("nothing to continue; read some text first")
        query, window = self._last, self.window
        if isinstance(self.bank, KVMemoryBank):
            return self.bank.complete(window, query=query, k=self.k, max_tokens=max_tokens)
        scored = self.bank.retrieve_scored(query, self.k)
        return self._generate(scored, lambda chunks: context_text(chunks, "") + window, max_tokens)

    def _generate(
        self, scored: list[ScoredChunk], build: Callable[[list[Chunk]], Prompt], max_tokens: int
    ) -> ReaderAnswer:
        """Generate from ``build(chunks)``, dropping the least similar chunk while it overflows."""
        while True:
            chunks = sorted((s.chunk for s in scored), key=lambda c: c.index)
            prompt = build(chunks)
            n = self.llm.count_tokens(prompt)
            if n + max_tokens <= self.llm.n_ctx:
                break
            if not scored:
                raise overflow_error(
                    n, "the window and question", max_tokens, self.llm.n_ctx,
                    "a smaller window_tokens, a shorter question or lower max_tokens",
                )  # fmt: skip
            scored = scored[:-1]
        done = self.llm.generate(prompt, max_tokens=max_tokens, temperature=0)
        n, evaluated = done.usage.prompt_tokens, done.usage.evaluated_prompt_tokens
        return ReaderAnswer(done.text.strip(), tuple(chunks), n, evaluated, done.finish_reason)

"""A bank of past-context chunks cached as keys and values in a llama.cpp KV cache: each
chunk's keys and values are computed once, in its own KV sequence; queries attend to the
retrieved chunks' cells without evaluating them again (DESIGN.md, "Set-based prompting on
llama.cpp"). Text-level retrieval re-evaluates the retrieved chunks on every query; the KV bank
evaluates only the question (and window).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from memora.embed import Embedder
from memora.errors import ConfigError, InvalidOptionError, UnsupportedError
from memora.llm.base import LLM, Closable, FinishReason, Message
from memora.llm.sequence import KVDecoder, SequenceModel, Span, sequence_model
from memora.memory.bank import (
    CONTEXT_HEADER,
    DEFAULT_INSTRUCTION,
    Chunk,
    Eviction,
    MemoryBank,
    ReaderAnswer,
    overflow_error,
    question_text,
)

__all__ = ["MAX_KV_CHUNKS", "KVMemoryBank"]

#: llama.cpp allows 256 parallel sequences; sequence 0 is the query's.
MAX_KV_CHUNKS = 254


class KVMemoryBank(Closable):
    """Chunks cached as keys and values in a llama.cpp KV cache, attended without re-evaluation.

    A shared prefix (chat template start, instruction, ``"Context:"``) is decoded once at
    positions 0..P-1 into every sequence; each admitted chunk (text and newline) once into its
    own sequence at P..P+len-1, so it sees only the prefix. A query copies the retrieved
    chunks' cells into sequence 0 (metadata only in a unified cache), decodes the question from
    P + the longest retrieved chunk, generates greedily, then removes sequence 0 past the
    prefix: the cache is left as found and a repeated query gives the same logits bit for bit.
    With one retrieved chunk the attention is that of the plain prompt prefix + chunk +
    question; the logits equal the plain prompt's bit for bit when the cells lie as its would
    (a bank holding only that chunk). Other chunks' cells in between change them slightly (up
    to ~0.65 measured): without flash attention llama.cpp's CPU sums depend on where cells lie.

    The bank holds ``llm.sequences()`` until :meth:`close` and owns the model meanwhile: make no
    other call on it. Capacity: at most ``min(254, (n_ctx - P - query_reserve) //
    chunk_tokens)`` chunks, ``n_ctx`` counted in cells; positions stay below P + chunk_tokens
    + query_reserve, so an ``n_ctx`` past the model's trained window is fine. Retrieval and
    eviction are :attr:`memory`'s (a :class:`MemoryBank`); evicting frees the chunk's cells
    and sequence. Chunks rejected by score eviction are never decoded.
    """

    def __init__(
        self,
        llm: LLM,
        *,
        embedder: Embedder | None = None,
        chunk_tokens: int = 128,
        capacity: int | None = None,
        eviction: Eviction = "fifo",
        instruction: str = DEFAULT_INSTRUCTION,
        query_reserve: int = 256,
    ) -> None:
        if not llm.supports_sequences:
            raise UnsupportedError(
                f"KVMemoryBank needs KV sequences, which {type(llm).__name__} does not have. Fix: "
                "a local llama.cpp model (LlamaCppLLM), or LongContextReader with a MemoryBank "
                "(text-level retrieval, any backend)"
            )
        model = sequence_model(llm, "KVMemoryBank")
        if chunk_tokens < 2 or query_reserve < 1:
            raise InvalidOptionError(
                f"chunk_tokens must be >= 2 (text + newline) and query_reserve >= 1, got "
                f"{chunk_tokens} and {query_reserve}"
            )
        self.llm: SequenceModel = model
        self.instruction, self.query_reserve = instruction, query_reserve
        slot = "\x00memora-longmem\x00"  # where the chunks go in the chat template's text
        rendered = model.render_chat([Message("system", instruction), Message("user", slot)])
        head, _, self._tail = rendered.partition(slot)
        self.prefix = tuple(llm.tokenize(head + CONTEXT_HEADER, special=True))
        self._newline = tuple(llm.tokenize("\n"))
        p = len(self.prefix)
        limit = min(MAX_KV_CHUNKS, (llm.n_ctx - p - query_reserve) // chunk_tokens)
        if limit < 1 or (capacity or 0) > limit:
            raise InvalidOptionError(
                f"n_ctx={llm.n_ctx} cells hold at most {max(limit, 0)} chunks of {chunk_tokens} "
                f"tokens (prefix {p}, query_reserve {query_reserve}), {capacity} asked for. Fix: "
                "a lower capacity or chunk_tokens, or load the model with a larger n_ctx"
            )
        self.capacity = cap = limit if capacity is None else capacity
        self.memory = MemoryBank(
            embedder,
            tokenizer=llm,
            chunk_tokens=chunk_tokens - len(self._newline),
            capacity=cap,
            eviction=eviction,
        )
        self.memory.on_evict.append(self._release)
        # tokens decoded while filing chunks; queries; prompt tokens evaluated by all queries
        self.filed_tokens = self.queries = self.query_tokens = 0
        self._seq: dict[int, int] = {}  # chunk index -> its sequence
        self._tokens: dict[int, tuple[int, ...]] = {}
        self._free_seqs = list(range(cap, 0, -1))
        self._stack = contextlib.ExitStack()
        self._kv: KVDecoder | None = self._stack.enter_context(model.sequences(cap + 1))
        try:
            self._kv.decode([Span(self.prefix, 0, seq_ids=tuple(range(cap + 1)))])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Give the model back (its cache is cleared). Idempotent."""
        self._kv = None
        self._stack.close()

    def _open(self) -> KVDecoder:
        if self._kv is None:
            raise ConfigError("this KVMemoryBank was closed; build a new one")
        return self._kv

    def add_text(self, text: str) -> list[Chunk]:
        return self.add_chunks(self.memory.split(text))

    def add_chunks(
        self, texts: Sequence[str], scores: Sequence[float] | None = None
    ) -> list[Chunk]:
        """File chunks as :meth:`MemoryBank.add_chunks` does, then decode the admitted ones still
        held, each into a free sequence at position P (all in one batch)."""
        kv = self._open()
        spans = []
        admitted = self.memory.add_chunks(texts, scores)
        for chunk in admitted:
            if chunk.index in self.memory:
                tokens = (*self.llm.tokenize(chunk.text), *self._newline)
                seq = self._seq[chunk.index] = self._free_seqs.pop()
                self._tokens[chunk.index] = tokens
                spans.append(Span(tokens, len(self.prefix), seq_ids=(seq,)))
                self.filed_tokens += len(tokens)
        if spans:
            kv.decode(spans)
        return admitted

    def _release(self, chunk: Chunk) -> None:
        seq = self._seq.pop(chunk.index, None)
        if seq is not None:  # None: admitted and evicted within one call, never decoded
            del self._tokens[chunk.index]
            self._open().remove(seq, len(self.prefix), -1)
            self._free_seqs.append(seq)

    def retrieve(self, query: str, k: int = 4) -> list[Chunk]:
        return self.memory.retrieve(query, k)

    def logits(self, question: str, *, k: int = 4, local: str = "") -> np.ndarray:
        """Next-token logits after ``question`` with the retrieved chunks in context."""
        chunks = self.retrieve(question, k)
        return self._query(question_text(question, local) + self._tail, chunks, 0)[0]

    def ask(
        self, question: str, *, k: int = 4, max_tokens: int = 32, local: str = ""
    ) -> ReaderAnswer:
        """Answer ``question`` greedily from the ``k`` retrieved chunks' cached K/V; ``local``
        text (a reader's window) is evaluated with the question."""
        text = question_text(question, local) + self._tail
        return self.complete(text, query=question, k=k, max_tokens=max_tokens)

    def complete(self, text: str, *, query: str, k: int = 4, max_tokens: int = 32) -> ReaderAnswer:
        """Continue ``text``, evaluated after the chunks retrieved for ``query``, greedily."""
        chunks = self.retrieve(query, k)
        _, generated, finish, n_eval = self._query(text, chunks, max_tokens)
        cells = len(self.prefix) + sum(len(self._tokens[c.index]) for c in chunks) + n_eval
        text = self.llm.detokenize(generated).strip()
        return ReaderAnswer(text, tuple(chunks), cells, n_eval, finish)

    def _query(
        self, text: str, chunks: Sequence[Chunk], max_tokens: int
    ) -> tuple[np.ndarray, list[int], FinishReason, int]:
        kv = self._open()
        suffix = self.llm.tokenize(text, special=True)
        if not suffix or max_tokens < 0:
            raise InvalidOptionError("pass some text to evaluate, and max_tokens >= 0")
        if len(suffix) + max_tokens > self.query_reserve:
            raise overflow_error(
                len(suffix), "the query", max_tokens, self.query_reserve,
                "a shorter question or window, lower max_tokens, or a larger query_reserve",
            )  # fmt: skip
        p = len(self.prefix)
        start = p + max((len(self._tokens[c.index]) for c in chunks), default=0)
        generated: list[int] = []
        finish: FinishReason = "length"
        try:
            for chunk in sorted(chunks, key=lambda c: c.index):  # a canonical order
                kv.copy(self._seq[chunk.index], 0, p, p + len(self._tokens[chunk.index]))
            (logits,) = kv.decode([Span(suffix, start, seq_ids=(0,), logits=True)])
            first, pos = logits, start + len(suffix)
            while logits is not None and len(generated) < max_tokens:
                token = int(np.argmax(logits))
                if self.llm.is_end_of_generation(token):
                    finish = "stop"
                    break
                generated.append(token)
                if len(generated) < max_tokens:
                    (logits,) = kv.decode([Span([token], pos, seq_ids=(0,), logits=True)])
                    pos += 1
        finally:
            kv.remove(0, p, -1)
        assert first is not None
        self.queries += 1
        self.query_tokens += len(suffix)
        return first, generated, finish, len(suffix)

    def __len__(self) -> int:
        return len(self.memory)

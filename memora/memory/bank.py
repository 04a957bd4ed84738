"""Banks of past-context chunks for reading past the context window (after LongMem, "Augmenting
Language Models with Long-Term Memory", Wang et al., 2023): the chunk values and
:class:`MemoryBank`, a bounded set of chunks keyed by their embeddings whose top-k chunks for a
query come back in the order they were read. The KV-cache bank is in
:mod:`memora.memory.kvbank`, the reader over both in :mod:`memora.memory.longmem`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from memora import templates
from memora.embed import Embedder, load_embedder
from memora.errors import (
    ContextOverflowError,
    EmptyQueryError,
    InvalidOptionError,
    InvalidRecordError,
)
from memora.llm.base import FinishReason

if TYPE_CHECKING:
    from memora.memory.neural import NeuralMemory

__all__ = [
    "DEFAULT_INSTRUCTION",
    "Chunk",
    "MemoryBank",
    "ReaderAnswer",
    "ScoredChunk",
    "Tokenizer",
    "context_text",
    "overflow_error",
    "question_text",
]

Eviction = Literal["fifo", "score", "surprise"]
_TEXT: dict[str, str] = templates.data("memora.memory", "reader")
DEFAULT_INSTRUCTION = _TEXT["instruction"]
CONTEXT_HEADER = _TEXT["context_header"]

_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*\s+|\n\s*")
_WORD = re.compile(r"\S+")
_CONTENT = re.compile(r"\S(?:.*\S)?", re.S)


class Tokenizer(Protocol):  # what chunking needs; an LLM fits
    def tokenize(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class Chunk:
    """A piece of past context. ``index``: its position among all chunks the bank was offered
    (increasing over the bank's life; gaps where chunks were rejected). ``score``: what score
    eviction compares (novelty when filed, unless the caller gave one)."""

    index: int
    text: str
    n_tokens: int
    score: float


@dataclass(frozen=True)
class ScoredChunk:
    """A retrieved chunk and its cosine similarity to the query."""

    chunk: Chunk
    similarity: float


@dataclass(frozen=True)
class ReaderAnswer:
    """One query's result. ``prompt_tokens``: tokens the answer attended to (KV bank: cells);
    ``evaluated_tokens``: prompt tokens evaluated for this query (not cached, not reused)."""

    text: str
    chunks: tuple[Chunk, ...]
    prompt_tokens: int
    evaluated_tokens: int
    finish_reason: FinishReason


class MemoryBank:
    """A bounded bank of text chunks keyed by unit-length embeddings (exact search in numpy:
    a bank of a few hundred chunks needs no index, and removal is free).

    Args:
        embedder: encodes chunks and queries (default: :func:`memora.embed.load_embedder`).
        tokenizer: counts tokens for the chunk budget, e.g. the LLM that reads the chunks. None
            counts whitespace-separated words instead (a proxy: most models use more tokens).
        chunk_tokens: the most tokens a chunk may have.
        capacity: the most chunks the bank holds.
        eviction: what goes when the bank is full. ``"fifo"``: the oldest chunk. ``"score"``:
            the chunk with the lowest score, the oldest among equals. A chunk's default score is
            its novelty when filed, ``1 - max cosine similarity`` to the chunks in the bank then
            (1.0 for the first; in [0, 2]). ``"surprise"``: like ``"score"``, the score being
            the chunk's normalized surprise to a Titans-like neural memory
            (:class:`memora.memory.neural.NeuralMemory`, auto-association of chunk embeddings)
            that learns from every chunk offered, kept or not: how unlike everything read so
            far the chunk is, not only unlike what the bank holds now. A full bank with score
            or surprise eviction does not admit a chunk scoring below every member (counted
            in :attr:`rejected`).

    ``on_evict`` holds callables run with each evicted chunk (the KV bank frees its cells there).
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        tokenizer: Tokenizer | None = None,
        chunk_tokens: int = 128,
        capacity: int = 256,
        eviction: Eviction = "fifo",
    ) -> None:
        if chunk_tokens < 1:
            raise InvalidOptionError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
        if capacity < 1:
            raise InvalidOptionError(f"capacity must be >= 1 chunk, got {capacity}")
        if eviction not in ("fifo", "score", "surprise"):
            raise InvalidOptionError(
                f"eviction must be 'fifo', 'score' or 'surprise', got {eviction!r}"
            )
        self.embedder = embedder if embedder is not None else load_embedder()
        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.capacity = capacity
        self.eviction: Eviction = eviction
        self.on_evict: list[Callable[[Chunk], None]] = []
        self.added = self.evicted = self.rejected = 0
        self._vectors = np.zeros((capacity, self.embedder.dim), dtype=np.float32)
        self._free = list(range(capacity - 1, -1, -1))  # rows of _vectors
        self._slot: dict[int, int] = {}  # chunk index -> row; insertion order is index order
        self._chunks: dict[int, Chunk] = {}
        self._next_index = 0
        self.neural: NeuralMemory | None = None
        if eviction == "surprise":
            from memora.memory.neural import NeuralMemory

            self.neural = NeuralMemory(self.embedder.dim, embedder=self.embedder.name)

    def count_tokens(self, text: str) -> int:
        return len(text.split()) if self.tokenizer is None else len(self.tokenizer.tokenize(text))

    def split(self, text: str) -> list[str]:
        """``text`` in chunks of at most ``chunk_tokens`` tokens (each counted as tokenized
        alone), each a stripped substring of ``text``: joined, they give ``text`` back up to
        whitespace. Whole sentences are packed greedily; a sentence over the budget is cut
        between words, a word over it between characters (a single character over it, possible
        only with a budget of a token or two, is kept whole)."""
        return self._pack(text, _sentence_spans(text), 0)

    def _pack(self, text: str, spans: list[tuple[int, int]], level: int) -> list[str]:
        out: list[str] = []
        start, end = -1, -1
        for s, e in spans:
            if start >= 0 and self.count_tokens(text[start:e]) <= self.chunk_tokens:
                end = e
                continue
            if start >= 0:
                out.append(text[start:end])
                start = -1
            if level == 2 or self.count_tokens(text[s:e]) <= self.chunk_tokens:
                start, end = s, e
            elif level == 0:
                out += self._pack(text, [m.span() for m in _WORD.finditer(text, s, e)], 1)
            else:
                out += self._pack(text, [(i, i + 1) for i in range(s, e)], 2)
        if start >= 0:
            out.append(text[start:end])
        return out

    def add_text(self, text: str) -> list[Chunk]:
        """Split ``text`` (see :meth:`split`) and file the chunks (see :meth:`add_chunks`)."""
        return self.add_chunks(self.split(text))

    def add_chunks(
        self, texts: Sequence[str], scores: Sequence[float] | None = None
    ) -> list[Chunk]:
        """File ``texts`` as chunks, in order, evicting as needed; ``scores`` replace novelty.

        Returns the admitted chunks (rejected ones are only counted in :attr:`rejected`). When
        one call brings more chunks than the capacity, some of the returned chunks are evicted
        again before it returns; ``chunk.index in bank`` tells.
        """
        if isinstance(texts, str):
            raise InvalidRecordError("add_chunks takes a list of texts; use add_text for one text")
        if scores is not None and len(scores) != len(texts):
            raise InvalidOptionError(f"{len(scores)} scores for {len(texts)} chunks; pass one each")
        sizes = [self.count_tokens(text) for text in texts]
        if any(not text.strip() for text in texts):
            raise InvalidRecordError("a chunk must hold some text; drop empty chunks")
        if any(n > self.chunk_tokens for n in sizes):
            raise InvalidRecordError(
                f"a chunk of {max(sizes)} tokens is over chunk_tokens={self.chunk_tokens}; use "
                "add_text (it splits) or split(text) first"
            )
        if not texts:
            return []
        vectors = self.embedder.encode(list(texts))
        admitted: list[Chunk] = []
        for i, text in enumerate(texts):
            if scores is not None:
                score = float(scores[i])
            elif self.neural is not None:
                score = self.neural.write(vectors[i], vectors[i]).scores[0].normalized
            elif self._slot:
                score = 1.0 - float(np.max(self._vectors[list(self._slot.values())] @ vectors[i]))
            else:
                score = 1.0
            index, self._next_index = self._next_index, self._next_index + 1
            if len(self._slot) >= self.capacity:
                victim = self._victim()
                if self.eviction != "fifo" and score < victim.score:
                    self.rejected += 1
                    continue
                self._evict(victim)
            chunk = Chunk(index, text, sizes[i], score)
            self._slot[index] = slot = self._free.pop()
            self._vectors[slot] = vectors[i]
            self._chunks[index] = chunk
            self.added += 1
            admitted.append(chunk)
        return admitted

    def _victim(self) -> Chunk:
        if self.eviction == "fifo":
            return next(iter(self._chunks.values()))
        # score and surprise: the lowest score, the oldest among equals
        return min(self._chunks.values(), key=lambda c: (c.score, c.index))

    def _evict(self, chunk: Chunk) -> None:
        self._free.append(self._slot.pop(chunk.index))
        del self._chunks[chunk.index]
        self.evicted += 1
        for hook in self.on_evict:
            hook(chunk)

    def retrieve_scored(self, query: str, k: int = 4) -> list[ScoredChunk]:
        """The ``k`` chunks most similar to ``query``, most similar first (ties: oldest)."""
        if not isinstance(query, str) or not query.strip():
            raise EmptyQueryError("the query is empty; pass the text to search for")
        if k < 1:
            raise InvalidOptionError(f"k must be >= 1, got {k}")
        if not self._slot:
            return []
        indices = list(self._slot)
        sims = self._vectors[list(self._slot.values())] @ self.embedder.encode([query])[0]
        order = sorted(range(len(indices)), key=lambda j: (-float(sims[j]), indices[j]))[:k]
        return [ScoredChunk(self._chunks[indices[j]], float(sims[j])) for j in order]

    def retrieve(self, query: str, k: int = 4) -> list[Chunk]:
        """The ``k`` chunks most similar to ``query``, in the order they were read."""
        return sorted((s.chunk for s in self.retrieve_scored(query, k)), key=lambda c: c.index)

    @property
    def chunks(self) -> list[Chunk]:
        """The chunks held, in the order they were read."""
        return list(self._chunks.values())

    def __contains__(self, index: object) -> bool:
        return index in self._chunks

    def __len__(self) -> int:
        return len(self._chunks)


def overflow_error(
    n: int, what: str, max_tokens: int, limit: int, fix: str
) -> ContextOverflowError:
    return ContextOverflowError(
        f"{what} ({n} tokens) and max_tokens={max_tokens} need more than {limit}. Fix: {fix}",
        prompt_tokens=n,
        max_tokens=max_tokens,
        n_ctx=limit,
    )


def context_text(chunks: Sequence[Chunk], header: str = CONTEXT_HEADER) -> str:
    """The retrieved chunks, one per line, after ``header``."""
    return header + "".join(templates.fill(_TEXT["chunk"], {"text": c.text}) for c in chunks)


def question_text(question: str, local: str) -> str:
    if not question.strip():
        raise EmptyQueryError("the question is empty; pass a question")
    before = templates.fill(_TEXT["local"], {"local": local}) if local else ""
    return before + templates.fill(_TEXT["question"], {"question": question})


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, surrounding whitespace left out."""
    ends = [m.end() for m in _BOUNDARY.finditer(text)] + [len(text)]
    found = (_CONTENT.search(text, a, b) for a, b in zip([0, *ends], ends, strict=False))
    return [m.span() for m in found if m is not None]

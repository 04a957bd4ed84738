"""LongMem-style memory for reading past the context window (after "Augmenting Language Models
with Long-Term Memory", Wang et al., 2023), built from parts that run on a small local model.

- :class:`MemoryBank`: a bounded set of past-context chunks keyed by their embeddings; the
  top-k chunks for a query come back in the order they were read.
- :class:`LongContextReader`: reads text of any length, keeps the most recent tokens in a local
  window and files older chunks into a bank; answers from retrieved chunks + window + question.
- :class:`KVMemoryBank` (llama.cpp only): each chunk's keys and values are computed once, in
  its own KV sequence; queries attend to the retrieved chunks' cells without evaluating them
  again (DESIGN.md, "Set-based prompting on llama.cpp"). Text-level retrieval re-evaluates
  the retrieved chunks on every query; the KV bank evaluates only the question (and window).
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from memora.embed import Embedder, load_embedder
from memora.errors import (
    ConfigError,
    ContextOverflowError,
    InvalidOptionError,
    InvalidRecordError,
    UnsupportedError,
)
from memora.llm.base import LLM, Closable, FinishReason, Message, Prompt

if TYPE_CHECKING:
    from memora.llm.llamacpp import KVSequences, LlamaCppLLM
    from memora.memory.neural import NeuralMemory

__all__ = [
    "Chunk",
    "KVMemoryBank",
    "LongContextReader",
    "MemoryBank",
    "ReaderAnswer",
    "ScoredChunk",
]

Eviction = Literal["fifo", "score", "surprise"]
DEFAULT_INSTRUCTION = "Answer the question using the context. Be brief."
#: llama.cpp allows 256 parallel sequences; sequence 0 is the query's.
MAX_KV_CHUNKS = 254

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
            raise InvalidOptionError("the query is empty; pass the text to search for")
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
        from memora.llm.llamacpp import LlamaCppLLM, Span

        if not isinstance(llm, LlamaCppLLM):
            raise UnsupportedError("KVMemoryBank runs on LlamaCppLLM only; load a GGUF model")
        if chunk_tokens < 2 or query_reserve < 1:
            raise InvalidOptionError(
                f"chunk_tokens must be >= 2 (text + newline) and query_reserve >= 1, got "
                f"{chunk_tokens} and {query_reserve}"
            )
        self.llm: LlamaCppLLM = llm
        self.instruction, self.query_reserve = instruction, query_reserve
        slot = "\x00memora-longmem\x00"  # where the chunks go in the chat template's text
        rendered = llm.render_chat([Message("system", instruction), Message("user", slot)])
        head, _, self._tail = rendered.partition(slot)
        self.prefix = tuple(llm.tokenize(head + "Context:\n", special=True))
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
        self._kv: KVSequences | None = self._stack.enter_context(llm.sequences(cap + 1))
        try:
            self._kv.decode([Span(self.prefix, 0, seq_ids=tuple(range(cap + 1)))])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Give the model back (its cache is cleared). Idempotent."""
        self._kv = None
        self._stack.close()

    def _open(self) -> KVSequences:
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
        from memora.llm.llamacpp import Span

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
        return self._query(_question_text(question, local) + self._tail, chunks, 0)[0]

    def ask(
        self, question: str, *, k: int = 4, max_tokens: int = 32, local: str = ""
    ) -> ReaderAnswer:
        """Answer ``question`` greedily from the ``k`` retrieved chunks' cached K/V; ``local``
        text (a reader's window) is evaluated with the question."""
        text = _question_text(question, local) + self._tail
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
        from memora.llm.llamacpp import Span

        kv = self._open()
        suffix = self.llm.tokenize(text, special=True)
        if not suffix or max_tokens < 0:
            raise InvalidOptionError("pass some text to evaluate, and max_tokens >= 0")
        if len(suffix) + max_tokens > self.query_reserve:
            raise _overflow(
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
        if isinstance(bank, KVMemoryBank) and bank.llm is not llm:
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
        text = _question_text(question, self.window)
        system = Message("system", self.instruction)
        return self._generate(
            self.bank.retrieve_scored(question, self.k),
            lambda chunks: [system, Message("user", _context(chunks) + text)],
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
        return self._generate(scored, lambda chunks: _context(chunks, "") + window, max_tokens)

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
                raise _overflow(
                    n, "the window and question", max_tokens, self.llm.n_ctx,
                    "a smaller window_tokens, a shorter question or lower max_tokens",
                )  # fmt: skip
            scored = scored[:-1]
        done = self.llm.generate(prompt, max_tokens=max_tokens, temperature=0)
        n, evaluated = done.usage.prompt_tokens, done.usage.evaluated_prompt_tokens
        return ReaderAnswer(done.text.strip(), tuple(chunks), n, evaluated, done.finish_reason)


def _overflow(n: int, what: str, max_tokens: int, limit: int, fix: str) -> ContextOverflowError:
    return ContextOverflowError(
        f"{what} ({n} tokens) and max_tokens={max_tokens} need more than {limit}. Fix: {fix}",
        prompt_tokens=n,
        max_tokens=max_tokens,
        n_ctx=limit,
    )


def _context(chunks: Sequence[Chunk], header: str = "Context:\n") -> str:
    return header + "".join(c.text + "\n" for c in chunks)


def _question_text(question: str, local: str) -> str:
    if not question.strip():
        raise InvalidOptionError("the question is empty; pass a question")
    return (local + "\n" if local else "") + "Question: " + question


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, surrounding whitespace left out."""
    ends = [m.end() for m in _BOUNDARY.finditer(text)] + [len(text)]
    found = (_CONTENT.search(text, a, b) for a, b in zip([0, *ends], ends, strict=False))
    return [m.span() for m in found if m is not None]

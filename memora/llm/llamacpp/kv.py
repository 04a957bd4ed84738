"""KV sequences on llama.cpp: spans of tokens decoded at explicit positions into chosen
sequences of a unified KV cache, and the set-based decode built on them (DESIGN.md, "Set-based
prompting on llama.cpp").

The set decode:

1. the prefix is decoded once, into every sequence (0..n) at positions 0..P-1;
2. item k (in canonical order, rank r) is decoded into sequence r+1 at positions P..P+len-1:
   every item starts at P and sees only the prefix and itself;
3. each item's cells are given to sequence 0 as well;
4. the suffix is decoded in sequence 0 from position P + max(len): it sees every item.

Items are decoded in a canonical order (:func:`memora.llm.sequence.canonical_order`), so every
permutation of the input runs the very same computation and the logits are identical bit for
bit: the physical order of cells in the cache changes floating-point summation order, so "the
same attention mask" alone would not be enough.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from memora.errors import (
    ConfigError,
    ContextOverflowError,
    GenerationCancelledError,
    InvalidOptionError,
    UnsupportedError,
)
from memora.llm.llamacpp.native import NativeBatch, NativeContext
from memora.llm.sequence import Span, canonical_order

__all__ = [
    "MAX_ITEMS",
    "KVSequences",
    "SetDecoded",
    "SetTokens",
    "Span",
    "check_set",
    "continuation_logprobs",
    "decode_set",
]

#: llama.cpp's limit on parallel sequences is 256; sequence 0 holds the prefix and suffix.
MAX_ITEMS = 255
#: What ``llama_decode`` returns when its abort check stopped it
#: (:meth:`~memora.llm.llamacpp.native.NativeContext.set_abort`).
ABORTED = 2
#: What ``llama_decode`` returns when the KV cache has no room for the batch (nothing of the
#: batch is kept).
NO_ROOM = 1


class KVSequences:
    """Low-level decoding into a unified KV cache; get one from
    :meth:`LlamaCppLLM.sequences <memora.llm.llamacpp.LlamaCppLLM.sequences>`.

    A token attends to the cells that share its sequence id and whose position is not after its
    own. Positions inside each sequence must stay consecutive.
    """

    def __init__(
        self,
        context: NativeContext,
        n_seq: int,
        *,
        cancel: threading.Event | None = None,
        base: int = 0,
        make_room: Callable[[], bool] | None = None,
    ) -> None:
        self._context = context
        self.cancel = cancel  # set: the next decode call raises GenerationCancelledError
        self.n_seq = n_seq
        self.base = base  # sequence id k is the context's sequence base + k
        self.make_room = make_room  # frees cells of other users when the cache is full
        self.n_ctx = context.n_ctx
        self.n_batch = context.n_batch
        self.n_vocab = context.n_vocab
        self.decode_calls = 0
        self._batch = NativeBatch(context.n_batch, n_seq)

    def decode(self, spans: Sequence[Span]) -> list[np.ndarray | None]:
        """Decode ``spans`` in order, packing them into as few decode calls as ``n_batch``
        allows. Returns, for each span, its last-token logits (when asked for) or None."""
        for span in spans:
            self._check(span)
        rows: list[list[np.ndarray]] = [[] for _ in spans]
        pending: list[tuple[int, int]] = []  # (span index, row in the batch) wanting logits
        fill = 0
        for index, span in enumerate(spans):
            last = len(span.tokens) - 1
            seq_ids = tuple(self.base + s for s in span.seq_ids)
            for offset, token in enumerate(span.tokens):
                if fill == self.n_batch:
                    self._flush(fill, pending, rows)
                    fill, pending = 0, []
                wanted = span.logits == "all" or (span.logits is True and offset == last)
                self._batch.set(fill, token, span.pos + offset, seq_ids, wanted)
                if wanted:
                    pending.append((index, fill))
                fill += 1
        if fill:
            self._flush(fill, pending, rows)
        return [
            np.stack(got) if span.logits == "all" else (got[0] if got else None)
            for span, got in zip(spans, rows, strict=True)
        ]

    def copy(self, src: int, dst: int, p0: int = 0, p1: int = -1) -> None:
        """Give the cells of ``src`` at positions [p0, p1) also to ``dst`` (p1=-1: to the end).
        In a unified cache this copies metadata only."""
        self._context.copy(self.base + src, self.base + dst, p0, p1)

    def remove(self, seq: int, p0: int = 0, p1: int = -1) -> None:
        """Drop ``seq``'s cells at positions [p0, p1) (p1=-1: to the end)."""
        if not self._context.remove(self.base + seq, p0, p1):
            raise UnsupportedError("this model's memory cannot remove a partial sequence")

    def close(self) -> None:
        self._batch.close()

    def _check(self, span: Span) -> None:
        if not span.tokens:
            raise ConfigError("a span needs at least one token")
        bad = [s for s in span.seq_ids if not 0 <= s < self.n_seq]
        if bad or not span.seq_ids:
            raise InvalidOptionError(
                f"sequence ids must lie in 0..{self.n_seq - 1}, got {span.seq_ids}"
            )
        if span.pos < 0 or span.pos + len(span.tokens) > self.n_ctx:
            raise ContextOverflowError(
                f"span at positions {span.pos}..{span.pos + len(span.tokens) - 1} does not fit "
                f"the context of {self.n_ctx} tokens; load the model with a larger n_ctx",
                prompt_tokens=span.pos + len(span.tokens),
                max_tokens=0,
                n_ctx=self.n_ctx,
            )

    def _flush(
        self, fill: int, pending: list[tuple[int, int]], rows: list[list[np.ndarray]]
    ) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _cancelled()
        self._batch.use(fill)
        status = self._context.decode(self._batch)
        while status == NO_ROOM and self.make_room is not None and self.make_room():
            status = self._context.decode(self._batch)  # a failed prepare changed nothing
        if status == ABORTED:
            raise _cancelled()
        if status != 0:
            raise ContextOverflowError(
                f"llama_decode returned {status}: no room in the KV cache for {fill} tokens. "
                "Fix: remove sequences you no longer need or load with a larger n_ctx",
                prompt_tokens=fill,
                max_tokens=0,
                n_ctx=self.n_ctx,
            )
        self.decode_calls += 1
        for index, row in pending:
            rows[index].append(self._context.logits(row))


def _cancelled() -> GenerationCancelledError:
    return GenerationCancelledError(
        "the generation was cancelled (its cancel signal was set); nothing of it is kept"
    )


@dataclass(frozen=True)
class SetTokens:
    """A SetPrompt in token ids."""

    prefix: tuple[int, ...]
    items: tuple[tuple[int, ...], ...]
    suffix: tuple[int, ...]

    @property
    def cells(self) -> int:
        """KV cells the prompt occupies (each item's tokens have their own cells)."""
        return len(self.prefix) + sum(len(i) for i in self.items) + len(self.suffix)

    @property
    def end(self) -> int:
        """The position after the suffix: where generation continues."""
        return len(self.prefix) + max(len(i) for i in self.items) + len(self.suffix)


def check_set(tokens: SetTokens, n_ctx: int, max_tokens: int, max_items: int = MAX_ITEMS) -> None:
    if len(tokens.items) > max_items:
        raise InvalidOptionError(
            f"a set holds at most {max_items} items on llama.cpp (one KV sequence each), got "
            f"{len(tokens.items)}. Fix: split the set, or pre-select candidates"
        )
    need = tokens.cells + max_tokens
    if need > n_ctx or tokens.end + max_tokens > n_ctx:
        raise ContextOverflowError(
            f"the set prompt needs {tokens.cells} KV cells (prefix {len(tokens.prefix)}, "
            f"{len(tokens.items)} items {sum(len(i) for i in tokens.items)}, suffix "
            f"{len(tokens.suffix)}) plus max_tokens={max_tokens}, more than the context of "
            f"{n_ctx}. Fix: fewer or shorter items, lower max_tokens, or a larger n_ctx",
            prompt_tokens=tokens.cells,
            max_tokens=max_tokens,
            n_ctx=n_ctx,
        )


@dataclass
class SetDecoded:
    """What :func:`decode_set` leaves behind."""

    suffix_logits: np.ndarray | None
    prefix_logits: np.ndarray | None
    item_logits: list[np.ndarray] | None  # in input order, (len, n_vocab) each
    next_pos: int


def decode_set(kv: KVSequences, tokens: SetTokens, *, item_logits: bool = False) -> SetDecoded:
    """Run the set-based decode on ``kv`` (fresh, with at least ``len(items) + 1``
    sequences). With ``item_logits``, also return the logits after the prefix and after every
    item token (for scoring continuations)."""
    n, p = len(tokens.items), len(tokens.prefix)
    order = canonical_order(tokens.items)
    spans: list[Span] = []
    if p:
        spans.append(Span(tokens.prefix, 0, seq_ids=tuple(range(n + 1)), logits=item_logits))
    for rank, index in enumerate(order):
        logits: bool | Literal["all"] = "all" if item_logits else False
        spans.append(Span(tokens.items[index], p, seq_ids=(rank + 1,), logits=logits))
    decoded = kv.decode(spans)
    prefix_logits = decoded[0] if p and item_logits else None
    by_rank = decoded[1:] if p else decoded
    per_item: list[np.ndarray] | None = None
    if item_logits:
        per_item = [np.empty(0)] * n
        for rank, index in enumerate(order):
            got = by_rank[rank]
            assert got is not None
            per_item[index] = got
    suffix_logits = None
    end = p + max(len(i) for i in tokens.items)
    if tokens.suffix:
        for rank, index in enumerate(order):
            kv.copy(rank + 1, 0, p, p + len(tokens.items[index]))
        (suffix_logits,) = kv.decode([Span(tokens.suffix, end, seq_ids=(0,), logits=True)])
        end += len(tokens.suffix)
    return SetDecoded(suffix_logits, prefix_logits, per_item, end)


def continuation_logprobs(decoded: SetDecoded, tokens: SetTokens) -> list[np.ndarray]:
    """Per-token log-probabilities of each item as a continuation of the prefix."""
    assert decoded.prefix_logits is not None and decoded.item_logits is not None
    first = _log_softmax(decoded.prefix_logits[None, :])[0]
    out = []
    for item, logits in zip(tokens.items, decoded.item_logits, strict=True):
        rows = _log_softmax(logits)
        values = [first[item[0]]] + [rows[j - 1, item[j]] for j in range(1, len(item))]
        out.append(np.array(values, dtype=np.float64))
    return out


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    result: np.ndarray = x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
    return result

"""The set-based decode on a KV cache with sequences (see DESIGN.md, "Set-based prompting").

1. the prefix is decoded once, into every sequence (0..n) at positions 0..P-1;
2. item k (in canonical order, rank r) is decoded into sequence r+1 at positions P..P+len-1:
   every item starts at P and sees only the prefix and itself;
3. each item's cells are given to sequence 0 as well;
4. the suffix is decoded in sequence 0 from position P + max(len): it sees every item.

Items are decoded in a canonical order (sorted by token ids), so every permutation of the input
runs the very same computation and the logits are identical bit for bit: the physical order of
cells in the cache changes floating-point summation order, so "same attention mask" alone would
not be enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memora.errors import ContextOverflowError, InvalidOptionError

__all__ = ["MAX_ITEMS", "SetTokens", "canonical_order", "decode_set"]

#: llama.cpp's limit on parallel sequences is 256; sequence 0 holds the prefix and suffix.
MAX_ITEMS = 255


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


def canonical_order(items: Sequence[Sequence[int]]) -> list[int]:
    """Indices of ``items`` sorted by their token ids (equal items are interchangeable)."""
    return sorted(range(len(items)), key=lambda i: tuple(items[i]))


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


def decode_set(kv: object, tokens: SetTokens, *, item_logits: bool = False) -> SetDecoded:
    """Run the set-based decode on ``kv`` (a fresh :class:`memora.llm.llamacpp.KVSequences`
    with at least ``len(items) + 1`` sequences). With ``item_logits``, also return the logits
    after the prefix and after every item token (for scoring continuations)."""
    from memora.llm.llamacpp import KVSequences, Span

    assert isinstance(kv, KVSequences)
    n = len(tokens.items)
    p = len(tokens.prefix)
    order = canonical_order(tokens.items)
    everyone = tuple(range(n + 1))
    spans: list[Span] = []
    if p:
        spans.append(Span(tokens.prefix, 0, seq_ids=everyone, logits=item_logits))
    for rank, index in enumerate(order):
        spans.append(
            Span(
                tokens.items[index], p, seq_ids=(rank + 1,), logits="all" if item_logits else False
            )
        )
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

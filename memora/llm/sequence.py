"""The KV capability as a contract: what set-based prompting, likelihood choice, the setwise
and pointwise rerankers and the KV memory bank need of a model.

A backend that implements :class:`SequenceModel` sets ``supports_sequences = True`` (the test
suite checks the two agree); callers type against the protocol and get one through
:func:`sequence_model`, which raises a typed error for a model without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

from memora.errors import UnsupportedError
from memora.llm.base import LLM, Prompt

__all__ = ["KVDecoder", "SequenceModel", "Span", "canonical_order", "sequence_model"]

T = TypeVar("T")


@dataclass(frozen=True)
class Span:
    """Tokens to decode into the KV cache.

    The tokens take positions ``pos, pos+1, ...`` in every sequence of ``seq_ids``. With
    ``logits=True`` the next-token logits after the span's last token are returned (shape
    ``(n_vocab,)``); with ``logits="all"``, those after every token (``(len, n_vocab)``).
    """

    tokens: Sequence[int]
    pos: int
    seq_ids: tuple[int, ...] = (0,)
    logits: bool | Literal["all"] = False


class KVDecoder(Protocol):
    """Decoding at explicit positions into the sequences of a unified KV cache."""

    n_seq: int
    n_ctx: int

    def decode(self, spans: Sequence[Span]) -> list[np.ndarray | None]: ...

    def copy(self, src: int, dst: int, p0: int = 0, p1: int = -1) -> None: ...

    def remove(self, seq: int, p0: int = 0, p1: int = -1) -> None: ...


@runtime_checkable
class SequenceModel(Protocol):
    """A model whose KV cache is open to callers: sequences, chat rendering, logits,
    continuation log-probabilities and tokenization with special tokens."""

    name: str
    n_ctx: int
    n_vocab: int

    def sequences(
        self, n_seq: int, *, keep_slots: bool = False
    ) -> contextlib.AbstractContextManager[KVDecoder]:
        """Exclusive use of ``n_seq`` empty sequences of the KV cache (an emptied cache unless
        ``keep_slots``: then the prompt caches of ordinary calls stay beside them)."""
        ...

    def render_chat(self, prompt: Prompt, *, add_generation_prompt: bool = True) -> str: ...

    def logits(self, prompt: Prompt) -> np.ndarray: ...

    def continuation_logprobs(
        self, prompt: Prompt, continuations: Sequence[str], *, keep_slots: bool = False
    ) -> list[np.ndarray]: ...

    def tokenize(self, text: str, *, special: bool = False) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def is_end_of_generation(self, token: int) -> bool: ...

    def prompt_tokens(self, prompt: Prompt) -> list[int]: ...


def sequence_model(llm: LLM, purpose: str) -> SequenceModel:
    """``llm`` as a :class:`SequenceModel`, or :class:`UnsupportedError` naming ``purpose``."""
    if not llm.supports_sequences or not isinstance(llm, SequenceModel):
        raise UnsupportedError(
            f"{purpose} needs a model with KV sequences (supports_sequences), which "
            f"{type(llm).__name__} is not; use a local llama.cpp model (LlamaCppLLM)"
        )
    return llm


def canonical_order(items: Sequence[T], key: Callable[[T], Any] | None = None) -> list[int]:
    """Indices of ``items`` sorted by ``key(item)`` (default: the item itself), ties by index.

    Everything order-invariant in memora starts from this order: the set decode lays out its
    items in it, and label and shuffle schemes number the options by it, so every permutation
    of the input runs the same computation.
    """
    get: Callable[[T], Any] = key if key is not None else (lambda item: item)
    return sorted(range(len(items)), key=lambda i: (get(items[i]), i))

"""Moved: the set-based decode is part of the llama.cpp backend now
(:mod:`memora.llm.llamacpp.kv`); this module re-exports it for existing imports."""

from memora.llm.llamacpp.kv import (
    MAX_ITEMS,
    SetDecoded,
    SetTokens,
    check_set,
    continuation_logprobs,
    decode_set,
)
from memora.llm.sequence import canonical_order

__all__ = [
    "MAX_ITEMS",
    "SetDecoded",
    "SetTokens",
    "canonical_order",
    "check_set",
    "continuation_logprobs",
    "decode_set",
]

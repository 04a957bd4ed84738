"""Grounding: whether a claim a model extracted (a fact about a user, a lorebook entry about a
story) says only what its source said. Small models copy a worked example of their
instructions, or invent: then the content words of their claim do not come from the source.

Words match by prefix (their first five letters), so "travelled" grounds "travels". Common words
(``memory/prompts/common_words.json`` by default) and words of two letters or fewer say nothing
about what a claim is about and are not counted.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from memora import templates

__all__ = ["COMMON_WORDS", "content_words", "grounded", "ungrounded_words"]

#: Words that say nothing about what a claim is about.
COMMON_WORDS: frozenset[str] = frozenset(templates.data("memora.memory", "common_words"))


def content_words(text: str, common: Collection[str] = COMMON_WORDS) -> set[str]:
    """The words of ``text`` (lowercase letters and digits) longer than two characters and not
    in ``common``."""
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in common}


def _found(word: str, source: Collection[str]) -> bool:
    return any(w.startswith(word[:5]) or word.startswith(w[:5]) for w in source)


def ungrounded_words(
    claim: str, source: str, *, known: str = "", common: Collection[str] = COMMON_WORDS
) -> list[str]:
    """The content words of ``claim`` found neither in ``source`` nor in ``known`` (text that
    is already accepted, e.g. the entry a claim updates), sorted."""
    said = content_words(source, common) | content_words(known, common)
    return sorted(w for w in content_words(claim, common) if not _found(w, said))


def grounded(
    claim: str, source: str, *, share: float = 2 / 3, common: Collection[str] = COMMON_WORDS
) -> bool:
    """Whether at least ``share`` of ``claim``'s content words come from ``source`` (a claim
    without content words is not grounded)."""
    words = content_words(claim, common)
    if not words:
        return False
    said = content_words(source, common)
    found = sum(1 for word in words if _found(word, said))
    return found >= len(words) * share - 1e-9  # 2/3 of 6 words is 4, not 3.99...

"""Reading a permutation out of a model's answer, robustly, with counts of what went wrong."""

from __future__ import annotations

import re
import unicodedata

from memora.rank.types import ParseStats

__all__ = ["parse_permutation"]

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_NUMBER = re.compile(r"\d+")


def parse_permutation(answer: str, n: int) -> tuple[list[int], ParseStats]:
    """The 0-based permutation of ``range(n)`` that ``answer`` names with 1-based ids
    (``"[2] > [1] > [3]"``, ``"2, 1, 3"``, unicode digits, think tags stripped).

    Duplicates keep their first place; out-of-range ids are dropped; ids never named are
    appended in input order. The result is always a permutation of ``range(n)``.
    """
    text = _THINK.sub(" ", answer)
    text = "".join(
        str(unicodedata.digit(ch)) if ch.isdigit() and not ch.isascii() else ch for ch in text
    )
    stats = ParseStats()
    seen: list[int] = []
    repeated = bad = False
    for match in _NUMBER.finditer(text):
        value = int(match.group()) - 1
        if not 0 <= value < n:
            bad = True
        elif value in seen:
            repeated = True
        else:
            seen.append(value)
    missing = [i for i in range(n) if i not in seen]
    if not seen:
        stats.wrong_format += 1
    else:
        stats.repetition += repeated
        stats.out_of_range += bad
        stats.missing += bool(missing)
        stats.ok += not (repeated or bad or missing)
    return seen + missing, stats

"""Combining several rankings of the same items into one (for permutation self-consistency)."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from typing import TypeVar

from memora.errors import ConfigError

__all__ = ["borda", "kemeny", "majority"]

T = TypeVar("T", bound=Hashable)

#: Up to this many items :func:`kemeny` searches every order; beyond it, local search.
KEMENY_EXACT_MAX = 7


def _check(rankings: Sequence[Sequence[T]]) -> list[T]:
    if not rankings:
        raise ConfigError("aggregate at least one ranking")
    items = sorted(rankings[0], key=repr)
    for ranking in rankings:
        if sorted(ranking, key=repr) != items or len(set(ranking)) != len(ranking):
            raise ConfigError("every ranking must be a permutation of the same items")
    return items


def majority(votes: Sequence[T]) -> T:
    """The most frequent vote; ties go to the smallest (by ``repr``), whatever the vote order."""
    if not votes:
        raise ConfigError("majority of no votes")
    counts: dict[T, int] = {}
    for vote in votes:
        counts[vote] = counts.get(vote, 0) + 1
    return min(counts, key=lambda v: (-counts[v], repr(v)))


def borda(rankings: Sequence[Sequence[T]]) -> list[T]:
    """Borda count: an item earns ``n - 1 - position`` points in each ranking; ties by ``repr``."""
    items = _check(rankings)
    n = len(items)
    points = {item: 0 for item in items}
    for ranking in rankings:
        for position, item in enumerate(ranking):
            points[item] += n - 1 - position
    return sorted(items, key=lambda item: (-points[item], repr(item)))


def kemeny(rankings: Sequence[Sequence[T]]) -> list[T]:
    """The order that disagrees with the fewest pairwise preferences of the rankings.

    Exact up to :data:`KEMENY_EXACT_MAX` items; beyond, Borda refined by adjacent swaps (a
    local optimum). Ties are broken towards the Borda order.
    """
    items = _check(rankings)
    start = borda(rankings)
    prefer = {(a, b): 0 for a in items for b in items}
    for ranking in rankings:
        for i, a in enumerate(ranking):
            for b in ranking[i + 1 :]:
                prefer[(a, b)] += 1

    def cost(order: Sequence[T]) -> int:
        return sum(prefer[(b, a)] for i, a in enumerate(order) for b in order[i + 1 :])

    if len(items) <= KEMENY_EXACT_MAX:
        best = min(itertools.permutations(start), key=cost)  # first minimum: nearest Borda
        return list(best)
    order = list(start)
    improved = True
    while improved:
        improved = False
        for i in range(len(order) - 1):
            a, b = order[i], order[i + 1]
            if prefer[(b, a)] > prefer[(a, b)]:
                order[i], order[i + 1] = b, a
                improved = True
    return order

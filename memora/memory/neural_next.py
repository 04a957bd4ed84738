"""What-comes-next association over a neural memory (:class:`NextMemory`; importable from
:mod:`memora.memory.neural` too)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from memora.errors import InvalidRecordError
from memora.memory.types import SurpriseScore

__all__ = ["NextMemory"]


class Associative(Protocol):
    """What :class:`NextMemory` needs of a memory (a :class:`~memora.memory.neural.NeuralMemory`
    has it)."""

    def write(self, key: np.ndarray, value: np.ndarray, *, at: float | None = None) -> Any: ...

    def read(self, query: np.ndarray) -> np.ndarray: ...


class NextMemory:
    """What-comes-next association: each observed vector is written as the value of the one
    before it (key ``e_t``, value ``e_{t+1}``); :meth:`predict` reads ``M(e_last)``, an
    estimate of the next item's embedding (e.g. to retrieve what usually follows)."""

    def __init__(self, memory: Associative) -> None:
        self.memory = memory
        self.last: np.ndarray | None = None

    def observe(self, vector: np.ndarray, *, at: float | None = None) -> SurpriseScore | None:
        """Learn ``last -> vector``; returns how surprising ``vector`` was as a successor."""
        vec = np.asarray(vector, dtype=np.float32)
        score = None
        if self.last is not None:
            score = self.memory.write(self.last, vec, at=at).scores[0]
        self.last = vec
        return score

    def predict(self, vector: np.ndarray | None = None) -> np.ndarray:
        """``M(vector)`` (default: the last observed vector)."""
        key = self.last if vector is None else vector
        if key is None:
            raise InvalidRecordError("nothing observed yet; observe() a vector first")
        return self.memory.read(key)

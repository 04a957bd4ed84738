"""A weight matrix of the neural memory, learned online in factored form
(:class:`~memora.memory.neural.NeuralMemory`).

A write's gradient for a weight matrix is low-rank: ``X^T G``, one row of ``X`` and ``G`` per
pair the write learns from (one pair: an outer product). The memory's update

    momentum' = eta * momentum - c * X^T G
    delta'    = keep * delta + momentum'

is kept as dense parts and the factors of the recent writes:

    momentum = mm * M + U^T diag(p) V
    delta    = dd * D + dm * M + U^T diag(q) V

so that a write costs a few scalar updates and appends ``X`` and ``G`` as rows of ``U`` and
``V``, instead of rewriting the dense arrays (about 0.46 MB at the default width) several
times. Once ``U`` holds :data:`FOLD_ROWS` rows, they are folded into ``D`` and ``M`` (two
products of rank :data:`FOLD_ROWS`). ``x @ (M_0 + delta)`` is computed from the parts without
forming ``delta``.

A :class:`Factored` is immutable: a write returns a new one and shares what did not change,
so copies of a memory cost nothing. The same writes in the same order give the same parts, bit
for bit (the fold points depend on the rows written only).
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = [
    "FOLD_ROWS",
    "ONE_BLAS_THREAD",
    "Factored",
    "Factors",
    "gradient_norm2",
    "init_params",
    "one_blas_thread",
]

#: Rows of factors kept before they are folded into the dense parts (32 was the fastest of
#: 8, 16, 32, 64 and 128 for one-pair writes at the default width).
FOLD_ROWS = 32

_F32 = np.float32


_P = ParamSpec("_P")
_R = TypeVar("_R")


class _OneThread:
    """numpy's BLAS limited to one thread while any thread is inside (counted, so that
    overlapping calls from several threads restore the setting once, at the last exit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._blas: Any = None
        self._limit: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                if self._blas is None:
                    self._blas = ThreadpoolController().select(user_api="blas")
                self._limit = self._blas.limit(limits=1)
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._limit is not None:
                self._limit.restore_original_limits()
                self._limit = None


#: ``with ONE_BLAS_THREAD:`` runs a block with numpy's BLAS on one thread (see
#: :func:`one_blas_thread`).
ONE_BLAS_THREAD = _OneThread()


def one_blas_thread(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` with numpy's BLAS on one thread. The memory's products are small; a BLAS that
    threads them (a windowed write, a fold) leaves its threads spinning afterwards, and on a
    machine with few cores they starve what runs next (an embedder's threads: 3.8x slower
    ``add`` measured with ``NeuralConfig(window=8)`` on 2 cores)."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with ONE_BLAS_THREAD:
            return fn(*args, **kwargs)

    return wrapper


class _Rows:
    """Room for the factor rows of a fold interval, shared by the matrices that hold a prefix
    of them; rows are only ever appended after the last one written."""

    def __init__(self, capacity: int, rows_in: int, rows_out: int) -> None:
        self.u = np.empty((capacity, rows_in), dtype=_F32)
        self.v = np.empty((capacity, rows_out), dtype=_F32)
        self.filled = 0
        self._lock = threading.Lock()

    def append(self, n: int, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows ``x`` and ``g`` after the first ``n``: the first ``n + len(x)`` rows, or None
        when rows after ``n`` were already written (another copy's) or there is no room."""
        end = n + len(x)
        with self._lock:
            if self.filled != n or end > len(self.u):
                return None
            self.u[n:end], self.v[n:end] = x, g
            self.filled = end
        return self.u[:end], self.v[:end]


@dataclass(frozen=True)
class Factored:
    """The weights ``M_0 + delta`` of one matrix, and its momentum (see the module docstring).
    ``stack`` holds ``M_0``, ``D`` and ``M`` side by side, ``(in, 3 * out)``, so that one
    product with it gives all three (never changed in place)."""

    stack: np.ndarray
    dd: float = 1.0
    dm: float = 0.0
    mm: float = 1.0
    u: np.ndarray | None = None  # (rows, in)
    v: np.ndarray | None = None  # (rows, out)
    p: np.ndarray | None = None  # (rows,): the factors' share of the momentum
    q: np.ndarray | None = None  # (rows,): their share of the delta
    buffer: _Rows | None = field(default=None, compare=False, repr=False)  # u and v's rows

    @classmethod
    def zeros(cls, base: np.ndarray) -> Factored:
        """Nothing learned yet over the initialization ``base``."""
        return cls.of(base, np.zeros_like(base), np.zeros_like(base))

    @classmethod
    def of(
        cls, base: np.ndarray, dense: np.ndarray, mom: np.ndarray,
        dd: float = 1.0, dm: float = 0.0, mm: float = 1.0,
    ) -> Factored:  # fmt: skip
        return cls(np.concatenate([base, dense, mom], axis=1).astype(_F32, copy=False), dd, dm, mm)

    @property
    def out(self) -> int:
        return int(self.stack.shape[1]) // 3

    @property
    def base(self) -> np.ndarray:
        return self.stack[:, : self.out]

    @property
    def dense(self) -> np.ndarray:
        return self.stack[:, self.out : 2 * self.out]

    @property
    def mom(self) -> np.ndarray:
        return self.stack[:, 2 * self.out :]

    @property
    def rows(self) -> int:
        return 0 if self.u is None else len(self.u)

    def delta(self) -> np.ndarray:
        """The learned delta as one dense matrix (a new array)."""
        out = _F32(self.dd) * self.dense
        if self.dm:
            out += _F32(self.dm) * self.mom
        if self.u is not None and self.v is not None and self.q is not None:
            out += (self.u.T * self.q) @ self.v
        return out

    def momentum(self) -> np.ndarray:
        """The momentum as one dense matrix (a new array)."""
        out = _F32(self.mm) * self.mom
        if self.u is not None and self.v is not None and self.p is not None:
            out += (self.u.T * self.p) @ self.v
        return out

    def times(self, x: np.ndarray) -> np.ndarray:
        """``x @ (M_0 + delta)``."""
        parts = (x @ self.stack).reshape(len(x), 3, self.out)
        y: np.ndarray = np.array([1.0, self.dd, self.dm], dtype=_F32) @ parts
        if self.u is not None and self.v is not None and self.q is not None:
            y += ((x @ self.u.T) * self.q) @ self.v
        return y

    def times_t(self, g: np.ndarray) -> np.ndarray:
        """``g @ (M_0 + delta).T``."""
        coef = np.array([1.0, self.dd, self.dm], dtype=_F32)
        y: np.ndarray = (g[:, None, :] * coef[:, None]).reshape(len(g), -1) @ self.stack.T
        if self.u is not None and self.v is not None and self.q is not None:
            y += ((g @ self.v.T) * self.q) @ self.u
        return y

    def step(self, x: np.ndarray, g: np.ndarray, c: float, eta: float, keep: float) -> Factored:
        """The matrix after a write whose gradient is ``x.T @ g``, at step size ``c``, momentum
        ``eta`` and retention ``keep`` (``1 - alpha``)."""
        mm = eta * self.mm
        new = np.full(len(x), -c, dtype=_F32)
        if self.p is None or self.q is None:
            p, q = new, new.copy()
        else:
            p = np.concatenate([_F32(eta) * self.p, new])
            q = np.concatenate([_F32(keep) * self.q, np.zeros(len(x), dtype=_F32)]) + p
        rows, (u, v) = self._rows_with(x, g)
        out = Factored(self.stack, keep * self.dd, keep * self.dm + mm, mm, u, v, p, q, rows)
        return out.folded() if out.rows >= FOLD_ROWS else out

    def _rows_with(self, x: np.ndarray, g: np.ndarray) -> tuple[_Rows, tuple[np.ndarray, ...]]:
        """The factor rows with ``x`` and ``g`` appended: in place in the buffer when this
        matrix holds its last rows (the rows it sees never change), else in a new buffer."""
        n, buffer = self.rows, self.buffer
        if buffer is not None:
            held = buffer.append(n, x, g)
            if held is not None:
                return buffer, held
        buffer = _Rows(max(FOLD_ROWS, n + len(x)), self.stack.shape[0], self.out)
        if self.u is not None and self.v is not None:
            buffer.append(0, self.u, self.v)
        held = buffer.append(n, x, g)
        assert held is not None
        return buffer, held

    @one_blas_thread
    def folded(self) -> Factored:
        """The same matrix with its factors folded into the dense parts."""
        if self.u is None or self.v is None or self.p is None or self.q is None:
            return self
        ut = self.u.T
        mom = _F32(self.mm) * self.mom + (ut * self.p) @ self.v
        dense = _F32(self.dd) * self.dense + (ut * self.q) @ self.v
        if self.dm:
            dense += _F32(self.dm) * self.mom
        return Factored.of(self.base, dense, mom)

    # -- persistence ---------------------------------------------------------------------

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The parts as named arrays, the scalars as float64 (:meth:`load` reads them)."""
        out = {
            f"fdense_{name}": self.dense,
            f"fmom_{name}": self.mom,
            f"fscal_{name}": np.array([self.dd, self.dm, self.mm], dtype=np.float64),
        }
        if self.u is not None and self.v is not None and self.p is not None and self.q is not None:
            out.update({f"fu_{name}": self.u, f"fv_{name}": self.v,
                        f"fp_{name}": self.p, f"fq_{name}": self.q})  # fmt: skip
        return out

    @classmethod
    def load(cls, data: Mapping[str, np.ndarray], name: str, base: np.ndarray) -> Factored:
        """The matrix saved by :meth:`arrays` over the initialization ``base``, or from a state
        saved before the factored form (``delta_*`` and ``momentum_*``): no factors."""
        files = set(getattr(data, "files", data))
        if f"fdense_{name}" not in files:
            return cls.of(base, data[f"delta_{name}"], data[f"momentum_{name}"])
        dd, dm, mm = (float(s) for s in data[f"fscal_{name}"])
        matrix = cls.of(base, data[f"fdense_{name}"], data[f"fmom_{name}"], dd, dm, mm)
        if f"fu_{name}" not in files:
            return matrix
        u, v = data[f"fu_{name}"].astype(_F32), data[f"fv_{name}"].astype(_F32)
        p, q = data[f"fp_{name}"].astype(_F32), data[f"fq_{name}"].astype(_F32)
        return replace(matrix, u=u, v=v, p=p, q=q)

    @property
    def nbytes(self) -> int:
        """Bytes this matrix's learned state holds (``M_0``, the same in every memory, not
        counted)."""
        parts = (self.u, self.v, self.p, self.q)
        return self.dense.nbytes * 2 + sum(a.nbytes for a in parts if a is not None)


Factors = dict[str, tuple[np.ndarray, np.ndarray]]


def gradient_norm2(factors: Factors, biases: dict[str, np.ndarray]) -> float:
    """The squared norm of the whole gradient: ``||x.T @ g||^2`` is
    ``sum((x @ x.T) * (g @ g.T))``, no product formed."""
    total = sum(float(np.dot(g, g)) for g in biases.values())
    for x, g in factors.values():
        if len(x) == 1:  # one pair: an outer product, whose norm is the product of two
            total += float(np.dot(x[0], x[0])) * float(np.dot(g[0], g[0]))
            continue
        x64, g64 = x.astype(np.float64), g.astype(np.float64)
        total += float(((x64 @ x64.T) * (g64 @ g64.T)).sum())
    return total


def init_params(dim: int, hidden: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w1": (rng.standard_normal((dim, hidden)) / math.sqrt(dim)).astype(np.float32),
        "b1": np.zeros(hidden, dtype=np.float32),
        "w2": (rng.standard_normal((hidden, hidden)) / math.sqrt(hidden)).astype(np.float32),
        "b2": np.zeros(hidden, dtype=np.float32),
        "w3": np.zeros((hidden, dim), dtype=np.float32),
        "b3": np.zeros(dim, dtype=np.float32),
    }

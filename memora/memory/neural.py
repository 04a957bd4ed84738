"""A Titans-like neural memory over frozen sentence embeddings (Behrouz et al., 2025).

An associative memory ``M`` (a small MLP) maps key vectors to value vectors and is trained
*while it is used*: every write is one online gradient step on ``l = ||M(k) - v||^2``.

- **surprise**: the gradient of ``l``; per item we report ``||dl/dM(k)|| = 2 ||M(k) - v||``
  (how far the memory's prediction is from what arrived) and its ratio to the running mean
  (the *normalized* surprise, ~1 for an ordinary item).
- **momentum**: ``S_t = eta * S_{t-1} - theta_t * grad l``, with ``theta_t`` growing with the
  normalized surprise (``theta_t = lr * 2 s / (1 + s)``, between 0 and ``2 lr``).
- **forgetting**: ``M_t = (1 - alpha_t) * M_{t-1} + S_t`` applied to what was *learned*: the
  weights are ``M_0 + D`` with ``M_0`` a fixed random initialization (from the seed) and
  ``D_t = (1 - alpha_t) D_{t-1} + S_t``, so forgetting returns the memory to its prior instead
  of collapsing the network to zero. ``alpha_t = 1 - 0.5 ** (elapsed / half_life)``, elapsed
  in writes (``forget_half_life_steps``) or in seconds (``forget_half_life_seconds``).

The network: layer norm of the key, a linear layer, a residual SiLU block, a linear readout
(starting at zero: an empty memory reads zeros); numpy float32 on the CPU, the weight matrices
learned in factored form (:mod:`memora.memory.neural_factored`). The same writes in the same
order give the same state, bit for bit. Uses: a surprise score per item (the store flags
surprising items salient), cue-to-content association (``read(q)``; the store fuses candidates
from ``q`` and ``M(q)``), what-comes-next association (:class:`NextMemory`).
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

import memora.memory.neural_designs as designs
from memora.errors import ConfigError, InvalidRecordError, StoreError
from memora.memory.neural_config import NeuralConfig
from memora.memory.neural_factored import (
    ONE_BLAS_THREAD,
    Factored,
    Factors,
    gradient_norm2,
    init_params,
)
from memora.memory.neural_next import NextMemory
from memora.memory.types import SurpriseScore

__all__ = ["NeuralConfig", "NeuralMemory", "NextMemory", "SurpriseScore", "WriteResult"]

_PARAMS = ("w1", "b1", "w2", "b2", "w3", "b3")
_MATRICES = ("w1", "w2", "w3")  # learned in factored form (:mod:`neural_factored`)
_BIASES = ("b1", "b2", "b3")
_LN_EPS = 1e-5


@dataclass(frozen=True)
class WriteResult:
    """One write: the items' surprise (measured before the update) and the step taken."""

    scores: tuple[SurpriseScore, ...]
    step: int
    theta: float
    alpha: float


@dataclass
class _State:
    mats: dict[str, Factored]  # the weight matrices' learned delta and momentum
    delta: dict[str, np.ndarray]  # the biases'
    momentum: dict[str, np.ndarray]
    step: int = 0
    writes: int = 0
    cued: int = 0  # pairs written with a key other than their value (a question, a cue)
    mean_loss: float | None = None
    last_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    slow: dict[str, np.ndarray] = field(default_factory=dict)  # slow weights (slow_lr > 0)
    ring: tuple[np.ndarray, np.ndarray] | None = None  # the last pairs (window > 1)


class NeuralMemory:
    """An online-trained associative memory from ``dim``-vectors to ``dim``-vectors.

    Args:
        dim: key and value width (the embedder's).
        config: hyper-parameters (:class:`NeuralConfig`).
        embedder: the id of the embedding space, stored with the state; a state is only ever
            loaded into a memory of the same space.
    """

    def __init__(self, dim: int, config: NeuralConfig | None = None, *, embedder: str = "") -> None:
        if dim < 1:
            raise ConfigError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.config = config or NeuralConfig()
        self.embedder = embedder
        self._base = init_params(dim, self.config.hidden, self.config.seed)
        zeros = {name: np.zeros_like(self._base[name]) for name in _BIASES}
        self._state = _State(
            mats={n: Factored.zeros(self._base[n]) for n in _MATRICES},
            delta=zeros,
            momentum={n: z.copy() for n, z in zeros.items()},
        )
        self._cached: tuple[list[Any], dict[str, np.ndarray]] | None = None
        if self.config.slow_lr > 0:
            self._state.slow = {n: np.zeros_like(p) for n, p in self._base.items()}

    # -- the three operations ------------------------------------------------------------

    def read(self, query: np.ndarray) -> np.ndarray:
        """``M(q)``: the value the memory associates with ``query`` (one vector or a batch)."""
        x, single = self._keys(query, "query")
        if single:  # products of one row: BLAS does not thread them
            y: np.ndarray = self._forward(x)[-1]
        else:
            with ONE_BLAS_THREAD:
                y = self._forward(x)[-1]
        return y[0] if single else y

    def surprise(self, key: np.ndarray, value: np.ndarray) -> list[SurpriseScore]:
        """The surprise of each (key, value) pair, without learning anything."""
        k, v = self._pairs(key, value)
        return self._scores(((self._forward(k)[-1] - v) ** 2).sum(axis=1))

    def write(self, key: np.ndarray, value: np.ndarray, *, at: float | None = None) -> WriteResult:
        """Learn the pairs: one momentum step on the batch's mean loss (a batch is one step,
        like a chunk in Titans' parallel training). ``at`` is the write time (seconds), used
        by time-based forgetting and recorded for replay."""
        k, v = self._pairs(key, value)
        if len(k) == 1 and self.config.window == 1:  # products of one row: BLAS never threads
            return self._write(k, v, at)
        with ONE_BLAS_THREAD:
            return self._write(k, v, at)

    def _write(self, k: np.ndarray, v: np.ndarray, at: float | None) -> WriteResult:
        st, cfg = self._state, self.config
        cache = self._forward(k, factored=True)
        err = cache[-1] - v
        losses = (err**2).sum(axis=1)
        scores = self._scores(losses)
        if designs.plain(cfg):
            factors, grads = self._backward(cache, err)
        else:
            factors, grads = self._design_grads(k, v)
        # clipping scales the step sizes, not the gradient (no clipped copy of it)
        norm = math.sqrt(gradient_norm2(factors, grads))
        clip = cfg.max_grad_norm / norm if norm > cfg.max_grad_norm else 1.0
        s = math.fsum(score.normalized for score in scores) / len(scores)
        theta = cfg.lr * 2.0 * s / (1.0 + s)
        at = time.time() if at is None else float(at)
        if cfg.forget_half_life_seconds is not None:
            elapsed = 0.0 if st.last_at is None else max(0.0, at - st.last_at)
            alpha = 1.0 - 0.5 ** (elapsed / cfg.forget_half_life_seconds)
        else:
            alpha = 1.0 - 0.5 ** (len(k) / cfg.forget_half_life_steps)
        st.mats = {n: st.mats[n].step(x, g, theta * clip, cfg.momentum, 1.0 - alpha)
                   for n, (x, g) in factors.items()}  # fmt: skip
        eta, th, keep = np.float32(cfg.momentum), np.float32(theta * clip), np.float32(1.0 - alpha)
        for name in _BIASES:  # new arrays, never in place: copy() shares the old ones
            momentum = eta * st.momentum[name]
            momentum -= th * grads[name]
            delta = keep * st.delta[name]
            delta += momentum
            st.momentum[name], st.delta[name] = momentum, delta
        if st.slow:
            slow_alpha = 1.0 - 0.5 ** (len(k) / cfg.slow_half_life_steps)
            rate = theta * clip * cfg.slow_lr / cfg.lr
            dense = {n: (x.T @ g).astype(np.float32) for n, (x, g) in factors.items()}
            st.slow = designs.slow_step(st.slow, grads | dense, rate, slow_alpha)
        st.ring = designs.ring_after(st.ring, k, v, cfg.window)
        batch_loss = float(losses.sum()) / len(losses)
        st.mean_loss = (
            batch_loss
            if st.mean_loss is None
            else cfg.loss_decay * st.mean_loss + (1 - cfg.loss_decay) * batch_loss
        )
        st.step += 1
        st.writes += len(k)
        st.cued += int(np.any(k != v, axis=1).sum())
        st.last_at = at
        return WriteResult(scores=tuple(scores), step=st.step, theta=theta, alpha=alpha)

    # -- state ---------------------------------------------------------------------------

    @property
    def step(self) -> int:
        """Write steps taken so far."""
        return self._state.step

    @property
    def writes(self) -> int:
        """Pairs written so far."""
        return self._state.writes

    @property
    def cued(self) -> int:
        """Pairs written with a key other than their value (``add(text, cue=...)``)."""
        return self._state.cued

    @property
    def nbytes(self) -> int:
        """Bytes of state that persist (learned weights, momentum and the designs' state)."""
        st = self._state
        extra = designs.design_arrays(st.slow, st.ring).values()
        return (sum(m.nbytes for m in st.mats.values()) + sum(a.nbytes for a in extra)
                + sum(a.nbytes for a in st.delta.values()) * 2)  # fmt: skip

    def weights(self) -> dict[str, np.ndarray]:
        """The current weights ``M_0 + D`` (``+ D_slow`` with slow weights; copies)."""
        st, base = self._state, self._base
        out = {n: base[n] + (st.mats[n].delta() if n in st.mats else st.delta[n]) for n in _PARAMS}
        if st.slow:
            out = {n: w + st.slow[n] for n, w in out.items()}
        return out

    def state_bytes(self) -> bytes:
        """The persistent state: config, counters and arrays, as one ``.npz`` blob."""
        st = self._state
        meta = {
            "dim": self.dim,
            "embedder": self.embedder,
            "config": asdict(self.config),
            "step": st.step,
            "writes": st.writes,
            "cued": st.cued,
            "mean_loss": st.mean_loss,
            "last_at": st.last_at,
        }
        arrays = {f"delta_{n}": a for n, a in st.delta.items()}
        arrays.update({f"momentum_{n}": a for n, a in st.momentum.items()})
        for name, matrix in st.mats.items():
            arrays.update(matrix.arrays(name))
        arrays.update(designs.design_arrays(st.slow, st.ring))
        buffer = io.BytesIO()
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> NeuralMemory:
        """The memory saved by :meth:`state_bytes`."""
        try:
            with np.load(io.BytesIO(blob)) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                memory = cls(
                    int(meta["dim"]), NeuralConfig(**meta["config"]), embedder=meta["embedder"]
                )
                st = memory._state
                for name in _BIASES:
                    st.delta[name] = data[f"delta_{name}"].astype(np.float32)
                    st.momentum[name] = data[f"momentum_{name}"].astype(np.float32)
                st.mats = {n: Factored.load(data, n, memory._base[n]) for n in _MATRICES}
                shapes = {n: a.shape for n, a in memory._base.items()}
                slow_on = memory.config.slow_lr > 0
                st.slow, st.ring = designs.load_design_arrays(data, _PARAMS, slow_on, shapes)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"the neural memory state is unreadable ({exc}). Fix: rebuild it from its "
                "write log (MemoryStore.rebuild_neural)"
            ) from exc
        st.step, st.writes = int(meta["step"]), int(meta["writes"])
        st.cued = int(meta.get("cued", 0))  # not counted before it was saved
        st.mean_loss, st.last_at = meta["mean_loss"], meta["last_at"]
        return memory

    def copy(self) -> NeuralMemory:
        """An independent memory in the same state. Cheap: it shares the arrays, which are
        never changed in place (a write binds new ones), and the fixed initialization."""
        other = NeuralMemory.__new__(NeuralMemory)
        other.__dict__.update(self.__dict__)  # the config, M_0 and the weights cache, shared
        st = self._state
        other._state = replace(st, mats=dict(st.mats), delta=dict(st.delta),
                               momentum=dict(st.momentum), extra=dict(st.extra),
                               slow=dict(st.slow))  # fmt: skip
        return other

    def fresh(self) -> NeuralMemory:
        """An empty memory with the same dimension, config and embedder."""
        return NeuralMemory(self.dim, self.config, embedder=self.embedder)

    # -- internals -----------------------------------------------------------------------

    def _keys(self, data: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
        x = np.asarray(data, dtype=np.float32)
        single = x.ndim == 1
        if single:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dim or x.shape[0] == 0:
            raise InvalidRecordError(
                f"{what} must be a vector of {self.dim} or a non-empty (n, {self.dim}) batch, "
                f"got shape {np.shape(data)}. Fix: embed with the memory's embedder"
            )
        if not np.isfinite(x).all():
            raise InvalidRecordError(f"{what} holds NaN or infinite values")
        return x, single

    def _pairs(self, key: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (k, _), (v, _) = self._keys(key, "key"), self._keys(value, "value")
        if len(k) != len(v):
            raise InvalidRecordError(f"{len(k)} keys but {len(v)} values; pass them in pairs")
        return k, v

    def _scores(self, losses: np.ndarray) -> list[SurpriseScore]:
        mean = self._state.mean_loss
        out = []
        for loss in losses.tolist():
            normalized = 1.0 if mean is None or mean <= 0 else loss / mean
            out.append(
                SurpriseScore(
                    surprise=2.0 * math.sqrt(loss),
                    loss=loss,
                    normalized=normalized,
                    salient=mean is not None and normalized >= self.config.salient_threshold,
                )
            )
        return out

    def _current(self) -> dict[str, np.ndarray]:
        """:meth:`weights`, computed once per state (its arrays are never changed in place,
        so the same arrays mean the same weights); read-only."""
        st = self._state
        parts = [st.mats[n] for n in _MATRICES] + [st.delta[n] for n in _BIASES]
        parts += [st.slow[n] for n in st.slow]
        cached = self._cached
        if (
            cached is None
            or len(cached[0]) != len(parts)
            or any(a is not b for a, b in zip(cached[0], parts, strict=True))
        ):
            cached = self._cached = (parts, self.weights())
        return cached[1]

    def _forward(self, x: np.ndarray, *, factored: bool = False) -> list[Any]:
        """The network on ``x``, and what the backward pass needs. ``factored``: from the
        factored weights (a write: no dense weights formed), else from :meth:`_current`."""
        st, base = self._state, self._base
        if factored:
            slow = st.slow
            w = {n: base[n] + st.delta[n] + (slow[n] if slow else 0) for n in _BIASES}

            def mul(name: str, v: np.ndarray) -> np.ndarray:
                y = st.mats[name].times(v)
                return y + v @ slow[name] if slow else y

            def mul_t(name: str, g: np.ndarray) -> np.ndarray:
                y = st.mats[name].times_t(g)
                return y + g @ slow[name].T if slow else y
        else:
            w = self._current()

            def mul(name: str, v: np.ndarray) -> np.ndarray:
                out: np.ndarray = v @ w[name]
                return out

            def mul_t(name: str, g: np.ndarray) -> np.ndarray:
                out: np.ndarray = g @ w[name].T
                return out

        n = x.shape[1]  # layer norm, as x.mean and x.var compute it, without their overhead
        d = x - x.sum(axis=1, keepdims=True) / n
        z = d / np.sqrt((d * d).sum(axis=1, keepdims=True) / n + _LN_EPS)
        a = mul("w1", z) + w["b1"]
        u = mul("w2", a) + w["b2"]
        sig = 1.0 / (1.0 + np.exp(-np.clip(u, -30.0, 30.0)))
        h = a + u * sig
        y = mul("w3", h) + w["b3"]
        return [z, a, u, sig, h, mul_t, y]

    def _design_grads(self, k: np.ndarray, v: np.ndarray) -> tuple[Factors, dict[str, np.ndarray]]:
        """The gradient of a windowed and/or robust write (:mod:`neural_designs`)."""
        keys, values, old = designs.window_pairs(self._state.ring, k, v)
        cache = self._forward(keys, factored=True)
        err = cache[-1] - values
        return self._backward(cache, err, designs.row_scales(self.config, err, old))

    @staticmethod
    def _backward(
        cache: list[Any], err: np.ndarray, scale: np.ndarray | None = None
    ) -> tuple[Factors, dict[str, np.ndarray]]:
        """The gradient: each weight matrix's as factors ``(x, g)`` (the gradient is
        ``x.T @ g``), the biases' as arrays."""
        z, a, u, sig, h, mul_t, _ = cache
        dy = (2.0 / len(err)) * err if scale is None else (2.0 * scale[:, None]) * err
        dh = mul_t("w3", dy)
        du = dh * (sig * (1.0 + u * (1.0 - sig)))
        da = dh + mul_t("w2", du)
        factors = {"w3": (h, dy), "w2": (a, du), "w1": (z, da)}
        biases = {"b3": dy.sum(axis=0), "b2": du.sum(axis=0), "b1": da.sum(axis=0)}
        return factors, {n: g.astype(np.float32, copy=False) for n, g in biases.items()}

"""The design options of the neural memory (:class:`~memora.memory.neural.NeuralConfig`) as pure
functions on numpy arrays; each is off at its default value, which leaves the memory's update
exactly as it was (``bench/neural_ablation.py`` measures them, ``docs/neural-memory.md``).

- **windowed update** (ATLAS's "Omega" rule, Behrouz et al., 2025): the gradient of a write is
  taken over the new pairs and the last ``window - 1`` pairs written before them (a ring buffer
  kept in the state), the older ones weighted ``window_decay ** age`` (age in pairs, the newest
  earlier pair 1); the new pairs keep today's weight, so the window adds a decayed rehearsal of
  the recent past.
- **robust loss** (MIRAS, Behrouz et al., 2025): ``loss="huber"`` takes the Huber loss of each
  pair's error norm ``e = ||M(k) - v||``: ``e^2`` up to ``huber_delta``, then
  ``2 delta e - delta^2``; a pair far from what the memory predicts pulls with a bounded force
  (``delta``) instead of one growing with its error. Surprise is still the squared error.
- **two timescales** (fast and slow weights, as in HOPE / nested learning): with ``slow_lr > 0``
  a second learned delta ``D_slow`` takes the same (clipped) gradient with its own rate and
  forgetting (``slow_half_life_steps``, no momentum); the weights read are
  ``M_0 + D_fast + D_slow``. The fast delta is the memory's usual one (its own ``lr`` and
  half-life).

Nothing here changes an array in place: the memory's copies share them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "LOSSES",
    "check_designs",
    "ring_after",
    "row_scales",
    "slow_step",
    "window_pairs",
]

LOSSES = ("l2", "huber")


def check_designs(config: Any) -> dict[str, bool]:
    """The conditions on the design options of a config (name of the fix: holds)."""
    window = config.window
    return {
        "window an integer >= 1": isinstance(window, int)
        and not isinstance(window, bool)
        and window >= 1,
        "0 < window_decay <= 1": 0 < config.window_decay <= 1,
        f"loss one of {', '.join(repr(x) for x in LOSSES)}": config.loss in LOSSES,
        "huber_delta > 0": config.huber_delta > 0,
        "slow_lr >= 0": config.slow_lr >= 0,
        "slow_half_life_steps > 0": config.slow_half_life_steps > 0,
    }


def plain(config: Any) -> bool:
    """Whether a write's gradient is today's: one pass over the new pairs, squared loss."""
    return bool(config.window == 1 and config.loss == "l2")


def window_pairs(
    ring: tuple[np.ndarray, np.ndarray] | None, keys: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """The pairs a windowed write learns from: the ring's (oldest first), then the new ones;
    and how many come from the ring."""
    if ring is None or len(ring[0]) == 0:
        return keys, values, 0
    return np.concatenate([ring[0], keys]), np.concatenate([ring[1], values]), len(ring[0])


def row_scales(config: Any, err: np.ndarray, old: int) -> np.ndarray:
    """Each pair's share of the gradient ``2 * scale * (M(k) - v)``: ``1 / n`` for the ``n``
    new pairs (today's mean), times ``window_decay ** age`` for the ``old`` ones before them,
    times the Huber factor ``min(1, delta / e)`` with the Huber loss."""
    new = len(err) - old
    age = np.concatenate([np.arange(old, 0, -1, dtype=np.float64), np.zeros(new)])
    scale = config.window_decay**age / new
    if config.loss == "huber":
        norm = np.sqrt((err.astype(np.float64) ** 2).sum(axis=1))
        scale = scale * np.minimum(1.0, config.huber_delta / np.maximum(norm, 1e-12))
    return np.asarray(scale, dtype=np.float32)


def ring_after(
    ring: tuple[np.ndarray, np.ndarray] | None, keys: np.ndarray, values: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The ring buffer after a write: the last ``window - 1`` pairs written (new arrays)."""
    if window <= 1:
        return None
    k, v, _ = window_pairs(ring, keys, values)
    keep = window - 1
    return k[-keep:].copy(), v[-keep:].copy()


def slow_step(
    slow: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray], rate: float, forget: float
) -> dict[str, np.ndarray]:
    """``D_slow = (1 - forget) * D_slow - rate * grad`` (new arrays)."""
    keep, lr = np.float32(1.0 - forget), np.float32(rate)
    return {name: keep * slow[name] - lr * grads[name] for name in slow}


def design_arrays(
    slow: Mapping[str, np.ndarray], ring: tuple[np.ndarray, np.ndarray] | None
) -> dict[str, np.ndarray]:
    """The design state to persist (nothing for a memory with none)."""
    arrays = {f"slow_{name}": a for name, a in slow.items()}
    if ring is not None:
        arrays["ring_keys"], arrays["ring_values"] = ring
    return arrays


def load_design_arrays(
    data: Mapping[str, np.ndarray], names: tuple[str, ...], slow_on: bool, shapes: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """The slow weights and ring buffer of a saved state (a state saved before these designs
    existed holds neither: zeros and an empty ring)."""
    files = set(getattr(data, "files", data))
    slow: dict[str, np.ndarray] = {}
    if slow_on:
        slow = {
            n: data[f"slow_{n}"].astype(np.float32)
            if f"slow_{n}" in files
            else np.zeros(shapes[n], dtype=np.float32)
            for n in names
        }
    ring = None
    if "ring_keys" in files:
        ring = data["ring_keys"].astype(np.float32), data["ring_values"].astype(np.float32)
    return slow, ring

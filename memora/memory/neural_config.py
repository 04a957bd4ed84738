"""The hyper-parameters of a :class:`~memora.memory.neural.NeuralMemory` (stored with its
state), its design options included (:mod:`memora.memory.neural_designs`)."""

from __future__ import annotations

from dataclasses import dataclass

import memora.memory.neural_designs as designs
from memora.errors import ConfigError

__all__ = ["NeuralConfig"]


@dataclass(frozen=True)
class NeuralConfig:
    """Hyper-parameters of a :class:`NeuralMemory` (stored with its state).

    Args:
        hidden: width of the hidden layers.
        lr: base learning rate (``theta`` at average surprise).
        momentum: ``eta``, the decay of past surprise.
        forget_half_life_steps: writes after which half of what was learned is forgotten.
        forget_half_life_seconds: if set, forgetting follows wall-clock time instead.
        salient_threshold: normalized surprise at or above which an item is flagged salient.
        loss_decay: decay of the running mean of the loss (normalizes surprise).
        max_grad_norm: gradient clipping (global L2 norm).
        seed: the random initialization ``M_0``.
        window, window_decay, loss, huber_delta, slow_lr, slow_half_life_steps: the design
            options, off by default (:mod:`memora.memory.neural_designs`).
    """

    hidden: int = 128
    lr: float = 0.002
    momentum: float = 0.5
    forget_half_life_steps: float = 2_000.0
    forget_half_life_seconds: float | None = None
    salient_threshold: float = 1.25
    loss_decay: float = 0.98
    max_grad_norm: float = 5.0
    seed: int = 0
    window: int = 1
    window_decay: float = 0.9
    loss: str = "l2"
    huber_delta: float = 0.5
    slow_lr: float = 0.0
    slow_half_life_steps: float = 50_000.0

    def __post_init__(self) -> None:
        checks = {
            "hidden >= 1": self.hidden >= 1,
            "lr > 0": self.lr > 0,
            "0 <= momentum < 1": 0 <= self.momentum < 1,
            "forget_half_life_steps > 0": self.forget_half_life_steps > 0,
            "forget_half_life_seconds > 0 or None": self.forget_half_life_seconds is None
            or self.forget_half_life_seconds > 0,
            "0 < loss_decay < 1": 0 < self.loss_decay < 1,
            "max_grad_norm > 0": self.max_grad_norm > 0,
        } | designs.check_designs(self)
        broken = [name for name, ok in checks.items() if not ok]
        if broken:
            raise ConfigError(f"NeuralConfig needs {', '.join(broken)}")

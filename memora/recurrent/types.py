"""The story engine's values: a premise, steps (a tree), per-step statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from memora.errors import ConfigError, StepError, unknown_option

__all__ = ["Premise", "Step", "StepError", "StepStats", "StoryOptions"]

ChosenBy = Literal["opening", "model", "person", "edited", "own"]


@dataclass(frozen=True)
class Premise:
    """What a story starts from. Everything but ``premise`` is optional."""

    premise: str
    title: str = ""
    genre: str = ""
    outline: str = ""

    def __post_init__(self) -> None:
        if not self.premise.strip():
            raise ConfigError("a story needs a premise: one or two sentences about it")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Premise:
        return cls(**{k: str(data.get(k, "")) for k in ("premise", "title", "genre", "outline")})


@dataclass(frozen=True)
class StepStats:
    """What one step cost."""

    prompt_tokens: int = 0
    evaluated_tokens: int = 0  # prompt tokens not served from the KV cache
    completion_tokens: int = 0
    seconds: float = 0.0
    retries: int = 0  # repair attempts over all calls of the step
    memory_kept: bool = False  # the new short-term memory failed its checks; the old one stayed
    lore_applied: int = 0  # lorebook changes the story bible applied after the step
    lore_rejected: int = 0  # proposed changes refused (not grounded in the paragraph)

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens served from the KV cache."""
        return self.prompt_tokens - self.evaluated_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepStats:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Step:
    """One paragraph of a story and the state after it.

    ``plan`` is the plan the paragraph followed; ``memory`` the short-term memory after it;
    ``plans`` the three candidates for the next step; ``retrieved`` the ids of earlier steps
    whose paragraphs were in the prompt.
    """

    id: int
    parent_id: int | None
    depth: int
    plan: str
    chosen_by: ChosenBy
    paragraph: str
    memory: str
    plans: tuple[str, ...]
    retrieved: tuple[int, ...] = ()
    stats: StepStats = field(default_factory=StepStats)
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["plans"] = list(self.plans)
        data["retrieved"] = list(self.retrieved)
        data["stats"] = self.stats.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        return cls(
            id=int(data["id"]),
            parent_id=data.get("parent_id"),
            depth=int(data["depth"]),
            plan=data["plan"],
            chosen_by=data["chosen_by"],
            paragraph=data["paragraph"],
            memory=data["memory"],
            plans=tuple(data["plans"]),
            retrieved=tuple(data.get("retrieved", ())),
            stats=StepStats.from_dict(data.get("stats", {})),
            created_at=float(data.get("created_at", 0.0)),
        )


@dataclass(frozen=True)
class StoryOptions:
    """How the story engine writes.

    ``top_k``: earlier paragraphs retrieved per step. ``max_retries``: repair attempts per
    call before a step fails. ``paragraph_tokens`` / ``plan_tokens``: output caps of the two
    calls. ``memory_chars``: the short-term memory's size bound. ``temperature``: for the
    paragraph (the JSON call uses ``min(temperature, 0.7)``). ``seed``: the first attempt's
    seed (each repair attempt adds one, and each failed step of the story 1000, so a step
    tried again is sampled anew). ``cache_slots``: run the writer, the planner and the plan
    choice in their own KV cache slots, so each call reuses the prompt its role had (False:
    one shared cache, and the plan choice clears it). ``lore_budget``: tokens of triggered
    lorebook entries per prompt. ``bible``: ``"auto"`` lets the model propose lorebook changes
    after each step and applies those grounded in the paragraph; ``"off"`` leaves the
    lorebook to the person (:meth:`StoryEngine.propose_lore` proposes on request).
    ``layout``: ``"separate"`` gives the summary-and-plans call its own conversation;
    ``"continued"`` continues the writer's, so nearly all of its prompt comes from the cache
    (for models that do not copy the worked example, unlike the bundled 135M one).
    """

    top_k: int = 3
    max_retries: int = 3
    paragraph_tokens: int = 220
    plan_tokens: int = 320
    memory_chars: int = 700
    temperature: float = 0.8
    seed: int = 0
    cache_slots: bool = True
    lore_budget: int = 200
    bible: Literal["off", "auto"] = "off"
    layout: Literal["separate", "continued"] = "separate"

    def __post_init__(self) -> None:
        if self.layout not in ("separate", "continued"):
            raise ConfigError(f"layout must be 'separate' or 'continued', got {self.layout!r}")
        if self.bible not in ("off", "auto"):
            raise ConfigError(f"bible must be 'off' or 'auto', got {self.bible!r}")
        if self.lore_budget < 0:
            raise ConfigError(f"lore_budget must be 0 or more tokens, got {self.lore_budget}")
        if self.max_retries < 0 or self.top_k < 0:
            raise ConfigError("max_retries and top_k must be >= 0")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ConfigError(f"temperature must be a number >= 0, got {self.temperature!r}")
        if self.paragraph_tokens < 1 or self.plan_tokens < 1 or self.memory_chars < 1:
            raise ConfigError("paragraph_tokens, plan_tokens and memory_chars must be >= 1")

    @classmethod
    def build(cls, base: StoryOptions | None = None, **changes: Any) -> StoryOptions:
        """``base`` (default: the defaults) with ``changes``; an unknown name raises
        :class:`~memora.errors.InvalidOptionError` with the nearest valid one."""
        valid = list(cls.__dataclass_fields__)
        for name in changes:
            if name not in valid:
                raise unknown_option(name, valid, "StoryEngine")
        merged = {**(asdict(base) if base is not None else {}), **changes}
        return cls(**merged)

"""The story engine's values: a premise, steps (a tree), per-step statistics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from memora.errors import ConfigError, StepError

__all__ = ["Premise", "Step", "StepError", "StepStats"]

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

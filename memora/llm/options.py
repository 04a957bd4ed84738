"""Sampling options, validated strictly: an unknown name or an out-of-range value is an error."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memora.errors import InvalidOptionError, unknown_option

__all__ = ["SamplingOptions", "parse_options"]


class SamplingOptions(BaseModel):
    """How to sample one completion. Every backend accepts every field.

    ``temperature=0`` is greedy decoding. ``seed=None`` uses the backend's own seed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(256, ge=1, description="cap on generated tokens (every call has one)")
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0, description="0 disables top-k")
    min_p: float = Field(0.05, ge=0.0, le=1.0)
    repeat_penalty: float = Field(1.0, gt=0.0, le=5.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    seed: int | None = Field(None, ge=0)
    stop: tuple[str, ...] = Field((), max_length=16, description="strings that end generation")
    cache_slot: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="KV cache slot (llama.cpp): calls in one slot keep each other's prompt "
        "cached across other calls; other backends ignore it",
    )

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        return value

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s for s in value):
            raise ValueError("stop strings must not be empty")
        return value


_NAMES = tuple(SamplingOptions.model_fields)


def parse_options(base: SamplingOptions | None = None, **options: Any) -> SamplingOptions:
    """Build options from keyword arguments, on top of ``base`` when given.

    Raises :class:`InvalidOptionError` naming the bad option, the nearest valid name and the
    allowed range.
    """
    for name in options:
        if name not in _NAMES:
            raise unknown_option(name, _NAMES, "sampling")
    merged = {**(base.model_dump() if base is not None else {}), **options}
    try:
        return SamplingOptions(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidOptionError(f"invalid sampling option value: {problems}") from exc

"""Model names and :func:`load_model`.

A model is named by a registered name (``"default"``, ``"smollm2-135m-instruct"``), a path to a
``.gguf`` file, or ``"openai:<model>"`` for an OpenAI-compatible endpoint. Registered models ship
inside PyPI packages; their files are located without importing those packages.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from memora.errors import InvalidOptionError, unknown_option
from memora.llm.base import LLM
from memora.llm.names import (
    DEFAULT_MODEL,
    GGUF_MAGIC,
    ModelInfo,
    available_models,
    canonical_name,
    check_gguf,
    default_name,
    looks_like_path,
    model_path,
    resolve_gguf,
)

__all__ = [
    "DEFAULT_MODEL",
    "GGUF_MAGIC",
    "OPENAI_PREFIX",
    "ModelInfo",
    "ModelSpec",
    "available_models",
    "canonical_name",
    "check_gguf",
    "load_model",
    "looks_like_path",
    "model_path",
    "parse_model_spec",
]

OPENAI_PREFIX = "openai:"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: which backend, the model's name, and for llama.cpp its file."""

    backend: Literal["llamacpp", "openai"]
    name: str
    path: Path | None = None


def parse_model_spec(spec: str) -> ModelSpec:
    """The one parser of model specs (``load_model``, the CLI and the TUI use it): a registered
    name, a ``.gguf`` path or ``openai:<model>``. Checks what can be checked without loading:
    an unknown name or missing file raises :class:`ModelNotFoundError`, a file that is not GGUF
    :class:`ModelLoadError`, ``openai:`` with no model :class:`InvalidOptionError`."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidOptionError(
            "the model spec is empty; give a name, a .gguf path or openai:<model>"
        )
    if spec.startswith(OPENAI_PREFIX):
        model = spec.removeprefix(OPENAI_PREFIX).strip()
        if not model:
            raise InvalidOptionError(
                f"{spec!r} names no model; give openai:<model>, e.g. openai:gpt-4o-mini"
            )
        return ModelSpec("openai", model)
    path = resolve_gguf(spec)
    check_gguf(path)
    return ModelSpec("llamacpp", default_name(spec, path), path)


def load_model(spec: str = "default", **options: Any) -> LLM:
    """Load a model by registered name, ``.gguf`` path, or ``openai:<model>``.

    ``options`` go to the backend's constructor (:class:`~memora.llm.llamacpp.LlamaCppLLM` or
    :class:`~memora.llm.openai.OpenAILLM`); an option that backend does not take is an error.
    """
    parsed = parse_model_spec(spec)
    if parsed.backend == "openai":
        from memora.llm.openai import OpenAILLM

        _check_options(OpenAILLM, options)
        return OpenAILLM(parsed.name, **options)

    from memora.llm.llamacpp import LlamaCppLLM

    _check_options(LlamaCppLLM, options)
    assert parsed.path is not None
    return LlamaCppLLM(parsed.path, **{"name": parsed.name, **options})


def _check_options(backend: type[LLM], options: dict[str, Any]) -> None:
    accepted = [
        p.name
        for p in inspect.signature(backend.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    for name in options:
        if name not in accepted:
            raise unknown_option(name, accepted, backend.__name__)

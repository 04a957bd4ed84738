"""memora's settings: one object, read from ``MEMORA_*`` environment variables (and a ``.env``
file when asked) at the edge (CLI, TUI, scripts) and passed inward. Library code never reads the
environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from memora.errors import InvalidOptionError

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Every field maps to ``MEMORA_<FIELD>``; e.g. ``MEMORA_MODEL=openai:gpt-4o-mini``."""

    model_config = SettingsConfigDict(env_prefix="MEMORA_", extra="forbid", frozen=True)

    model: str = Field("default", description="registered name, .gguf path, or openai:<model>")
    n_ctx: int = Field(4096, ge=16, description="context length in tokens (llama.cpp)")
    n_threads: int | None = Field(None, ge=1, description="CPU threads (llama.cpp); None: auto")
    n_gpu_layers: int = Field(0, ge=-1, description="layers offloaded to a GPU; -1: all")
    seed: int = Field(0, ge=0, description="default sampling seed (llama.cpp)")
    openai_base_url: str | None = Field(None, description="OpenAI-compatible API root, e.g. .../v1")
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("MEMORA_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="API key (MEMORA_OPENAI_API_KEY, else OPENAI_API_KEY)",
    )
    openai_timeout: float = Field(
        15.0, gt=0, description="seconds to wait for the server's answer; a timeout is not retried"
    )
    openai_max_retries: int = Field(
        3, ge=0, description="retries on connection errors, HTTP 408, 409, 429 and 5xx"
    )
    embedder: str = Field("default", description="bundled embedder name or a local directory")
    embed_threads: int | None = Field(
        None, ge=1, description="torch CPU threads of the embedder; None: torch's default"
    )
    data_dir: Path = Field(Path("~/.local/share/memora"), description="stores, stories, caches")

    def model_options(self) -> dict[str, Any]:
        """Constructor options for :func:`memora.load_model` with :attr:`model` (those left
        unset are left out: the backend's defaults apply)."""
        return {k: v for k, v in self._backend_options().items() if v is not None}

    def _backend_options(self) -> dict[str, Any]:
        if self.model.startswith("openai:"):
            return {
                "base_url": self.openai_base_url,
                "api_key": self.openai_api_key.get_secret_value() if self.openai_api_key else None,
                "timeout": self.openai_timeout,
                "max_retries": self.openai_max_retries,
                "n_ctx": self.n_ctx,
            }
        return {
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "n_gpu_layers": self.n_gpu_layers,
            "seed": self.seed,
        }


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment, with ``overrides`` on top; bad values raise
    :class:`InvalidOptionError` naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"MEMORA_{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidOptionError(f"invalid memora settings: {problems}") from exc

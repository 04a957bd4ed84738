"""The TUI's settings: :class:`TuiConfig` (the model, its endpoint and sampling temperature,
saved as JSON next to the stories) and :class:`SettingsScreen`, the form that edits it.

The screen only builds and checks a config; loading the model is the app's job (in a worker,
when :meth:`TuiConfig.needs_reload` says so).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from memora.errors import (
    ConfigError,
    InvalidOptionError,
    MemoraError,
    ModelLoadError,
    ModelNotFoundError,
)
from memora.llm.base import LLM
from memora.llm.registry import parse_model_spec
from memora.settings import Settings

__all__ = ["SettingsScreen", "TuiConfig", "config_path", "load_llm", "save_config"]

# config field -> (widget id, label, hint beside the field, the fix for a bad value)
_FIELDS: dict[str, tuple[str, str, str, str]] = {
    "model": ("set-model", "Model", "", "a registered name, a .gguf path, or openai:<model>"),
    "openai_base_url": ("set-url", "Endpoint URL", "", "an http(s):// URL, or nothing"),
    "openai_api_key": ("set-key", "API key", "openai: only", "the key, or nothing"),
    "temperature": ("set-temperature", "Temperature", "0-2, no reload", "a number from 0 to 2"),
    "n_ctx": ("set-ctx", "Context size", "tokens, >= 256", "a whole number >= 256, e.g. 4096"),
    "n_gpu_layers": ("set-gpu", "GPU layers", "0 CPU, -1 all", "a whole number >= -1 (-1: all)"),
}
# hint lines under a field
_BELOW = {
    "model": "'default' (SmolLM2), /path/to/model.gguf, or openai:<model>",
    "openai_base_url": "for openai: models, e.g. http://localhost:8080/v1",
}


class TuiConfig(BaseModel):
    """What the settings screen edits and :meth:`save` persists (mode 0o600: it may hold a key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("default", description="registered name, .gguf path, or openai:<model>")
    openai_base_url: str | None = Field(None, description="OpenAI-compatible API root")
    openai_api_key: SecretStr | None = Field(None, description="API key of the endpoint")
    temperature: float = Field(0.8, ge=0, le=2, description="sampling temperature")
    n_ctx: int = Field(4096, ge=256, description="context length in tokens")
    n_gpu_layers: int = Field(0, ge=-1, description="layers offloaded to a GPU; -1: all")

    @classmethod
    def load(cls, path: str | Path, default: TuiConfig | None = None) -> TuiConfig:
        """The config saved at ``path``; ``default`` (else the defaults) when there is no file.
        An unreadable file raises :class:`ConfigError` naming it and the fix."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return default if default is not None else cls()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path} ({exc}); fix or delete {path}") from exc
        try:
            return cls.model_validate(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc}); fix or delete {path}") from exc
        except ValidationError as exc:
            raise ConfigError(
                f"bad TUI settings in {path}: {_describe(exc)}; fix or delete {path}"
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> TuiConfig:
        """The model fields of ``settings`` (the environment), with the default temperature."""
        try:
            return cls(
                model=settings.model,
                openai_base_url=settings.openai_base_url,
                openai_api_key=settings.openai_api_key,
                n_ctx=settings.n_ctx,
                n_gpu_layers=settings.n_gpu_layers,
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"MEMORA_{_loc(e['loc']).upper()}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidOptionError(f"settings the TUI cannot use: {problems}") from exc

    def save(self, path: str | Path) -> None:
        """Write the config as JSON atomically (a temporary file, then a rename), mode 0o600."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = self.model_dump()
        data["openai_api_key"] = _reveal(self.openai_api_key)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2)
                out.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def apply(self, base: Settings) -> Settings:
        """``base`` with this config's model fields on top; an empty endpoint URL or key keeps
        the one of ``base`` (the environment's)."""
        update: dict[str, Any] = {
            "model": self.model,
            "n_ctx": self.n_ctx,
            "n_gpu_layers": self.n_gpu_layers,
        }
        if self.openai_base_url is not None:
            update["openai_base_url"] = self.openai_base_url
        if self.openai_api_key is not None:
            update["openai_api_key"] = self.openai_api_key
        return base.model_copy(update=update)

    def needs_reload(self, other: TuiConfig) -> bool:
        """Whether going from this config to ``other`` needs the model loaded again: anything but
        the temperature (which the running story engine takes as it is)."""
        return any(
            getattr(self, name) != getattr(other, name)
            for name in type(self).model_fields
            if name != "temperature"
        )

    def check(self) -> None:
        """Raise a :class:`~memora.errors.MemoraError` naming the field and the fix for a model or
        endpoint that cannot work; never loads the model."""
        try:
            parse_model_spec(self.model)  # the one parser load_model uses
        except (ModelNotFoundError, ModelLoadError, InvalidOptionError) as exc:
            raise type(exc)(f"Model: {exc}") from exc
        url = self.openai_base_url
        if url is not None:
            try:
                parts = urlsplit(url)
                good = parts.scheme in ("http", "https") and bool(parts.hostname)
            except ValueError:  # e.g. an unclosed [ipv6
                good = False
            if not good:
                raise InvalidOptionError(
                    f"Endpoint URL: {url!r} is not an http(s):// URL; give e.g. "
                    "http://localhost:8080/v1, or leave it empty"
                )


def load_llm(config: TuiConfig, base: Settings) -> LLM:
    """Check ``config`` and load the model it names, with ``base``'s other settings."""
    from memora.llm.registry import load_model

    config.check()
    settings = config.apply(base)
    options = settings.model_options()
    return load_model(settings.model, **options)


def save_config(config: TuiConfig, path: Path, settings: Settings) -> str:
    """Save ``config`` at ``path`` for the next start, without an API key that comes from the
    environment (``settings``): that one stays there. Says for the status line how it went."""
    env_key = settings.openai_api_key
    if env_key is not None and config.openai_api_key == env_key:
        config = config.model_copy(update={"openai_api_key": None})
    try:
        config.save(path)
    except (MemoraError, OSError) as exc:
        return f"settings not saved: {exc}"
    return f"settings saved to {path}"


def config_path(settings: Settings) -> Path:
    """Where the TUI keeps its config: ``<data_dir>/tui.json``."""
    return settings.data_dir.expanduser() / "tui.json"


def _reveal(key: SecretStr | None) -> str | None:
    return key.get_secret_value() if key is not None else None


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _describe(exc: ValidationError) -> str:
    """The problems of a validation error, each with the field's label and the fix."""
    problems = []
    for err in exc.errors():
        name = _loc(err["loc"])
        if name in _FIELDS:
            label, fix = _FIELDS[name][1], f"give {_FIELDS[name][3]}"
        elif name:
            label, fix = name, f"the fields are {', '.join(_FIELDS)}"
        else:
            label, fix = "settings", 'give a JSON object, e.g. {"model": "default"}'
        got = "" if name == "openai_api_key" else f" (got {err['input']!r})"
        problems.append(f"{label}: {err['msg']}{got}; {fix}")
    return "; ".join(problems)


class SettingsScreen(ModalScreen[TuiConfig | None]):
    """Edit a :class:`TuiConfig`: ctrl+s or enter returns the checked config, esc returns None.
    A bad value shows its field and fix in ``#set-error`` and keeps the screen open."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]
    DEFAULT_CSS = """
    SettingsScreen { align: center middle; }
    #settings {
        width: 78; height: auto; max-height: 100%;
        border: thick $primary; padding: 0 1;
        border-title-style: bold; border-subtitle-color: $text-muted;
    }
    #settings .row { height: 1; margin-top: 1; }
    #settings .field { width: 14; }
    #settings .side { width: 15; padding-left: 1; color: $text-muted; }
    #settings Input { width: 1fr; background: $boost; }
    #settings Input:focus { background: $primary 40%; }
    #settings .hint { width: 100%; padding-left: 14; color: $text-muted; }
    #set-error { width: 100%; color: $error; margin-top: 1; }
    """

    def __init__(self, config: TuiConfig) -> None:
        super().__init__()
        self.config = config

    def compose(self) -> ComposeResult:
        values = {k: "" if v is None else str(v) for k, v in self.config.model_dump().items()}
        values["openai_api_key"] = _reveal(self.config.openai_api_key) or ""
        with Vertical(id="settings") as box:
            box.border_title = "Settings"
            box.border_subtitle = "ctrl+s/enter save · esc cancel · tab/shift+tab move"
            for name, (wid, label, side, _) in _FIELDS.items():
                with Horizontal(classes="row"):
                    yield Label(label, classes="field")
                    yield Input(
                        values[name], id=wid, compact=True, password=name == "openai_api_key"
                    )
                    if side:
                        yield Label(side, classes="side")
                if name in _BELOW:
                    yield Label(_BELOW[name], classes="hint")
            yield Label("", id="set-error")

    def on_mount(self) -> None:
        self.query_one("#set-model", Input).focus()

    @on(Input.Submitted)
    def action_save(self) -> None:
        """Build and check the config from the fields; dismiss with it, or show what is wrong."""
        data: dict[str, str | None] = {}
        for name, (wid, *_) in _FIELDS.items():
            value = self.query_one(f"#{wid}", Input).value.strip()
            optional = name in ("openai_base_url", "openai_api_key")
            data[name] = None if optional and not value else value
        try:
            config = TuiConfig.model_validate(data)
            config.check()
        except ValidationError as exc:
            self._show_error(_describe(exc))
            return
        except MemoraError as exc:
            self._show_error(str(exc))
            return
        self.dismiss(config)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _show_error(self, message: str) -> None:
        self.query_one("#set-error", Label).update(Content(message))

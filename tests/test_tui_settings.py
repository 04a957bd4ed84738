"""The TUI's settings: :class:`TuiConfig` persistence, checks and application to
:class:`~memora.settings.Settings`, and :class:`SettingsScreen` driven by keyboard through
Textual's pilot at 80x24 (plus snapshots)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")

from memora.tui.settings import SettingsScreen, TuiConfig, config_path
from pydantic import SecretStr
from textual.app import App
from textual.widgets import Input, Label

from memora.errors import ConfigError, InvalidOptionError, ModelLoadError, ModelNotFoundError
from memora.llm.registry import model_path
from memora.settings import Settings, load_settings

SIZE = (80, 24)
# the fields in tab order
ORDER = ["set-model", "set-url", "set-key", "set-temperature", "set-ctx", "set-gpu"]
OPENAI = TuiConfig(
    model="openai:gpt-4o-mini",
    openai_base_url="http://localhost:8080/v1",
    openai_api_key=SecretStr("sk-test-key"),
    temperature=0.5,
    n_ctx=2048,
    n_gpu_layers=-1,
)


class Host(App[None]):
    """Pushes the settings screen and keeps what it returns."""

    def __init__(self, config: TuiConfig | None = None) -> None:
        super().__init__()
        self.config = config or TuiConfig()
        self.results: list[TuiConfig | None] = []

    def on_mount(self) -> None:
        self.push_screen(SettingsScreen(self.config), self.results.append)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MEMORA_* or OPENAI_API_KEY from the outside, and a private data dir."""
    for name in (
        "MODEL",
        "N_CTX",
        "N_GPU_LAYERS",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "DATA_DIR",
    ):
        monkeypatch.delenv(f"MEMORA_{name}", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("MEMORA_DATA_DIR", str(tmp_path / "data"))


def error_text(app: App[Any]) -> str:
    return str(app.screen.query_one("#set-error", Label).content)


async def retype(pilot: Any, app: App[Any], widget_id: str, text: str) -> None:
    """Tab to ``widget_id`` from the field that has focus, clear it, type ``text``."""
    for _ in range(len(ORDER)):
        focused = app.focused
        if focused is not None and focused.id == widget_id:
            break
        await pilot.press("tab")
    assert app.focused is not None and app.focused.id == widget_id
    await pilot.press("ctrl+a", "ctrl+k", *text)
    assert app.screen.query_one(f"#{widget_id}", Input).value == text


# -- persistence ---------------------------------------------------------------------------


def test_save_and_load_round_trip_with_the_key_and_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "tui.json"  # the parent is created
    OPENAI.save(path)
    loaded = TuiConfig.load(path)
    assert loaded == OPENAI
    assert loaded.openai_api_key is not None
    assert loaded.openai_api_key.get_secret_value() == "sk-test-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["openai_api_key"] == "sk-test-key"
    assert sorted(p.name for p in path.parent.iterdir()) == ["tui.json"]  # no temp file left

    TuiConfig(temperature=1.2).save(path)  # replaces the file, still private
    assert TuiConfig.load(path) == TuiConfig(temperature=1.2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "sk-test-key" not in repr(loaded)


def test_a_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    assert TuiConfig.load(tmp_path / "none.json") == TuiConfig()
    assert TuiConfig.load(tmp_path / "none.json", default=OPENAI) == OPENAI
    assert TuiConfig().model == "default" and TuiConfig().temperature == 0.8


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not valid JSON"),
        ('{"temperature": 5}', "Temperature"),
        ('{"n_ctx": "lots"}', "Context size"),
        ('{"modle": "default"}', "modle: Extra inputs are not permitted"),
        ("[1, 2]", "give a JSON object"),
        ("", "not valid JSON"),
    ],
)
def test_a_corrupt_file_raises_config_error_naming_the_file(
    tmp_path: Path, text: str, words: str
) -> None:
    path = tmp_path / "tui.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        TuiConfig.load(path)
    message = str(caught.value)
    assert words in message and str(path) in message and f"fix or delete {path}" in message


def test_config_path_is_in_the_data_dir(clean_env: None, tmp_path: Path) -> None:
    assert config_path(load_settings()) == tmp_path / "data" / "tui.json"
    home = config_path(load_settings(data_dir="~/memora-data"))
    assert home == Path.home() / "memora-data" / "tui.json"


def test_from_settings_takes_the_model_fields(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMORA_MODEL", "openai:smollm2")
    monkeypatch.setenv("MEMORA_OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("MEMORA_OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("MEMORA_N_CTX", "1024")
    monkeypatch.setenv("MEMORA_N_GPU_LAYERS", "-1")
    config = TuiConfig.from_settings(load_settings())
    assert config == TuiConfig(
        model="openai:smollm2",
        openai_base_url="http://127.0.0.1:8000/v1",
        openai_api_key=SecretStr("sk-env"),
        n_ctx=1024,
        n_gpu_layers=-1,
    )
    assert TuiConfig.from_settings(load_settings(model="default")).openai_api_key is not None
    with pytest.raises(InvalidOptionError, match="MEMORA_N_CTX"):
        TuiConfig.from_settings(load_settings(n_ctx=128))  # valid for Settings, not for the TUI


# -- reload and apply ----------------------------------------------------------------------


def test_only_the_temperature_applies_without_a_reload() -> None:
    base = TuiConfig()
    assert not base.needs_reload(TuiConfig(temperature=0.1))
    assert not OPENAI.needs_reload(OPENAI.model_copy(update={"temperature": 1.9}))
    assert not OPENAI.needs_reload(OPENAI.model_copy())
    for change in (
        {"model": "smollm2-135m-instruct"},
        {"n_ctx": 2048},
        {"n_gpu_layers": -1},
        {"openai_base_url": "http://localhost:1/v1"},
        {"openai_api_key": SecretStr("sk-other")},
    ):
        assert base.needs_reload(TuiConfig(**change)), change
    assert OPENAI.needs_reload(OPENAI.model_copy(update={"openai_api_key": SecretStr("sk-2")}))


def test_apply_puts_the_local_model_fields_on_the_settings(clean_env: None) -> None:
    base = load_settings()
    applied = TuiConfig(n_ctx=2048, n_gpu_layers=-1, temperature=0.1).apply(base)
    assert isinstance(applied, Settings)
    options = applied.model_options()
    assert options["n_ctx"] == 2048 and options["n_gpu_layers"] == -1
    assert applied.model == "default" and applied.data_dir == base.data_dir
    assert base.n_ctx == 4096 and base.n_gpu_layers == 0  # the base is unchanged


def test_apply_carries_the_openai_endpoint_and_key(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = OPENAI.apply(load_settings()).model_options()
    assert options["base_url"] == "http://localhost:8080/v1"
    assert options["api_key"] == "sk-test-key"
    assert options["n_ctx"] == 2048
    # an empty URL or key keeps the environment's
    monkeypatch.setenv("MEMORA_OPENAI_BASE_URL", "http://env:9/v1")
    monkeypatch.setenv("MEMORA_OPENAI_API_KEY", "sk-env")
    options = TuiConfig(model="openai:x").apply(load_settings()).model_options()
    assert options["base_url"] == "http://env:9/v1" and options["api_key"] == "sk-env"


# -- check ---------------------------------------------------------------------------------


def test_the_bundled_model_path_passes_check() -> None:
    path = model_path("default")
    assert path.is_absolute() and path.is_file() and path.suffix == ".gguf"
    TuiConfig(model=str(path)).check()
    TuiConfig(model="default").check()
    TuiConfig(model="smollm2-135m-instruct").check()
    OPENAI.check()
    TuiConfig(model="openai:gpt-4o-mini", openai_base_url="https://api.example.com/v1").check()


@pytest.mark.parametrize(
    ("fields", "error", "words"),
    [
        ({"model": "/no/such/model.gguf"}, ModelNotFoundError, "no GGUF file at /no/such/model"),
        ({"model": "models/x.gguf"}, ModelNotFoundError, "give an existing .gguf path"),
        ({"model": "smollm3"}, ModelNotFoundError, "Known names: default"),
        ({"model": "openai:"}, InvalidOptionError, "give openai:<model>"),
        ({"model": "openai:  "}, InvalidOptionError, "names no model"),
        ({"openai_base_url": "localhost:8080/v1"}, InvalidOptionError, "http(s)://"),
        ({"openai_base_url": "ftp://host/v1"}, InvalidOptionError, "Endpoint URL"),
        ({"openai_base_url": "http://"}, InvalidOptionError, "give e.g. http://localhost"),
        ({"openai_base_url": "http://[::1/v1"}, InvalidOptionError, "is not an http(s)://"),
    ],
)
def test_check_names_the_field_and_the_fix(
    fields: dict[str, str], error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as caught:
        TuiConfig(**fields).check()
    assert words in str(caught.value)


def test_check_refuses_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    with pytest.raises(ModelLoadError, match="is not a GGUF file"):
        TuiConfig(model=str(fake)).check()
    with pytest.raises(ModelNotFoundError, match="no GGUF file"):
        TuiConfig(model=str(tmp_path)).check()  # a directory


# -- the screen ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_keyboard_edits_and_ctrl_s_saves() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, SettingsScreen)
        assert app.focused is not None and app.focused.id == "set-model"
        assert app.screen.query_one("#set-key", Input).password
        await retype(pilot, app, "set-temperature", "0.3")
        await retype(pilot, app, "set-ctx", "2048")
        await pilot.press("shift+tab")
        assert app.focused is not None and app.focused.id == "set-temperature"
        assert app.results == []
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.results == [TuiConfig(temperature=0.3, n_ctx=2048)]
        assert not isinstance(app.screen, SettingsScreen)


@pytest.mark.anyio
async def test_enter_saves_the_openai_fields() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        await retype(pilot, app, "set-model", "openai:smollm2")
        await retype(pilot, app, "set-url", "http://127.0.0.1:8000/v1")
        await retype(pilot, app, "set-key", "sk-typed")
        await retype(pilot, app, "set-gpu", "-1")
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == [
            TuiConfig(
                model="openai:smollm2",
                openai_base_url="http://127.0.0.1:8000/v1",
                openai_api_key=SecretStr("sk-typed"),
                n_gpu_layers=-1,
            )
        ]


@pytest.mark.anyio
async def test_escape_returns_none_and_the_fields_show_the_config() -> None:
    app = Host(OPENAI)
    async with app.run_test(size=SIZE) as pilot:
        values = [app.screen.query_one(f"#{wid}", Input).value for wid in ORDER]
        assert values == [
            "openai:gpt-4o-mini",
            "http://localhost:8080/v1",
            "sk-test-key",
            "0.5",
            "2048",
            "-1",
        ]
        await retype(pilot, app, "set-temperature", "1.5")
        await pilot.press("escape")
        await pilot.pause()
        assert app.results == [None]
        assert not isinstance(app.screen, SettingsScreen)


@pytest.mark.anyio
async def test_clearing_url_and_key_gives_none() -> None:
    app = Host(OPENAI)
    async with app.run_test(size=SIZE) as pilot:
        await retype(pilot, app, "set-url", "")
        await retype(pilot, app, "set-key", " ")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.results == [
            OPENAI.model_copy(update={"openai_base_url": None, "openai_api_key": None})
        ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("widget_id", "bad", "words", "good", "field", "value"),
    [
        ("set-model", "/no/such/m.gguf", ["Model:", "no GGUF file at", "give an existing .gguf"],
         "default", "model", "default"),
        ("set-model", "nosuch", ["Model:", "unknown model name 'nosuch'", "Known names: default"],
         "smollm2-135m-instruct", "model", "smollm2-135m-instruct"),
        ("set-model", "openai:", ["Model:", "names no model", "give openai:<model>"],
         "openai:gpt-4o-mini", "model", "openai:gpt-4o-mini"),
        ("set-url", "localhost:8080", ["Endpoint URL:", "http(s)://", "give e.g."],
         "https://api.example.com/v1", "openai_base_url", "https://api.example.com/v1"),
        ("set-temperature", "warm", ["Temperature:", "valid number", "from 0 to 2"],
         "0.25", "temperature", 0.25),
        ("set-temperature", "5", ["Temperature:", "less than or equal to 2", "from 0 to 2"],
         "2", "temperature", 2.0),
        ("set-ctx", "100", ["Context size:", "greater than or equal to 256", ">= 256"],
         "512", "n_ctx", 512),
        ("set-ctx", "4k", ["Context size:", "valid integer", "whole number"],
         "8192", "n_ctx", 8192),
        ("set-gpu", "all", ["GPU layers:", "valid integer", "-1: all"],
         "-1", "n_gpu_layers", -1),
    ],
)  # fmt: skip
async def test_a_bad_value_shows_the_fix_and_keeps_the_screen_open(
    widget_id: str, bad: str, words: list[str], good: str, field: str, value: object
) -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        assert error_text(app) == ""
        await retype(pilot, app, widget_id, bad)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen) and app.results == []
        shown = error_text(app)
        for word in words:
            assert word in shown, shown
        assert "Traceback" not in shown
        await pilot.press("enter")  # enter does the same, and still refuses
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen) and app.results == []

        await pilot.press("ctrl+a", "ctrl+k", *good, "enter")
        await pilot.pause()
        assert len(app.results) == 1 and app.results[0] is not None
        assert getattr(app.results[0], field) == value
        assert not isinstance(app.screen, SettingsScreen)


@pytest.mark.anyio
@pytest.mark.parametrize("bad_model", ["", "/" + "very-long-directory-name/" * 12 + "m.gguf"])
async def test_the_form_and_its_error_fit_80x24(bad_model: str) -> None:
    app = Host(OPENAI)
    async with app.run_test(size=SIZE) as pilot:
        if bad_model:
            app.screen.query_one("#set-model", Input).value = bad_model  # typing it is slow
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "no GGUF file" in error_text(app)
        screen = app.screen.region
        for wid in [*ORDER, "set-error"]:
            region = app.screen.query_one(f"#{wid}").region
            assert region.height >= 1 and region.width >= 20, wid
            assert screen.contains_region(region), (wid, region)
        error = app.screen.query_one("#set-error").region
        assert error.height >= (4 if bad_model else 1)  # the message wraps, not clipped
        box = app.screen.query_one("#settings").region
        assert screen.contains_region(box) and box.bottom >= error.bottom + 1


def _no_blink(app: App[Any]) -> None:
    for widget in app.screen.query(Input):
        widget.cursor_blink = False


def test_settings_screen_snapshot(snap_compare: Any) -> None:
    async def settled(pilot: Any) -> None:
        await pilot.pause()
        _no_blink(pilot.app)
        await pilot.pause()

    assert snap_compare(Host(OPENAI), terminal_size=SIZE, run_before=settled)


def test_settings_screen_error_snapshot(snap_compare: Any) -> None:
    async def bad_model(pilot: Any) -> None:
        await pilot.pause()
        _no_blink(pilot.app)
        await retype(pilot, pilot.app, "set-model", "nosuch")
        await pilot.press("ctrl+s")
        await pilot.pause()

    assert snap_compare(Host(), terminal_size=SIZE, run_before=bad_model)

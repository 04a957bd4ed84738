"""The TUI starts at once: its first frame is drawn before the model, torch or
sentence-transformers is imported, the model and the embedder load in a worker while the
status line says so, and a load error is a message in the app, not a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

pytest.importorskip("textual")

from memora.tui import startup
from memora.tui.app import NewStoryScreen, StoryApp, build_app
from memora.tui.settings import SettingsScreen, TuiConfig, config_path, load_llm
from terminal import Terminal
from textual.widgets import Input, Static

from memora.embed import Embedder, load_embedder
from memora.llm.base import LLM
from memora.recurrent import Premise
from memora.recurrent.storyfile import StoryFile
from memora.settings import Settings, load_settings
from memora.testing import ScriptedLLM

MEMORA = Path(sys.executable).parent / "memora"  # the console script `memora`
HEAVY = ("torch", "sentence_transformers", "llama_cpp")
LOADED = b"press m to write the opening"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def new_story(path: Path) -> Path:
    file = StoryFile(path)
    file.init(Premise("A keeper finds a bottle."), "test")
    file.close()
    return path


def first_import(output: bytes, module: str) -> int:
    """Where ``-X importtime`` reports ``module`` imported in ``output`` (-1: never)."""
    found = re.search(rb"\|\s+" + module.encode() + rb"\s", output)
    return found.start() if found else -1


@pytest.mark.slow
def test_the_first_frame_comes_before_the_model_and_keys_answer_while_it_loads(
    tmp_path: Path,
) -> None:
    """``memora tui`` in a real 80x24 terminal, with Python reporting every import as it
    happens (to the same terminal): the main screen and its loading status are painted before
    torch, sentence-transformers or llama_cpp is imported; a key pressed meanwhile says the
    model is still loading; then the story appears, and q quits cleanly."""
    new_story(tmp_path / "s.db")
    env = {"MEMORA_DATA_DIR": str(tmp_path / "data"), "PYTHONPROFILEIMPORTTIME": "1"}
    with Terminal([str(MEMORA), "tui", "s.db"], cwd=tmp_path, env=env) as term:
        term.wait_for(b"Memory")  # the side pane's heading: the first frame
        term.send(b"m")
        term.wait_for(b"still loading")
        term.wait_for(LOADED, timeout=300)
        out = bytes(term.output)
        painted = out.index(b"Memory", out.index(b"\x1b[?1049h"))
        assert painted < out.index(b"loading the model") < out.index(b"still loading")
        for module in HEAVY:
            at = first_import(out, module)
            assert at > painted, (module, at, painted)
        assert out.index(b"still loading") < out.index(LOADED)
        term.send(b"q")
        assert term.process.wait(timeout=60) == 0
        assert b"Traceback" not in bytes(term.output)


@pytest.mark.slow
def test_quitting_while_it_loads_does_not_wait_for_the_load(tmp_path: Path) -> None:
    """q right after the first frame: the app ends cleanly (status 0, no traceback) without
    waiting for torch and sentence-transformers, which are still being imported."""
    new_story(tmp_path / "s.db")
    env = {"MEMORA_DATA_DIR": str(tmp_path / "data"), "PYTHONPROFILEIMPORTTIME": "1"}
    with Terminal([str(MEMORA), "tui", "s.db"], cwd=tmp_path, env=env) as term:
        term.wait_for(b"Memory")
        term.send(b"q")
        assert term.process.wait(timeout=60) == 0
        term.wait_for(b"\x1b[?1049l")  # the terminal is given back (read to the end)
        out = bytes(term.output)
        assert b"Traceback" not in out and b"Fatal Python error" not in out
        assert first_import(out, "sentence_transformers") == -1
        assert LOADED not in out


def test_importing_the_app_and_building_it_imports_no_model_library(tmp_path: Path) -> None:
    """What ``memora tui`` does before the first frame: import the CLI and the app, build the
    app over a story, without a model or embedder library in the process."""
    story = new_story(tmp_path / "s.db")
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import memora.cli
        from memora.tui.app import build_app
        app = build_app(Path({str(story)!r}), config_file=None, background=True)
        assert not app.loaded and app.startup is not None
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert done.stdout.strip() == "[]", done.stderr


def text_of(app: StoryApp, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


@pytest.mark.anyio
async def test_the_model_loads_in_a_worker_then_the_story_is_drawn(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled model, held at the gate until the test has pressed a key meanwhile."""
    gate = threading.Event()

    def gated_load(config: TuiConfig, settings: Settings) -> LLM:
        gate.wait(timeout=60)
        return load_llm(config, settings)

    monkeypatch.setattr(startup, "load_llm", gated_load)
    path = new_story(tmp_path / "s.db")
    app = build_app(path, embedder=embedder, config_file=None, background=True)
    async with app.run_test(size=(80, 24)) as pilot:
        assert "loading" in text_of(app, "#status") and not app.loaded
        await pilot.press("m")  # refused while loading, with the reason
        assert "still loading" in text_of(app, "#status") and not app.busy
        assert "no paragraphs yet" not in text_of(app, "#paragraphs")
        gate.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.loaded and app.owns_llm and app.engine.file.path == path
        assert "press m" in text_of(app, "#status")
        assert app.engine.llm.name in text_of(app, "#stats")
    app.close()


@pytest.mark.anyio
async def test_a_model_that_fails_to_load_is_a_message_then_another_can_be_chosen(
    tmp_path: Path, embedder: Embedder
) -> None:
    missing = tmp_path / "missing.gguf"
    path = tmp_path / "new.db"
    app = build_app(path, embedder=embedder, model=str(missing), background=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = text_of(app, "#status")
        assert "missing.gguf" in status and "settings" in status and not app.loaded
        assert "Traceback" not in status
        await pilot.press("u")  # nothing to undo without a story: says why
        assert "no model loaded" in text_of(app, "#status")
        await pilot.press("x")
        assert "no model loaded" in text_of(app, "#status")

        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        app.screen.query_one("#set-model", Input).value = "default"
        app.screen.query_one("#set-temperature", Input).value = "0.3"
        await pilot.press("ctrl+s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.loaded and app.config.model == "default" and app.engine.temperature == 0.3
        assert isinstance(app.screen, NewStoryScreen)  # the new file asks for a premise
    app.close()
    saved = TuiConfig.load(config_path(load_settings()))  # chosen here: kept for the next start
    assert (saved.model, saved.temperature) == ("default", 0.3)


def test_a_load_that_nobody_takes_any_more_is_closed(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app quit while its model loaded: the model is closed once it is there."""
    closed, gate = threading.Event(), threading.Event()

    class Closing(ScriptedLLM):
        def close(self) -> None:
            closed.set()
            super().close()

    def gated_load(config: TuiConfig, settings: Settings) -> LLM:
        gate.wait(timeout=60)
        return Closing(["unused"])

    monkeypatch.setattr(startup, "load_llm", gated_load)
    begun = startup.Startup(new_story(tmp_path / "s.db"), TuiConfig(), load_settings(),
                            embedder=embedder)  # fmt: skip
    loading = startup.Background(begun, lambda _: None)
    loading.abandon()
    gate.set()
    assert closed.wait(timeout=60)

"""What every part of the story app stands on: its state, drawing the story, the status line,
the input line, and the workers (the startup's load, writing steps, loading another model).

:class:`StoryAppBase` holds these; the actions are in :mod:`memora.tui.story_actions` and
:mod:`memora.tui.file_actions`, and :class:`memora.tui.app.StoryApp` puts them together with
the layout and the keys. Generation and model loading run off the UI thread (the startup's in
a :class:`~memora.tui.startup.Background` thread, so that the first frame comes first and
quitting does not wait for it); the UI thread only reads the story file and draws.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from memora.tui.prompt import InputMode, PromptLine
from memora.tui.settings import TuiConfig, load_llm, save_config
from memora.tui.startup import Background, Startup
from memora.tui.view import draw, escape, stats
from memora.tui.writer import Outcome, write_steps
from textual import work
from textual.app import App
from textual.containers import VerticalScroll
from textual.widgets import Static, TextArea

from memora.cli.boundary import as_memora_error
from memora.embed import Embedder
from memora.errors import MemoraError
from memora.llm.base import LLM
from memora.recurrent.engine import StoryEngine
from memora.recurrent.types import ChosenBy, Step
from memora.settings import Settings, load_settings

__all__ = ["StoryAppBase"]


class StoryAppBase(App[None]):
    """The story app's state and the parts its actions share."""

    def __init__(
        self,
        engine: StoryEngine | Startup,
        *,
        config: TuiConfig | None = None,
        settings: Settings | None = None,
        config_file: Path | None = None,
        owns_llm: bool = False,
        saved_model: str | None = None,
        **engine_options: Any,
    ) -> None:
        """``engine``: the story's engine, or the :class:`Startup` that loads it in a worker
        once the first frame is drawn (see :meth:`start_loading`). ``saved_model``: when
        ``config``'s model was given for this run only (``memora tui --model``), the model of
        the settings file, which saving the settings keeps there."""
        super().__init__()
        self.startup = engine if isinstance(engine, Startup) else None
        self._engine = engine if isinstance(engine, StoryEngine) else None
        self.settings = settings or load_settings()
        self.config = config or (
            engine.config
            if isinstance(engine, Startup)
            else TuiConfig.from_settings(self.settings).model_copy(
                update={"temperature": engine.temperature}
            )
        )
        self.config_file = config_file
        self.saved_model = saved_model
        self.run_model = self.config.model if saved_model is not None else None
        self.owns_llm = owns_llm
        self.engine_options = engine_options
        self.embedder: Embedder | None = self._engine.store.embedder if self._engine else None
        self.busy = False
        self.loading = False  # the startup's worker runs
        self._chosen = False  # the startup's model was chosen in the settings screen
        self._cancel = threading.Event()
        self._live = ""  # the paragraph being generated
        self.sub_title = engine.path.name if isinstance(engine, Startup) else engine.file.path.name

    @property
    def engine(self) -> StoryEngine:
        """The story's engine; only there once loaded (:meth:`idle` says whether it is)."""
        if self._engine is None:
            raise RuntimeError("the story is not loaded yet; check idle() first")
        return self._engine

    @engine.setter
    def engine(self, engine: StoryEngine) -> None:
        self._engine = engine

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    # -- drawing -------------------------------------------------------------------------

    def refresh_story(self) -> None:
        """Redraw everything from the story file (the one source of truth)."""
        view = draw(self.engine)
        self.query_one("#paragraphs", Static).update(view.paragraphs)
        self.query_one("#live", Static).update("")
        self.query_one("#plans", Static).update(view.plans)
        memory = self.query_one("#memory", TextArea)
        memory.load_text(view.memory)
        memory.read_only = True
        self.query_one("#retrieved", Static).update(view.retrieved)
        self.query_one("#stats", Static).update(view.stats)
        for part in self.query(".note"):
            part.display = bool(view.note)
        self.query_one("#note", Static).update(view.note)
        self.query_one("#story", VerticalScroll).scroll_end(animate=False)

    def set_status(self, text: str, *, error: bool = False) -> None:
        self.query_one("#status", Static).update(
            f"[red]{escape(text)}[/]" if error else escape(text)
        )

    def show_error(self, exc: MemoraError) -> None:
        self.set_status(f"{type(exc).__name__}: {exc}", error=True)

    # -- guards and edits ----------------------------------------------------------------

    def idle(self) -> bool:
        """Whether something new can start now (the story is loaded and nothing runs);
        otherwise says why."""
        if self.busy:
            self.set_status("busy: wait, or press Esc to cancel")
            return False
        if self.loading:
            self.set_status("still loading: the keys work once the model is loaded")
            return False
        if self._engine is None:
            self.set_status("no model loaded: s opens the settings to choose one, q quits")
            return False
        return True

    def head_if_idle(self) -> Step | None:
        """The head when the story has one and nothing runs; otherwise None (and says why)."""
        if not self.idle():
            return None
        head = self.engine.head if self.engine.file.exists else None
        if head is None:
            self.set_status(
                "no paragraphs yet: press m to write the opening"
                if self.engine.file.exists
                else "no story open: ctrl+n starts one, ctrl+o opens one"
            )
        return head

    def safely(self, do: Callable[[], object], done: str) -> None:
        """Run the edit ``do``; redraw and say ``done``, or show the error it raised."""
        try:
            do()
        except Exception as exc:  # the same boundary as the command line's
            error = as_memora_error(exc)
            if error is None:
                raise
            self.show_error(error)
            return
        self.refresh_story()
        self.query_one("#story").focus()
        self.set_status(done)

    # -- the input line ------------------------------------------------------------------

    @property
    def prompt(self) -> PromptLine:
        return self.query_one("#prompt", PromptLine)

    def ask(self, mode: InputMode, value: str = "") -> None:
        """Show the input line in ``mode`` (holding ``value``); its answer comes back to the
        app's ``Input.Submitted`` handler."""
        self.prompt.ask(mode, value)
        self.set_status(mode.placeholder)

    def close_prompt(self) -> InputMode | None:
        """Hide the input line and focus the story; the mode it was asking in."""
        mode = self.prompt.close()
        self.query_one("#story").focus()
        return mode

    # -- writing steps -------------------------------------------------------------------

    def generate(
        self, plan: str | None, chosen_by: ChosenBy | None, steps: int, *, swipe: bool = False
    ) -> None:
        """Write ``steps`` steps in a worker, the first on ``plan`` (None: the model picks);
        with ``swipe``, another version of the latest paragraph."""
        self.busy = True
        self._cancel.clear()
        self.set_status("writing... (esc cancels)")
        self._write(plan, chosen_by, steps, swipe)

    def cancel_writing(self) -> None:
        self._cancel.set()

    @work(thread=True, exclusive=True, group="story")
    def _write(self, plan: str | None, chosen_by: ChosenBy | None, steps: int, swipe: bool) -> None:
        outcome = write_steps(self.engine, plan, chosen_by, steps, cancel=self._cancel,
                              listener=_Relay(self), swipe=swipe)  # fmt: skip
        self.call_from_thread(self._finished, outcome)

    def append_live(self, piece: str) -> None:
        self._live += piece
        self.query_one("#live", Static).update(escape(self._live))
        self.query_one("#story", VerticalScroll).scroll_end(animate=False)

    def clear_live(self) -> None:
        self._live = ""
        self.query_one("#live", Static).update("")
        self.set_status("writing... (esc cancels)")

    def _finished(self, outcome: Outcome) -> None:
        self.busy = False
        self.refresh_story()
        self.set_status(outcome.message, error=outcome.error)

    def on_unmount(self) -> None:
        self._cancel.set()

    # -- the model -----------------------------------------------------------------------

    def start_loading(self, config: TuiConfig | None = None) -> None:
        """Load the startup's model, embedder and story in a worker, the status line saying
        which; the story is drawn (and the keys work) when it is done. ``config``: load that
        model instead (after a failed start, from the settings screen)."""
        assert self.startup is not None
        if config is not None:
            self.config, self._chosen = config, True
            self.engine_options["temperature"] = config.temperature
            self.startup = replace(self.startup, config=config, engine_options=self.engine_options)
        self.loading = True
        self.set_status("loading...")
        self._load_story(self.startup)

    @work(exclusive=True, group="model")
    async def _load_story(self, startup: Startup) -> None:
        loading = Background(startup, self._say)
        try:
            engine, owns = await loading.result()
        except asyncio.CancelledError:  # the app quits
            loading.abandon()
            raise
        except _Quit:
            return
        except Exception as exc:  # the same boundary as the command line's
            error = as_memora_error(exc)
            if error is None:
                raise
            self._start_failed(error)
            return
        self._started(engine, owns)

    def _say(self, text: str) -> None:
        """The status line, set from the startup's thread."""
        try:
            self.call_from_thread(self.set_status, text)
        except RuntimeError as exc:  # the app is not running: stop loading
            raise _Quit from exc

    def _started(self, engine: StoryEngine, owns: bool) -> None:
        self.loading = False
        self.engine, self.owns_llm, self.embedder = engine, owns, engine.store.embedder
        if self._chosen and self.config_file is not None:  # kept for the next start
            save_config(self._to_save(self.config), self.config_file, self.settings)
        self.loaded_story()

    def loaded_story(self) -> None:
        """Draw the story once it is loaded (the app's own start)."""

    def _start_failed(self, exc: MemoraError) -> None:
        self.loading = False
        fix = "s opens the settings to choose another model, q quits"
        self.set_status(f"{type(exc).__name__}: {exc} ({fix})", error=True)

    def reload(self, config: TuiConfig, then: Callable[[], None] | None = None) -> None:
        """Load the model ``config`` names in a worker; on success swap it in, save the
        settings and run ``then``. On failure the old model stays."""
        self.busy = True
        self.set_status(f"loading {config.model}...")
        self._load(config, then)

    @work(thread=True, exclusive=True, group="model")
    def _load(self, config: TuiConfig, then: Callable[[], None] | None) -> None:
        try:
            llm = load_llm(config, self.settings)
        except Exception as exc:  # the same boundary as the command line's
            error = as_memora_error(exc)
            if error is None:
                raise
            self.call_from_thread(self._load_failed, error)
            return
        self.call_from_thread(self.apply_config, config, llm, then)

    def _load_failed(self, exc: MemoraError) -> None:
        self.busy = False
        self.set_status(f"{type(exc).__name__}: {exc} (the model in use stays)", error=True)

    def apply_config(
        self, config: TuiConfig, llm: LLM | None, then: Callable[[], None] | None = None
    ) -> None:
        """Use ``config`` from now on (and ``llm``, when the model was reloaded); persist it."""
        self.busy = False
        if llm is not None:
            old = self.engine.llm
            self.engine.configure(llm=llm)
            if self.owns_llm:
                old.close()
            self.owns_llm = True
        self.config = config
        self.engine.configure(temperature=config.temperature)
        self.engine_options["temperature"] = config.temperature
        message = f"using {self.engine.llm.name}"
        if self.config_file is not None:
            message += "; " + save_config(self._to_save(config), self.config_file, self.settings)
        self.query_one("#stats", Static).update(stats(self.engine, self.engine.head))
        self.set_status(message)
        if then is not None:
            then()

    def _to_save(self, config: TuiConfig) -> TuiConfig:
        """``config`` as the settings file keeps it: a model given for this run only is not
        saved (the file's stays) until another one is chosen in the app."""
        if self.run_model is None or self.saved_model is None:
            return config
        if config.model != self.run_model:
            self.run_model = self.saved_model = None  # chosen here: saved from now on
            return config
        return config.model_copy(update={"model": self.saved_model})

    def close(self) -> None:
        """Close the story file, and the model when the app loaded it (nothing when the story
        was never loaded: a load still running closes what it loads itself)."""
        if self._engine is None:
            return
        self._engine.close()
        if self.owns_llm:
            self._engine.llm.close()


class _Quit(Exception):
    """Raised from the startup's status callback to stop loading once the app has quit."""


class _Relay:
    """The writer's listener: each event is drawn on the app's UI thread (the worker waits
    until it is)."""

    def __init__(self, app: StoryAppBase) -> None:
        self.app = app

    def starting(self) -> None:
        self.app.call_from_thread(self.app.clear_live)

    def text(self, piece: str) -> None:
        self.app.call_from_thread(self.app.append_live, piece)

    def planning(self, chars: int) -> None:
        self.app.call_from_thread(
            self.app.set_status, f"planning the next steps... {chars} chars (esc cancels)"
        )

    def saved(self, step: Step) -> None:
        self.app.call_from_thread(self.app.refresh_story)

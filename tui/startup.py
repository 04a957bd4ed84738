"""What the story app loads before it can write: the model, the embedder and the story engine
over the file, each step announced as it starts.

No UI here: :meth:`Startup.load` runs in a :class:`Background` thread (awaited by the app's
worker) after the first frame is drawn, so the window is up before llama.cpp, torch or
sentence-transformers is imported (they take seconds); :func:`memora.tui.app.build_app` runs
it at once when both the model and the embedder are given.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memora.tui.settings import TuiConfig, load_llm

from memora.embed import Embedder, load_embedder
from memora.llm.base import LLM
from memora.recurrent.engine import StoryEngine
from memora.settings import Settings

__all__ = ["Background", "Startup"]


@dataclass(frozen=True)
class Startup:
    """The story file ``path`` to open, with ``llm`` and ``embedder`` where they are given, else
    the model ``config`` names and ``settings``' embedder."""

    path: Path
    config: TuiConfig
    settings: Settings
    llm: LLM | None = None
    embedder: Embedder | None = None
    engine_options: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Whether nothing slow is left to load (the model and the embedder are given)."""
        return self.llm is not None and self.embedder is not None

    def load(self, say: Callable[[str], None] = lambda _: None) -> tuple[StoryEngine, bool]:
        """The engine over the story file, and whether its model was loaded here (then the app
        owns it and closes it). ``say`` hears what is being loaded before each slow step; what
        it raises stops the loading (a model loaded here is closed first)."""
        llm = self.llm
        if llm is None:
            say(f"loading the model {self.config.model}...")
            llm = load_llm(self.config, self.settings)
        try:
            embedder = self.embedder
            if embedder is None:
                say("loading the embedder (torch, sentence-transformers)...")
                embedder = load_embedder(self.settings.embedder)
            say(f"opening {self.path.name}...")
            return StoryEngine(llm, self.path, embedder=embedder, **self.engine_options), (
                self.llm is None
            )
        except BaseException:
            if self.llm is None:
                llm.close()
            raise


class Background:
    """:meth:`Startup.load` in a daemon thread: ``await`` :meth:`result` for what it loaded.

    Not an executor's thread, which the app would wait for when it quits: an import cannot be
    interrupted, and quitting while torch loads should not take seconds. :meth:`abandon` says
    that nobody will take the result: what was loaded is closed, now or once it is done."""

    def __init__(self, startup: Startup, say: Callable[[str], None]) -> None:
        self._future: Future[tuple[StoryEngine, bool]] = Future()
        self._future.set_running_or_notify_cancel()  # only the thread settles it
        self._lock = threading.Lock()
        self._abandoned = False
        thread = threading.Thread(
            target=self._run, args=(startup, say), name="memora-tui-startup", daemon=True
        )
        thread.start()

    def _run(self, startup: Startup, say: Callable[[str], None]) -> None:
        try:
            loaded = startup.load(say)
        except BaseException as exc:  # noqa: BLE001 - raised where the result is awaited
            self._future.set_exception(exc)
            return
        with self._lock:
            if not self._abandoned:
                self._future.set_result(loaded)
                return
        _close(*loaded)

    async def result(self) -> tuple[StoryEngine, bool]:
        """The engine and whether its model was loaded here (see :meth:`Startup.load`)."""
        return await asyncio.wrap_future(self._future)

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            done = self._future.done() and self._future.exception() is None
        if done:
            _close(*self._future.result())


def _close(engine: StoryEngine, owns_llm: bool) -> None:
    engine.close()
    if owns_llm:
        engine.llm.close()

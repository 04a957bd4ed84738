"""What the story app loads before it can write: the model, the embedder and the story engine
over the file, each step announced as it starts.

No UI here: :meth:`Startup.load` runs in the app's worker thread after the first frame is
drawn, so the window is up before llama.cpp, torch or sentence-transformers is imported (they
take seconds); :func:`memora.tui.app.build_app` runs it at once when both the model and the
embedder are given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memora.tui.settings import TuiConfig, load_llm

from memora.embed import Embedder, load_embedder
from memora.llm.base import LLM
from memora.recurrent.engine import StoryEngine
from memora.settings import Settings

__all__ = ["Startup"]


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

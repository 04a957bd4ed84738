"""Esc in the TUI: a step stops within a second at any point, before its first token too
(the prompt's evaluation is stopped inside llama.cpp), and the story keeps what was saved."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("textual")

from memora.tui.writer import Outcome, write_steps

from memora.embed import load_embedder
from memora.llm.llamacpp import LlamaCppLLM
from memora.recurrent import Premise, StoryEngine
from memora.recurrent.types import Step

OUTLINE = " ".join(
    f"{n}. The keeper logs the weather, trims the wick and watches the sea for ships."
    for n in range(1, 80)
)


class Recorder:
    """A writer listener that keeps what it was told."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def starting(self) -> None:
        pass

    def text(self, piece: str) -> None:
        self.pieces.append(piece)

    def planning(self, chars: int) -> None:
        pass

    def saved(self, step: Step) -> None:
        pass


@pytest.mark.slow
def test_cancel_before_the_first_token_returns_within_a_second(tmp_path: Path) -> None:
    llm = LlamaCppLLM("default", n_ctx=4096, n_threads=1, seed=0)
    with llm, StoryEngine(llm, tmp_path / "s.db", embedder=load_embedder()) as engine:
        engine.create(Premise("A keeper finds a bottle that predicts storms.", outline=OUTLINE))
        cancel, listener, ended = threading.Event(), Recorder(), {}

        def run() -> None:
            ended["outcome"] = write_steps(engine, None, None, 1, cancel=cancel,
                                           listener=listener)  # fmt: skip
            ended["at"] = time.monotonic()

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(3.0)
        assert thread.is_alive() and not listener.pieces, "still evaluating the prompt"
        cancel.set()
        set_at = time.monotonic()
        thread.join(timeout=60)
        outcome = ended["outcome"]
        assert isinstance(outcome, Outcome) and not outcome.error, outcome
        assert "cancelled" in outcome.message and ended["at"] - set_at < 1.0
        assert engine.head is None and engine.file.failed_steps == 0  # nothing kept or counted

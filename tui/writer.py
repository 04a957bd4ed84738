"""Writing steps: one or more steps of a story in a row, what the model writes streamed to a
listener, stopped cleanly when cancelled (finished steps are saved as they complete).

No UI here: :func:`write_steps` runs in the app's worker thread, and the app's listener hands
each event to the UI thread.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from memora.cli.boundary import as_memora_error
from memora.errors import GenerationCancelledError
from memora.recurrent.engine import StoryEngine
from memora.recurrent.types import ChosenBy, Step

__all__ = ["Listener", "Outcome", "version", "write_steps"]


class _Cancelled(Exception):
    """Raised from the streaming callbacks to stop a step when the run is cancelled."""


class Listener(Protocol):
    """What :func:`write_steps` reports as it runs, from the thread it runs in."""

    def starting(self) -> None:
        """A step starts (the text streamed for the one before is done with)."""

    def text(self, piece: str) -> None:
        """The next piece of the paragraph being written."""

    def planning(self, chars: int) -> None:
        """The summary and plans after the paragraph: ``chars`` characters so far."""

    def saved(self, step: Step) -> None:
        """``step`` is finished and saved in the story file."""


@dataclass(frozen=True)
class Outcome:
    """How a run of steps ended, said for the status line."""

    message: str
    error: bool = False


def write_steps(
    engine: StoryEngine,
    plan: str | None,
    chosen_by: ChosenBy | None,
    steps: int,
    *,
    cancel: threading.Event,
    listener: Listener,
    swipe: bool = False,
) -> Outcome:
    """Write ``steps`` steps, the first on ``plan`` (None: the model chooses, as it does for the
    rest); with ``swipe``, one other version of the latest paragraph instead (its plan and its
    parent, :meth:`StoryEngine.swipe`). Setting ``cancel`` drops the step being written, at any
    point of it (a model that can, such as llama.cpp's, is stopped in the middle of evaluating
    a prompt); the finished ones stay. A :class:`MemoraError` ends the run and is the outcome
    (the story keeps what was saved)."""
    done, message, planned = 0, "", 0

    def on_text(piece: str) -> None:
        if cancel.is_set():
            raise _Cancelled
        listener.text(piece)

    def on_plan(piece: str) -> None:
        nonlocal planned
        if cancel.is_set():
            raise _Cancelled
        planned += len(piece)
        listener.planning(planned)

    try:
        with _watched(engine.llm, cancel):
            for _ in range(steps):
                if cancel.is_set():
                    break
                planned = 0
                listener.starting()
                if swipe:
                    step = engine.swipe(on_text=on_text, on_plan_text=on_plan)
                else:
                    step = engine.step(plan, chosen_by=chosen_by, on_text=on_text,
                                       on_plan_text=on_plan)  # fmt: skip
                plan, chosen_by, done = None, None, done + 1
                listener.saved(step)
                message = f"step #{step.id} written" + (f" ({done}/{steps})" if steps > 1 else "")
                if swipe:
                    message += f": {version(engine)}"
        if cancel.is_set():
            message = f"cancelled after {done} of {steps} steps; finished steps are saved"
    except (_Cancelled, GenerationCancelledError):
        message = f"cancelled: {done} finished steps are saved, the unfinished one dropped"
    except Exception as exc:  # the same boundary as the command line's
        error = as_memora_error(exc)
        if error is None:
            raise  # a bug: textual shows it
        return Outcome(f"{type(error).__name__}: {error}", error=True)
    return Outcome(message)


def _watched(llm: Any, cancel: threading.Event) -> contextlib.AbstractContextManager[None]:
    """``llm.cancel_on(cancel)`` where the model has it (it stops even a prompt's evaluation);
    other models are stopped by the streaming callbacks alone."""
    watch = getattr(llm, "cancel_on", None)
    return watch(cancel) if watch is not None else contextlib.nullcontext()


def version(engine: StoryEngine) -> str:
    """Which version of the latest paragraph the head is: "version i of n"."""
    head = engine.head
    versions = [s.id for s in engine.swipes()]
    at = versions.index(head.id) + 1 if head is not None and head.id in versions else 0
    return f"version {at} of {len(versions)}"

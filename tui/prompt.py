"""The input line under the plans: what it asks for (:class:`InputMode`), the widget that asks
(:class:`PromptLine`), and what an answer does in each mode (:func:`answer`)."""

from __future__ import annotations

from enum import Enum, unique
from pathlib import Path
from typing import Protocol, assert_never

from textual.widgets import Input

from memora.recurrent.engine import StoryEngine
from memora.recurrent.types import ChosenBy

__all__ = ["MAX_CONTINUE", "InputMode", "PromptHost", "PromptLine", "answer"]

MAX_CONTINUE = 50


@unique
class InputMode(Enum):
    """What the input line asks for; the value is the placeholder it shows (and the status line
    repeats). Each mode's answer is handled in :func:`answer`."""

    STEPS = f"how many steps, the model choosing? 1-{MAX_CONTINUE} (enter: write them, esc: back)"
    OWN_PLAN = "your plan for the next paragraph (enter: write it, esc: back)"
    WHICH_PLAN = "edit which plan? 1, 2 or 3 (esc: back)"
    EDITED_PLAN = "the edited plan (enter: write it)"
    SAVE_AS = "save a copy as (enter: save it and continue in the copy)"
    AUTHOR_NOTE = "the author's note, read before every paragraph (enter: save, empty clears)"

    @property
    def placeholder(self) -> str:
        return self.value


class PromptLine(Input):
    """The input line: hidden until :meth:`ask` shows it in one mode, hidden again by
    :meth:`close`."""

    mode: InputMode | None = None

    def ask(self, mode: InputMode, value: str = "") -> None:
        """Show the line for ``mode``, holding ``value``, and focus it."""
        self.mode = mode
        self.value = value
        self.placeholder = mode.placeholder
        self.remove_class("hidden")
        self.focus()

    def close(self) -> InputMode | None:
        """Hide the line; the mode it was asking in (None when it was not asking)."""
        mode, self.mode = self.mode, None
        self.add_class("hidden")
        return mode


class PromptHost(Protocol):
    """What an answer acts on: the app."""

    @property
    def engine(self) -> StoryEngine: ...

    def ask(self, mode: InputMode, value: str = "") -> None: ...

    def generate(self, plan: str | None, chosen_by: ChosenBy | None, steps: int) -> None: ...

    def save_as(self, target: Path) -> None: ...

    def set_note(self, text: str) -> None: ...

    def set_status(self, text: str, *, error: bool = False) -> None: ...


def answer(host: PromptHost, mode: InputMode, value: str) -> None:
    """Act on ``value`` (stripped; empty only for the author's note, which it clears), typed
    into the input line in ``mode``. An answer the mode cannot take is refused in the status
    line."""
    match mode:
        case InputMode.STEPS:
            if not value.isdigit() or not 1 <= int(value) <= MAX_CONTINUE:
                host.set_status(f"{value!r}: type a number of steps from 1 to {MAX_CONTINUE}")
                return
            host.generate(None, None, int(value))
        case InputMode.OWN_PLAN:
            host.generate(value, "own", 1)
        case InputMode.WHICH_PLAN:
            head = host.engine.head
            if value not in ("1", "2", "3") or head is None:
                host.set_status(f"{value!r}: type 1, 2 or 3")
                return
            host.ask(InputMode.EDITED_PLAN, head.plans[int(value) - 1])
        case InputMode.EDITED_PLAN:
            host.generate(value, "edited", 1)
        case InputMode.SAVE_AS:
            host.save_as(Path(value).expanduser())
        case InputMode.AUTHOR_NOTE:
            host.set_note(value)
        case _:
            assert_never(mode)

"""The TUI's error boundary: what escapes a step is shown as a typed memora error, a bug is not
hidden."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest
from memora.tui.writer import write_steps


class _Listener:
    def starting(self) -> None: ...
    def text(self, piece: str) -> None: ...
    def planning(self, chars: int) -> None: ...
    def saved(self, step: Any) -> None: ...


class _Engine:
    def __init__(self, error: BaseException) -> None:
        self.error, self.llm = error, object()

    def step(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (PermissionError(13, "Permission denied", "/tmp/story.db"), "FileAccessError"),
        (sqlite3.OperationalError("disk I/O error"), "Error"),
        (ConnectionRefusedError(111, "Connection refused"), "ConnectionFailedError"),
    ],
)
def test_what_escapes_a_step_is_one_typed_error(error: BaseException, shown: str) -> None:
    outcome = write_steps(_Engine(error), "a plan", None, 1,  # type: ignore[arg-type]
                          cancel=threading.Event(), listener=_Listener())  # fmt: skip
    assert outcome.error and shown in outcome.message.split(":")[0]


def test_a_bug_is_not_hidden() -> None:
    with pytest.raises(KeyError):
        write_steps(_Engine(KeyError("x")), "a plan", None, 1,  # type: ignore[arg-type]
                    cancel=threading.Event(), listener=_Listener())  # fmt: skip

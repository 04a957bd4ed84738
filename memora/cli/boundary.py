"""The command line's one error boundary: whatever escapes a command reaches the user as one
``error: <ErrorClass>: <message>`` line on stderr and exit code 1, never as a traceback.

A :class:`~memora.errors.MemoraError` is shown as it is. What the standard library or an HTTP
client raises is named by the memora error it means (:func:`as_memora_error`): a file that
cannot be read or written is a ``FileAccessError`` with its path, a locked database a
``StoreBusyError``, a file that is not UTF-8 or not JSON an ``InputFormatError``, a broken
connection a ``ConnectionFailedError``. Anything else is a bug: its own class name is shown
with a request to report it. Ctrl-C prints ``interrupted`` and exits 130. ``memora --debug``
(or ``MEMORA_DEBUG=1``) lets the exception through with its full traceback instead.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from memora.errors import (
    BackendError,
    ConnectionFailedError,
    DamagedFileError,
    FileAccessError,
    InputFormatError,
    MemoraError,
    NotMemoraFileError,
    ProtocolError,
    ServerError,
    StoreBusyError,
    StoreError,
)

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "as_memora_error", "report"]

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

_BUG = "an unexpected error, probably a bug in memora: rerun with --debug for the traceback and "
_BUG += "report it"


def report(exc: BaseException, console: Console) -> int:
    """Print ``exc`` as one line on ``console`` and return the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        console.print(Text("interrupted", style="yellow"))
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError) and _stdout_is_a_closed_pipe():
        return EXIT_ERROR  # the reader went away (memora ... | head): nothing to say to it
    error = as_memora_error(exc) if isinstance(exc, Exception) else None
    if error is None:
        said = _one_line(str(exc))
        name, message = type(exc).__name__, f"{said} ({_BUG})" if said else _BUG
    else:
        name, message = type(error).__name__, _one_line(str(error))
    console.print(Text.assemble(("error:", "bold red"), f" {name}: {message}"))
    return EXIT_ERROR


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _stdout_is_a_closed_pipe() -> bool:
    """Whether stdout is a pipe; if so, point it at /dev/null so that the interpreter's last
    flush does not fail a second time."""
    try:
        if not stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode):
            return False
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test runner's buffer): not that case
        return False
    return True


def as_memora_error(exc: Exception) -> MemoraError | None:
    """The memora error that ``exc`` means, or None for an exception that is a bug."""
    if isinstance(exc, MemoraError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return _sqlite_error(exc)
    if isinstance(exc, ConnectionError):
        return ConnectionFailedError(
            f"a connection failed: {exc}. Check that the server is running and reachable, "
            "then retry"
        )
    if isinstance(exc, TimeoutError):
        return ConnectionFailedError(
            f"timed out waiting for an answer ({exc or 'no detail'}): check that the server "
            "or the resource waited on is responsive, then retry"
        )
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        return InputFormatError(
            f"an input is not UTF-8 text ({exc.reason} at byte {exc.start}): save the file as UTF-8"
        )
    if isinstance(exc, json.JSONDecodeError):
        return InputFormatError(
            f"an input is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
            "fix the file"
        )
    return _client_error(exc)


def _os_error(exc: OSError) -> FileAccessError:
    path = exc.filename if exc.filename is not None else None
    where = f"{path}" if path is not None else "a file"
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    if isinstance(exc, FileNotFoundError):
        why = f"{where} does not exist: check the path (relative paths start at {os.getcwd()})"
    elif isinstance(exc, IsADirectoryError):
        why = f"{where} is a folder: give the path of a file"
    elif isinstance(exc, NotADirectoryError):
        why = f"{where}: a part of this path is a file, not a folder: check the path"
    elif isinstance(exc, PermissionError):
        why = f"no permission to use {where}: fix its permissions or choose another path"
    elif isinstance(exc, FileExistsError):
        why = f"{where} already exists: remove it or choose another path"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = f"no space left writing {where}: free some space, then retry"
    elif exc.errno == errno.EROFS:
        why = f"{where} is on a read-only file system: choose another path"
    else:
        why = f"{where}: {exc.strerror or exc}"
    return FileAccessError(why)


def _sqlite_error(exc: sqlite3.Error) -> StoreError | FileAccessError:
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return StoreBusyError(
            f"the database is locked by another memora process ({text}): retry when it is done"
        )
    if "unable to open" in low:
        return FileAccessError(
            f"the database file cannot be opened ({text}): check that its folder exists and "
            "is writable"
        )
    if "readonly" in low or "read-only" in low:
        return FileAccessError(
            f"the database file is read-only ({text}): fix its permissions, or use a copy"
        )
    if "disk is full" in low or "disk i/o" in low:
        return FileAccessError(f"the database file cannot be written ({text}): free some space")
    if "not a database" in low:
        return NotMemoraFileError(
            f"the file is not a memora database ({text}): give the path of a memora file"
        )
    if "malformed" in low or "corrupt" in low:
        return DamagedFileError(f"the database file is damaged ({text}): restore it from a copy")
    return StoreError(f"the database refused the operation: {exc}")


def _client_error(exc: Exception) -> BackendError | None:
    """An HTTP client's error that a backend did not map itself (modules already imported
    only: an exception of a module that was never imported cannot be here)."""
    for name in ("httpx", "httpx2"):
        module: Any = sys.modules.get(name)
        if module is None:
            continue
        if isinstance(exc, module.TransportError):  # timeouts included
            return ConnectionFailedError(
                f"a connection failed: {type(exc).__name__}: {exc}. Check that the server is "
                "running and reachable, then retry"
            )
        if isinstance(exc, module.HTTPStatusError):
            return ServerError(f"the server refused a request: {exc}")
        if isinstance(exc, module.HTTPError):
            return ProtocolError(f"the server's answer could not be read: {exc}")
    openai: Any = sys.modules.get("openai")
    if openai is not None and isinstance(exc, openai.OpenAIError):
        return BackendError(f"the OpenAI-compatible endpoint failed: {exc}")
    return None

"""A command in a real pseudo-terminal, for the tests and the start-up benchmark of the TUI:
what it paints is read as raw bytes, and :meth:`Terminal.wait_for` says when some text first
appears on the alternate screen (the one a Textual app draws on).

    with Terminal([memora, "tui", "story.db"], cwd=tmp) as term:
        seconds = term.wait_for(b"loading")
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["ALT_SCREEN", "Terminal"]

#: Switches to the alternate screen: a full-screen app starts drawing after it.
ALT_SCREEN = b"\x1b[?1049h"


class Terminal:
    """``command`` started in a pseudo-terminal of ``size`` (columns, rows), in its own session,
    timed from just before it starts."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        size: tuple[int, int] = (80, 24),
    ) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        environ = {**os.environ, **(env or {}), "TERM": "xterm-256color"}
        environ["COLUMNS"], environ["LINES"] = str(size[0]), str(size[1])
        self.master = master
        self.output = bytearray()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            list(command), stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=environ,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
        os.close(slave)

    def screen(self) -> bytes:
        """What was painted after the switch to the alternate screen (empty before it)."""
        at = self.output.find(ALT_SCREEN)
        return b"" if at < 0 else bytes(self.output[at + len(ALT_SCREEN) :])

    def wait_for(self, text: bytes, timeout: float = 60.0) -> float:
        """Seconds from the start until ``text`` is painted on the alternate screen; raises
        TimeoutError (with what was painted) when it is not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while text not in self.screen():
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise TimeoutError(f"{text!r} not painted; the output: {bytes(self.output)!r}")
        return time.monotonic() - self.started

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def _read(self, timeout: float) -> bool:
        """Read what is there within ``timeout``; False once the command has closed the
        terminal (it ended)."""
        ready, _, _ = select.select([self.master], [], [], min(timeout, 0.5))
        if not ready:
            return self.process.poll() is None
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the command ended and closed the terminal
            return False
        self.output += chunk
        return bool(chunk)

    def close(self) -> None:
        """End the command (its whole session) and the terminal."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        os.close(self.master)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

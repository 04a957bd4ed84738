"""Running ``memora serve`` for tests: a real server process on a free port of 127.0.0.1,
started with the CLI and waited for on ``/healthz``; API keys made with ``memora keys
create``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "MEMORA_N_THREADS": "1"}  # fmt: skip


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memora.cli", *argv], env=ENV, text=True,
                          capture_output=True, timeout=120, check=False)  # fmt: skip


def create_key(db: str | Path, *args: str) -> tuple[str, str]:
    """A new key's secret and id, through the CLI."""
    done = cli("keys", "create", "--db", str(db), *args)
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    key_id = done.stderr.split()[1]
    assert secret.startswith("mk_") and key_id in secret
    return secret, key_id


@dataclass
class Served:
    """A running server: its URL, process and log."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, secret: str | None) -> httpx.Client:
        headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)


def start(db: str | Path, *extra: str, log: Path) -> Served:
    """``memora serve --db db`` with ``extra`` options, once ``/healthz`` answers."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "memora.cli", "serve", "--db", str(db),
                                 "--port", str(port), *extra],
                                env=ENV, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    server = Served(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"memora serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"memora serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.25)


@contextmanager
def running(db: str | Path, *extra: str, log: Path) -> Iterator[Served]:
    """:func:`start`, stopped when the block ends."""
    server = start(db, *extra, log=log)
    try:
        yield server
    finally:
        server.stop()

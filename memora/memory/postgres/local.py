"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` into a folder, ``pg_ctl
start`` on a Unix socket in it (no TCP port), dropped by :meth:`LocalPostgres.stop`.

It uses the machine's PostgreSQL binaries (``MEMORA_PG_BIN``, else ``/usr/lib/postgresql/15/bin``
or ``pg_ctl`` on the PATH) and needs the pgvector extension installed for them
(``scripts/install-pgvector.sh``; ``make venv`` runs it). PostgreSQL refuses to run as root, so
as root the server runs as the ``nobody`` user, in a folder given to it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from memora.errors import ConfigError

__all__ = ["LocalPostgres", "pg_bin"]

_USER = "memora"


def pg_bin() -> Path:
    """The folder of the PostgreSQL server binaries."""
    for candidate in (
        os.environ.get("MEMORA_PG_BIN"),
        "/usr/lib/postgresql/15/bin",
        str(Path(shutil.which("pg_ctl") or "/nonexistent").resolve().parent),
    ):
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise ConfigError(
        "no PostgreSQL server binaries found (initdb, pg_ctl); install postgresql-15 or set "
        "MEMORA_PG_BIN to their folder"
    )


class LocalPostgres:
    """One PostgreSQL cluster in a temporary folder, reachable at :attr:`dsn` over a Unix
    socket. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, root: str | Path | None = None, *, settings: dict[str, str] | None = None):
        self.bin = pg_bin()
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="memora-pg-"))
        self.data = self.root / "data"
        self.socket = self.root / "sock"
        self.settings = {"fsync": "off", "max_connections": "100", **(settings or {})}
        self._as: pwd.struct_passwd | None = pwd.getpwnam("nobody") if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://{_USER}@/postgres?host={self.socket}"

    def url(self, database: str = "postgres", user: str = _USER) -> str:
        return f"postgresql://{user}@/{database}?host={self.socket}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        preexec = None
        if self._as is not None:
            uid, gid = self._as.pw_uid, self._as.pw_gid

            def preexec() -> None:
                os.setgid(gid)
                os.setuid(uid)

        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]], capture_output=True, text=True,
            preexec_fn=preexec, cwd=self.root, check=False, timeout=120,
        )  # fmt: skip

    def start(self) -> LocalPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket.mkdir(exist_ok=True)
        if self._as is not None:
            os.chmod(self.root, 0o755)
            for path in (self.root, self.socket):
                os.chown(path, self._as.pw_uid, self._as.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            done = self._run("initdb", "-D", str(self.data), "-U", _USER, "--auth=trust",
                             "--encoding=UTF8", "--no-sync")  # fmt: skip
            if done.returncode:
                raise ConfigError(f"initdb failed in {self.data}: {done.stderr.strip()}")
        options = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                         "-w", "-t", "60", "start", "-o",
                         f"-c listen_addresses='' -k {self.socket} {options}")  # fmt: skip
        if done.returncode:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise ConfigError(f"PostgreSQL did not start in {self.root}: {done.stderr}\n{log}")
        return self

    def stop(self, *, remove: bool = True) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its DSN."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

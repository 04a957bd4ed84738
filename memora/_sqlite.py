"""SQLite plumbing for every file memora writes: one connection per file, WAL, a busy timeout
with a bounded retry, write transactions that nest, and versioned schemas per component.

A memora file can hold several components (the memory store, the neural memory, a story, an
agent journal). Each registers a :class:`Component`: the statements that create its current
version and the statements that bring version N to N + 1. The table
``schema_versions(component, version)`` records where each component of a file stands;
:meth:`Database.ensure` creates or migrates a component in one transaction (concurrent openers
migrate once) and refuses a file written by a newer memora. Opening a file whose components are
current writes nothing.

Files from releases before ``schema_versions`` existed carry the memory schema's version in
``PRAGMA user_version`` (1 or 2) and no version for the other components; each of those says
how to recognise its tables there (:attr:`Component.legacy`). Such files migrate in place, and
their ``user_version`` is raised to :data:`FILE_FORMAT`, which those releases refuse to open.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memora.errors import (
    ClosedError,
    DamagedFileError,
    NotMemoraFileError,
    ReadOnlyError,
    SchemaVersionError,
    StoreBusyError,
)

__all__ = ["FILE_FORMAT", "MEMORA_TABLES", "Component", "Database", "has_table", "run_script"]

#: ``PRAGMA user_version`` of a file whose components are versioned in ``schema_versions``.
#: Releases before it wrote 1 or 2 there and refuse anything higher.
FILE_FORMAT = 3

#: Tables whose presence marks a file as memora's: the version table, and the first table of
#: each component in files of releases before it.
MEMORA_TABLES = frozenset({"schema_versions", "memories", "story_meta", "agent_turns"})

_COMPONENTS: list[Component] = []

BUSY_TIMEOUT_MS = 30_000
#: Retries of a statement that still finds the database locked after the busy timeout.
LOCK_RETRIES = 5

_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class Component:
    """One part of a memora file with its own tables and schema version.

    Attributes:
        name: the key in ``schema_versions``.
        version: the version this release writes.
        schema: statements that create the current version from nothing (``;``-separated).
        migrations: statements that bring version N (the key) to N + 1.
        legacy: for a file without a ``schema_versions`` row for this component, the version its
            tables are at (0: not there yet); by default 0.
        postgres: the same tables in PostgreSQL (empty: the component lives only in SQLite);
            ``postgres_migrations`` bring its version N to N + 1 there.
    """

    name: str
    version: int
    schema: str
    migrations: Mapping[int, str] = field(default_factory=dict)
    legacy: Callable[[sqlite3.Connection], int] | None = None
    postgres: str = ""
    postgres_migrations: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _COMPONENTS.append(self)  # its legacy check also tells memora's old files from others
        missing = [v for v in range(1, self.version) if v not in self.migrations]
        if self.legacy is not None and missing:
            raise ValueError(f"component {self.name} lacks migrations from versions {missing}")


class Database:
    """One SQLite connection shared by the components of a file, safe to use from threads.

    Every statement runs under one re-entrant lock. :meth:`write` opens a ``BEGIN IMMEDIATE``
    transaction; a :meth:`write` inside another one (same thread) is part of it, so callers
    compose: a story step and its memory index commit together, or roll back together. Work
    that must wait for the commit (updating in-memory views) is registered with
    :meth:`after_commit`.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        """Open ``path`` (created when missing, unless ``readonly``). Before anything is
        written, the file is checked to be memora's: a folder, a file that is not SQLite, or
        the SQLite database of another application raises :class:`NotMemoraFileError` and is
        left byte-for-byte as it was. ``readonly``: reads only (``mode=ro``); a missing file,
        or one whose tables would need creating or upgrading, raises :class:`ReadOnlyError`."""
        self.path = str(path)
        self.in_memory = self.path == ":memory:"
        self.readonly = readonly and not self.in_memory
        self.conn = self._connect()
        self.lock = threading.RLock()
        self._levels: list[list[Callable[[], None]]] = []  # after-commit work per open level
        self._closed = False
        try:
            self._check_owner()
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.conn.execute("PRAGMA foreign_keys = ON")
            if not self.in_memory and not self.readonly:
                self._retry(lambda: self.conn.execute("PRAGMA journal_mode = WAL"))
                self.conn.execute("PRAGMA synchronous = NORMAL")
            self._check_format()
        except BaseException:
            self.conn.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        target = Path(self.path).expanduser()
        if not self.in_memory and target.is_dir():
            raise NotMemoraFileError(
                f"{target} is a folder; give a file name such as {target / 'memory.db'}"
            )
        if self.readonly and not target.exists():
            raise ReadOnlyError(f"{target} does not exist; check the path (--db)")
        if not self.in_memory and not self.readonly:
            target.parent.mkdir(parents=True, exist_ok=True)
        name, uri = (
            (f"file:{target.resolve()}?mode=ro", True) if self.readonly else (self.path, False)
        )
        try:
            return sqlite3.connect(
                name, uri=uri, isolation_level=None, check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )  # fmt: skip
        except sqlite3.Error as exc:
            raise NotMemoraFileError(f"{target} cannot be opened ({exc}); check the path") from exc

    def _legacy_component(self) -> bool:
        """Whether a registered component recognises its tables of a release before
        ``schema_versions`` in this file."""
        return any(c.legacy is not None and c.legacy(self.conn) > 0 for c in _COMPONENTS)

    def _check_owner(self) -> None:
        """Refuse a file that is not memora's before anything is written to it."""
        try:
            tables = {row[0] for row in self.conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            if _sqlite_header(self.path):
                raise DamagedFileError(
                    f"{self.path} is a damaged SQLite file ({exc}): truncated or partly "
                    "overwritten; it was left as it was. Restore it from a copy (if it is a "
                    "memory store, then run memora memory doctor --db on it)"
                ) from exc
            raise NotMemoraFileError(
                f"{self.path} is not a memora file ({exc}); it was left as it was. Give the "
                "path of a memora store or story file, or a new file name"
            ) from exc
        if tables and not tables & MEMORA_TABLES and not self._legacy_component():
            raise NotMemoraFileError(
                f"{self.path} is the SQLite database of something else (tables: "
                f"{', '.join(sorted(tables)[:5])}); it was left as it was. Give the path of a "
                "memora store or story file, or a new file name"
            )

    # -- schema versions -----------------------------------------------------------------

    def _check_format(self) -> None:
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if version > FILE_FORMAT:
            raise SchemaVersionError(
                f"{self.path} was written by a newer memora (file format {version}; this one "
                f"reads up to {FILE_FORMAT}). Fix: upgrade memora (pip install -U memora), or "
                "export the data with the newer version"
            )

    def version_of(self, name: str) -> int | None:
        """The recorded version of component ``name`` (None: not recorded)."""
        with self.read() as conn:
            if not has_table(conn, "schema_versions"):
                return None
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (name,)
            ).fetchone()
        return None if row is None else int(row[0])

    def ensure(self, component: Component) -> None:
        """Create or migrate ``component``'s tables (one transaction; nothing when current)."""
        if self._current(component):
            return
        if self.readonly:
            what = "has no" if self.version_of(component.name) is None else "needs to upgrade its"
            raise ReadOnlyError(
                f"{self.path} {what} {component.name} tables, and this command only reads; "
                "check the path, or run a command that writes to it first"
            )
        with self.write() as conn:
            run_script(conn, _VERSIONS)
            _adopt_user_version(conn)
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component.name,)
            ).fetchone()
            version = int(row[0]) if row is not None else _legacy(conn, component)
            self._refuse_newer(component, version)
            if version == 0:
                run_script(conn, component.schema)
            for step in range(version or component.version, component.version):
                run_script(conn, component.migrations[step])
            conn.execute(
                "INSERT OR REPLACE INTO schema_versions (component, version) VALUES (?, ?)",
                (component.name, component.version),
            )
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) < FILE_FORMAT:
                conn.execute(f"PRAGMA user_version = {FILE_FORMAT}")

    def _current(self, component: Component) -> bool:
        version = self.version_of(component.name)
        if version is not None:
            self._refuse_newer(component, version)
        return version == component.version

    def _refuse_newer(self, component: Component, version: int) -> None:
        if version > component.version:
            raise SchemaVersionError(
                f"{self.path} was written by a newer memora ({component.name} schema version "
                f"{version}; this one reads up to {component.version}). Fix: upgrade memora "
                "(pip install -U memora), or export the data with the newer version"
            )

    # -- transactions --------------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads, under the lock."""
        with self.lock:
            self._check_open()
            yield self.conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it commits, or none of it. Nested in another write of
        the same thread, it joins that transaction: the outer one commits or rolls back all."""
        with self.lock:
            self._check_open()
            if self._levels:  # inside this thread's transaction: part of it
                yield self.conn
                return
            self._retry(lambda: self.conn.execute("BEGIN IMMEDIATE"))
            self._levels.append([])
            try:
                yield self.conn
            except BaseException:
                self._levels.clear()
                self.conn.execute("ROLLBACK")
                raise
            try:
                self._retry(lambda: self.conn.execute("COMMIT"))
            except BaseException:
                self._levels.clear()
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise
            done = self._levels.pop()
        for action in done:  # outside the lock: the work may take other locks
            action()

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the current write transaction commits (dropped if it rolls
        back); outside a transaction, now."""
        with self.lock:
            if self._levels:
                self._levels[-1].append(action)
                return
        action()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """All rows of one read."""
        with self.read() as conn:
            return conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of one read (None: no row)."""
        with self.read() as conn:
            return conn.execute(sql, params).fetchone()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection (idempotent); later calls raise :class:`ClosedError`."""
        with self.lock:
            if not self._closed:
                self._closed = True
                self.conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(
                f"{self.path} was closed; open it again (a new MemoryStore or story) to use it"
            )

    def _retry(self, action: Callable[[], object]) -> None:
        """Run ``action``; when SQLite still reports a lock after its busy timeout, back off
        and try again, a bounded number of times."""
        for attempt in range(LOCK_RETRIES + 1):
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if attempt == LOCK_RETRIES:
                    raise StoreBusyError(
                        f"{self.path} stayed locked by other writers for over "
                        f"{LOCK_RETRIES * BUSY_TIMEOUT_MS // 1000} s; retry later, or find the "
                        "process holding a long transaction"
                    ) from exc
                time.sleep(0.05 * (2**attempt) * (1 + random.random()))


def _sqlite_header(path: str) -> bool:
    """Whether the file at ``path`` starts as every SQLite database does."""
    try:
        with open(path, "rb") as file:
            return file.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _adopt_user_version(conn: sqlite3.Connection) -> None:
    """A file of an older release: its ``user_version`` (1 or 2) is the memory schema's."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if 0 < version < FILE_FORMAT:
        conn.execute(
            "INSERT OR IGNORE INTO schema_versions (component, version) VALUES ('memory', ?)",
            (version,),
        )


def _legacy(conn: sqlite3.Connection, component: Component) -> int:
    return 0 if component.legacy is None else component.legacy(conn)


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements inside the current transaction (``executescript`` would
    commit it); trigger bodies keep their inner semicolons."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        conn.execute(statement)

"""PostgreSQL plumbing for memora's tables: a pool of connections (psycopg 3 + psycopg_pool)
with the interface of :class:`memora._sqlite.Database`, so the components written for SQLite
(the neural log, the agent journal) run here too.

- Every memora table lives in the schema ``memora`` (``search_path`` is ``memora, public``; the
  ``vector`` type of pgvector stays where its extension was created).
- :meth:`PgDatabase.write` opens a transaction on a connection of the pool that stays with the
  thread until it ends; a :meth:`write` inside another one of the same thread joins it, and
  reads inside it see its writes. :meth:`after_commit` work runs once it committed.
- :meth:`PgDatabase.atomic` runs a piece of work in a transaction and runs it again, a bounded
  number of times, when the server asks (serialization failure, deadlock) or the connection
  drops; the pool checks a connection before handing it out.
- Statements use ``?`` placeholders as in SQLite; they become psycopg's ``%s`` here.
- Errors: a server that cannot be reached raises :class:`DatabaseUnreachableError`, wrong
  credentials :class:`DatabaseAuthError`; both name the DSN without its password.
- :meth:`PgDatabase.ensure` creates or migrates a :class:`~memora._sqlite.Component` from its
  ``postgres`` statements under an advisory lock, versioned in ``memora.schema_versions``.
"""

from __future__ import annotations

import contextlib
import functools
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from memora._sqlite import Component
from memora.errors import (
    ClosedError,
    ConfigError,
    DatabaseAuthError,
    DatabaseUnreachableError,
    MissingDependencyError,
    ReadOnlyError,
    SchemaVersionError,
    StoreBusyError,
)

__all__ = ["RETRIES", "PgDatabase", "is_postgres_url", "redact"]

T = TypeVar("T")

SCHEMA = "memora"
#: Attempts of a transaction the server aborted (serialization failure, deadlock, lost
#: connection) before the error reaches the caller.
RETRIES = 4
_LOCK = 0x6D656D6F7261  # advisory lock id of schema changes ("memora")
_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)
"""


def is_postgres_url(location: object) -> bool:
    """Whether ``location`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def redact(dsn: str) -> str:
    """``dsn`` without its password (URL or ``key=value`` form)."""
    dsn = re.sub(r"(://[^:/@?]*):[^@/?]*@", r"\1:***@", dsn)
    return re.sub(r"(password\s*=\s*)(\S+)", r"\1***", dsn)


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class Connection:
    """A psycopg connection that takes SQLite's ``?`` placeholders."""

    def __init__(self, conn: Any) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        if params is None or len(params) == 0:
            return self.raw.execute(sql)
        return self.raw.execute(_placeholders(sql), list(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.raw.cursor() as cursor:
                cursor.executemany(_placeholders(sql), [list(r) for r in rows])


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the postgres extra is missing
        raise MissingDependencyError(
            "the Postgres backend needs psycopg: pip install 'memora[postgres]'"
        ) from exc
    return psycopg


class _State(threading.local):
    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.levels: list[list[Callable[[], None]]] = []


class PgDatabase:
    """A pool of connections to one PostgreSQL database (``dsn``), safe to use from threads.

    Args:
        dsn: ``postgresql://user:password@host:port/database`` (or any libpq connection
            string); the ``vector`` extension is created when missing (which needs the right
            to create it).
        pool_size: connections kept at most (one per thread that works at once).
        connect_timeout: seconds to wait for the server.
        readonly: refuse schema changes (a missing or outdated schema raises
            :class:`ReadOnlyError`).
    """

    def __init__(self, dsn: str, *, pool_size: int = 8, connect_timeout: float = 10.0,
                 readonly: bool = False) -> None:  # fmt: skip
        if pool_size < 1:
            raise ConfigError("pool_size must be >= 1")
        self.dsn = dsn
        self.path = redact(dsn)  # what messages name
        self.in_memory = False
        self.readonly = readonly
        self.connect_timeout = connect_timeout
        self._state = _State()
        self._closed = False
        self._bootstrap()
        from psycopg_pool import ConnectionPool

        self.pool = ConnectionPool(
            dsn, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
            configure=self._configure, check=ConnectionPool.check_connection, open=False,
            timeout=max(30.0, connect_timeout), name="memora",
        )  # fmt: skip
        try:
            self.pool.open(wait=True, timeout=connect_timeout)
        except Exception as exc:
            self.pool.close()
            raise DatabaseUnreachableError(
                f"cannot open connections to {self.path}: {exc}; check that the server is up"
            ) from exc

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> Any:
        """One connection, with its failure told apart: unreachable or refused credentials."""
        psycopg = _psycopg()
        try:
            return psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            )
        except psycopg.OperationalError as exc:
            raise _connect_error(self.path, exc) from exc
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"{self.path} is not a valid connection string: {exc}") from exc

    def _bootstrap(self) -> None:
        """The ``memora`` schema and the vector extension, made once (by whoever comes first)."""
        psycopg = _psycopg()
        with self._connect() as conn:
            found = conn.execute(
                "SELECT (SELECT 1 FROM pg_namespace WHERE nspname = %s), "
                "(SELECT 1 FROM pg_extension WHERE extname = 'vector')",
                (SCHEMA,),
            ).fetchone()
            if found == (1, 1):
                return
            if self.readonly:
                raise ReadOnlyError(
                    f"{self.path} has no memora tables, and this command only reads; check the "
                    "DSN, or run a command that writes to it first"
                )
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.errors.InsufficientPrivilege as exc:
                raise DatabaseAuthError(
                    f"{self.path}: this role may not create the memora schema or the vector "
                    f"extension ({exc}); ask the database owner to run CREATE EXTENSION vector; "
                    f"CREATE SCHEMA {SCHEMA}; once"
                ) from exc
            except psycopg.errors.FeatureNotSupported as exc:
                raise ConfigError(f"{self.path}: {exc}") from exc
            except psycopg.errors.UndefinedFile as exc:
                raise ConfigError(
                    f"the server of {self.path} has no pgvector extension ({exc}); install it "
                    "(Debian: postgresql-15-pgvector, or scripts/install-pgvector.sh)"
                ) from exc

    def _configure(self, conn: Any) -> None:
        from pgvector.psycopg import register_vector

        conn.execute(f"SET search_path TO {SCHEMA}, public")
        register_vector(conn)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """The thread's transaction connection, or one of the pool for one statement."""
        self._check_open()
        if self._state.conn is not None:
            yield self._state.conn
            return
        with _errors(self.path), self.pool.connection() as raw:
            yield Connection(raw)

    # -- transactions --------------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (the thread's transaction, when one is open)."""
        with self._connection() as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction: all of it commits, or none of it. Nested in another one of the same
        thread, it joins that one."""
        state = self._state
        if state.levels:
            assert state.conn is not None
            yield state.conn
            return
        self._check_open()
        with _errors(self.path), self.pool.connection() as raw:
            state.conn, state.levels = Connection(raw), [[]]
            try:
                with raw.transaction():
                    yield state.conn
                done = state.levels[0]
            finally:
                state.conn, state.levels = None, []
        for action in done:
            action()

    def atomic(self, work: Callable[[], T]) -> T:
        """``work()`` in one transaction, run again (a bounded number of times, with backoff)
        when the server aborted it or the connection dropped; inside another transaction it
        simply joins it."""
        if self._state.levels:
            return work()
        for attempt in range(RETRIES + 1):
            try:
                with self.write():
                    return work()
            except (StoreBusyError, DatabaseUnreachableError):
                if attempt == RETRIES or self._closed:
                    raise
                time.sleep(0.05 * (2**attempt) * (1 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside a :meth:`write`."""
        return bool(self._state.levels)

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the thread's transaction commits (dropped on rollback); now,
        outside one."""
        if self._state.levels:
            self._state.levels[-1].append(action)
        else:
            action()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """All rows of one read (run again if the connection dropped)."""
        return self._read(lambda conn: conn.execute(sql, params).fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of one read (None: no row)."""
        return self._read(lambda conn: conn.execute(sql, params).fetchone())

    def _read(self, action: Callable[[Connection], T]) -> T:
        for attempt in range(RETRIES + 1):
            try:
                with self.read() as conn:
                    return action(conn)
            except DatabaseUnreachableError:
                if attempt == RETRIES or self._state.levels or self._closed:
                    raise
                time.sleep(0.05 * (2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- schema versions -----------------------------------------------------------------

    def version_of(self, name: str) -> int | None:
        row = self.one(
            "SELECT version FROM schema_versions WHERE component = ?", (name,)
        ) if self._has_versions() else None  # fmt: skip
        return None if row is None else int(row[0])

    def _has_versions(self) -> bool:
        return self.one("SELECT to_regclass('memora.schema_versions') IS NOT NULL")[0] is True

    def ensure(self, component: Component) -> None:
        """Create or migrate ``component``'s tables (one transaction; nothing when current)."""
        if not component.postgres:
            raise ConfigError(f"the {component.name} tables have no PostgreSQL form")
        version = self.version_of(component.name)
        self._refuse_newer(component, version or 0)
        if version == component.version:
            return
        if self.readonly:
            raise ReadOnlyError(
                f"{self.path} has no current {component.name} tables, and this command only "
                "reads; run a command that writes to it first"
            )
        with self.write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
            conn.execute(_VERSIONS)
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component.name,)
            ).fetchone()
            version = 0 if row is None else int(row[0])
            self._refuse_newer(component, version)
            if version == 0:
                conn.execute(component.postgres)
            for step in range(version or component.version, component.version):
                conn.execute(component.postgres_migrations[step])
            conn.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) ON CONFLICT "
                "(component) DO UPDATE SET version = excluded.version",
                (component.name, component.version),
            )

    def _refuse_newer(self, component: Component, version: int) -> None:
        if version > component.version:
            raise SchemaVersionError(
                f"{self.path} was written by a newer memora ({component.name} schema version "
                f"{version}; this one reads up to {component.version}). Fix: upgrade memora "
                "(pip install -U memora)"
            )

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close every connection (idempotent); later calls raise :class:`ClosedError`."""
        if not self._closed:
            self._closed = True
            self.pool.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self.path} was closed; open it again to use it")


@contextlib.contextmanager
def _errors(where: str) -> Iterator[None]:
    """psycopg's errors of the server and the connection, as memora's."""
    psycopg = _psycopg()
    from psycopg_pool import PoolTimeout

    try:
        yield
    except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
        raise StoreBusyError(
            f"{where}: the server aborted the transaction ({exc.sqlstate}) after the retries; "
            "retry later"
        ) from exc
    except PoolTimeout as exc:
        raise StoreBusyError(
            f"{where}: no free connection in the pool ({exc}); raise pool_size or use fewer threads"
        ) from exc
    except psycopg.OperationalError as exc:
        if isinstance(exc, psycopg.errors.QueryCanceled):
            raise
        raise _connect_error(where, exc) from exc


def _connect_error(where: str, exc: Exception) -> Exception:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if any(s in text for s in ("password authentication", "role", "no password", "pg_hba")):
        return DatabaseAuthError(
            f"{where} refused the credentials ({text}); check the user and password of the DSN "
            "(or MEMORA_DATABASE_URL)"
        )
    if "database" in text and "does not exist" in text:
        return DatabaseUnreachableError(
            f"{where}: {text}; create it first (createdb), or fix the database name in the DSN"
        )
    return DatabaseUnreachableError(
        f"cannot reach the database server of {where} ({text}); check that it runs and that "
        "host, port or socket in the DSN are right"
    )

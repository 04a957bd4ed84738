"""Memory on PostgreSQL + pgvector: the store of record (:mod:`.records`), its connection pool
and schema versions (:mod:`.database`), and a throwaway local server for tests and benchmarks
(:mod:`.local`). psycopg is imported only when a store is opened on a ``postgresql://`` DSN."""

from __future__ import annotations

from typing import Any

from memora.errors import ConfigError
from memora.memory.postgres.database import is_postgres_url, redact

__all__ = ["is_postgres_url", "postgres_records", "redact"]


def postgres_records(dsn: str, *, db: object = None, readonly: bool = False) -> Any:
    """The :class:`~memora.memory.postgres.records.PostgresRecords` of ``dsn``."""
    if db is not None:
        raise ConfigError("db= shares a SQLite file; a Postgres store takes only its DSN")
    from memora.memory.postgres.records import PostgresRecords

    return PostgresRecords(dsn, readonly=readonly)

"""Row-level security: a PostgreSQL role bound to one user reads only that user's memories,
whatever SQL it runs (the guarantee of scopes, enforced by the database itself).

:func:`enable_row_security` turns policies on for memora's tables; :func:`bind_role` lets a
role read the rows of one user (call it again to add users). The role that owns the tables
(the one memora's store connects as) is not restricted; give a restricted role to whatever
must not see other users' data: a reporting tool, a per-tenant service, a person with psql.

What a bound role sees: its users' memories and their history, agent turns and core blocks,
their neural memories and the (hashed) API keys of ``memora serve``; ``meta`` and
``schema_versions`` (no user data), so a ``MemoryStore(readonly=True)`` opened as that role
works and lists only those users' records.
"""

from __future__ import annotations

import re

from memora.errors import ConfigError
from memora.memory.postgres.database import PgDatabase

__all__ = ["bind_role", "enable_row_security"]

_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MINE = "SELECT user_id FROM role_users WHERE role = current_user"
#: table -> the condition a bound role's rows meet
_POLICIES = {
    "memories": f"user_id IN ({_MINE})",
    "history": "memory_id IN (SELECT id FROM memories)",  # memories' own policy applies there
    "occurrences": "memory_id IN (SELECT id FROM memories)",
    "agent_turns": f"user_id IN ({_MINE})",
    "agent_core": f"user_id IN ({_MINE})",
    "neural_state": f"(name::jsonb ->> 0) IN ({_MINE})",
    "neural_log": f"(name::jsonb ->> 0) IN ({_MINE})",
    "role_users": "role = current_user",
    "api_keys": f"user_id IN ({_MINE})",  # memora serve's keys (hashes): a user's own
}
_OPEN = ("meta", "schema_versions")  # no user data: readable by a bound role


def enable_row_security(db: PgDatabase) -> list[str]:
    """Turn row-level security on for memora's tables in ``db`` (idempotent); returns the
    tables it now guards. Tables made later (the journal of a first agent) are guarded by
    calling it again."""
    guarded = []
    with db.write() as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS role_users (role TEXT NOT NULL, user_id TEXT NOT NULL, "
            "PRIMARY KEY (role, user_id))"
        )
        for table, condition in _POLICIES.items():
            if conn.execute("SELECT to_regclass(?)", (f"memora.{table}",)).fetchone()[0] is None:
                continue
            conn.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            conn.execute(f"DROP POLICY IF EXISTS memora_user_rows ON {table}")
            conn.execute(
                f"CREATE POLICY memora_user_rows ON {table} FOR SELECT USING ({condition})"
            )
            guarded.append(table)
    return guarded


def bind_role(db: PgDatabase, role: str, user_id: str) -> None:
    """Let ``role`` (an existing PostgreSQL role) read the rows of ``user_id`` and nothing of
    any other user; row security must be on (:func:`enable_row_security`)."""
    if not _ROLE.match(role):
        raise ConfigError(f"role {role!r} must be a plain identifier (letters, digits, _)")
    if not isinstance(user_id, str) or not user_id or "\x00" in user_id:
        raise ConfigError("user_id must be a non-empty text")
    guarded = enable_row_security(db)
    with db.write() as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", (role,)).fetchone() is None:
            raise ConfigError(f"no role {role!r} in this server; CREATE ROLE {role} LOGIN first")
        conn.execute(f'GRANT USAGE ON SCHEMA memora TO "{role}"')
        for table in (*guarded, *_OPEN):
            conn.execute(f'GRANT SELECT ON {table} TO "{role}"')
        conn.execute(
            "INSERT INTO role_users (role, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (role, user_id),
        )

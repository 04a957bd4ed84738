"""Row-level security on a real PostgreSQL server: a role bound to one user reads only that
user's rows, with raw SQL and through memora, while the store's own role is unaffected."""

from __future__ import annotations

import itertools
import os

import psycopg
import pytest

from memora.errors import ConfigError
from memora.memory.postgres.database import PgDatabase
from memora.memory.postgres.security import bind_role, enable_row_security
from memora.memory.store import MemoryStore

_ROLES = itertools.count()


def as_role(dsn: str, role: str) -> str:
    """The same database, connected as ``role`` (the test server trusts its socket)."""
    return dsn.replace("postgresql://memora@", f"postgresql://{role}@")


def test_a_role_bound_to_one_user_reads_only_that_users_rows(pg_dsn: str) -> None:
    with MemoryStore(pg_dsn, neural=True) as store:
        alice = store.add("Alice's bank PIN is 1234.", user_id="alice", agent_id="bot")
        store.update(alice.record.id, "Alice's bank PIN is 9876.", user_id="alice")
        store.add("Bob's diagnosis is private.", user_id="bob")
        store.add("The bot's own note.", agent_id="bot")
    role = f"reader_{os.getpid()}_{next(_ROLES)}"
    outsider = f"{role}_none"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"CREATE ROLE {outsider} LOGIN")
    db = PgDatabase(pg_dsn)
    try:
        assert "memories" in enable_row_security(db) and "history" in enable_row_security(db)
        bind_role(db, role, "alice")
        bind_role(db, outsider, "nobody-in-particular")
        with pytest.raises(ConfigError, match="no role"):
            bind_role(db, "no_such_role", "alice")
        with pytest.raises(ConfigError, match="plain identifier"):
            bind_role(db, 'x"; DROP TABLE memories; --', "alice")
    finally:
        db.close()

    with psycopg.connect(as_role(pg_dsn, role), autocommit=True) as conn:  # raw SQL
        texts = {r[0] for r in conn.execute("SELECT text FROM memora.memories")}
        assert texts == {"Alice's bank PIN is 9876."}
        history = conn.execute("SELECT new_text FROM memora.history ORDER BY id").fetchall()
        assert [h[0] for h in history] == ["Alice's bank PIN is 1234.", "Alice's bank PIN is 9876."]
        states = conn.execute("SELECT name FROM memora.neural_state").fetchall()
        assert states and all('"alice"' in s[0] for s in states)
        assert conn.execute("SELECT count(*) FROM memora.role_users").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM memora.memories")
    with psycopg.connect(as_role(pg_dsn, outsider), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM memora.memories").fetchone()[0] == 0

    # through memora: even an all-scopes read returns only the bound user's records
    with MemoryStore(as_role(pg_dsn, role), readonly=True) as restricted:
        assert [r.text for r in restricted.list(all_scopes=True)] == ["Alice's bank PIN is 9876."]
        assert restricted.search("diagnosis", all_scopes=True, mode="lexical") == []
    with MemoryStore(pg_dsn) as owner:  # the store's own role is not restricted
        assert owner.count(all_scopes=True) == 3

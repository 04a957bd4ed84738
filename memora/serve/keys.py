"""API keys of ``memora serve``: each bound to one user (and optionally one agent) with the
scopes it may use, stored as a SHA-256 hash only, next to the memories (their own schema
component in the store's SQLite file or PostgreSQL database). A request's scope comes from
its key, never from its body; a revoked key is refused from the next request on."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from memora._sqlite import Component
from memora.errors import AccessError, ConfigError, KeyNotFoundError
from memora.memory.contract import SQLDatabase

__all__ = ["API_KEYS", "SCOPES", "ApiKey", "ApiKeys"]

#: What a key may do: ``read`` (search, get, list, history, export), ``write`` (add, update,
#: delete), ``chat``, ``rerank``; ``admin`` keys act for any user.
SCOPES = ("read", "write", "chat", "rerank")

_TABLE = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    user_id TEXT,
    agent_id TEXT,
    scopes TEXT NOT NULL,
    admin INTEGER NOT NULL,
    created_at {real} NOT NULL,
    revoked_at {real}
);
"""

API_KEYS = Component(
    name="api_keys",
    version=1,
    schema=_TABLE.format(real="REAL"),
    postgres=_TABLE.format(real="DOUBLE PRECISION"),
)

_PREFIX = "mk_"


@dataclass(frozen=True)
class ApiKey:
    """A key as stored (never its secret). ``user_id`` is None only for an admin key."""

    id: str
    user_id: str | None
    agent_id: str | None
    scopes: tuple[str, ...]
    admin: bool
    created_at: float
    revoked_at: float | None = None

    def allows(self, scope: str) -> bool:
        return self.admin or scope in self.scopes


class ApiKeys:
    """The keys in a store's database."""

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db
        db.ensure(API_KEYS)

    def create(self, user_id: str | None, *, agent_id: str | None = None,
               scopes: Iterable[str] = SCOPES, admin: bool = False,
               ) -> tuple[str, ApiKey]:  # fmt: skip
        """A new key: its secret (shown once, never stored) and what is stored."""
        wanted = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
        unknown = [s for s in wanted if s not in SCOPES]
        if unknown:
            raise ConfigError(f"unknown scope {unknown[0]!r}. Fix: use {', '.join(SCOPES)}")
        if not admin and not (user_id and user_id.strip()):
            raise ConfigError("a key belongs to a user. Fix: pass --user (or --admin)")
        if not wanted and not admin:
            raise ConfigError(f"a key needs at least one scope. Fix: --scopes {','.join(SCOPES)}")
        key_id = secrets.token_hex(6)
        secret = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id, user_id or None, agent_id or None, wanted, admin, time.time())
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, hash, user_id, agent_id, scopes, admin, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key.id, _hash(secret), key.user_id, key.agent_id, ",".join(wanted),
                 int(admin), key.created_at),
            )  # fmt: skip
        return secret, key

    def check(self, secret: str | None) -> ApiKey:
        """The live key whose secret this is; :class:`AccessError` for none, an unknown one or
        a revoked one (looked up on every call: revocation counts from the next request)."""
        if not secret:
            raise AccessError(
                "no API key. Fix: send 'Authorization: Bearer <key>' (memora keys create)"
            )
        row = self.db.one(f"SELECT {_COLUMNS} FROM api_keys WHERE hash = ?", (_hash(secret),))
        if row is None:
            raise AccessError("unknown API key. Fix: create one with memora keys create")
        key = _key(row)
        if key.revoked_at is not None:
            raise AccessError("this API key was revoked. Fix: create a new one")
        return key

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (from the next request on); revoking twice keeps the first time."""
        with self.db.write() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        row = self.db.one(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
        if row is None:
            raise KeyNotFoundError(f"no API key {key_id!r}. Fix: memora keys list shows them")
        return _key(row)

    def list(self) -> list[ApiKey]:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id")
        return [_key(r) for r in rows]


_COLUMNS = "id, user_id, agent_id, scopes, admin, created_at, revoked_at"


def _key(row: tuple[object, ...]) -> ApiKey:
    scopes = tuple(s for s in str(row[3]).split(",") if s)
    return ApiKey(str(row[0]), row[1] and str(row[1]), row[2] and str(row[2]),  # type: ignore[arg-type]
                  scopes, bool(row[4]), float(row[5]),  # type: ignore[arg-type]
                  None if row[6] is None else float(row[6]))  # type: ignore[arg-type]  # fmt: skip


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()

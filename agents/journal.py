"""The agent's journal: every finished turn, with the state of its fact extraction, in the
memory store's own database, its SQLite file or its PostgreSQL database (so every process, on
any host, that opens the store sees it).

A turn is written when its answer is complete, as ``pending``; the extraction worker moves it
to ``done`` (with the actions it applied) or ``failed`` (with the error). A process that dies
with turns pending leaves them there, and the next agent on that scope runs them: nothing said
is dropped. Recent turns also come from here, so a conversation continues across processes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from memora._sqlite import Component, has_table
from memora.memory.contract import SQLDatabase
from memora.memory.types import Scope

__all__ = ["JOURNAL", "Journal", "Turn"]

Status = Literal["pending", "running", "done", "failed"]

#: A turn "running" longer than this was left by a process that died mid-extraction.
STALE_SECONDS = 600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT, agent_id TEXT, session_id TEXT,
    user_text TEXT NOT NULL,
    reply_text TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    actions TEXT,
    created_at REAL NOT NULL,
    claimed_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS agent_turns_scope ON agent_turns (user_id, agent_id, status);
CREATE TABLE IF NOT EXISTS agent_core (
    user_id TEXT NOT NULL, agent_id TEXT NOT NULL,
    label TEXT NOT NULL,
    value TEXT NOT NULL,
    max_chars INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (user_id, agent_id, label)
);
"""

_POSTGRES = """
CREATE TABLE IF NOT EXISTS agent_turns (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id TEXT, agent_id TEXT, session_id TEXT,
    user_text TEXT NOT NULL,
    reply_text TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    actions TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    claimed_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS agent_turns_scope ON agent_turns (user_id, agent_id, status);
CREATE TABLE IF NOT EXISTS agent_core (
    user_id TEXT NOT NULL, agent_id TEXT NOT NULL,
    label TEXT NOT NULL,
    value TEXT NOT NULL,
    max_chars INTEGER NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (user_id, agent_id, label)
);
"""

#: The agent journal's component of a memory file (unversioned in older releases: 1).
JOURNAL = Component(
    name="agent_journal",
    version=1,
    schema=_SCHEMA,
    legacy=lambda conn: 1 if has_table(conn, "agent_turns") else 0,
    postgres=_POSTGRES,
)

_TURN_COLUMNS = (
    "id, user_id, agent_id, session_id, user_text, reply_text, status, attempts, error, actions, "
    "created_at"
)


@dataclass(frozen=True)
class Turn:
    id: int
    scope: Scope
    user_text: str
    reply_text: str
    status: Status
    attempts: int
    error: str | None
    actions: list[dict[str, Any]]
    created_at: float


class Journal:
    """Turns and core blocks of agents, in ``db`` (a memory store's database: SQLite or
    PostgreSQL; claims are single ``UPDATE ... RETURNING`` statements, so two processes never
    take the same turn on either)."""

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db
        db.ensure(JOURNAL)

    def record(self, scope: Scope, user_text: str, reply_text: str, *, claim: bool) -> Turn:
        """Write a finished turn: ``running`` when the caller extracts it now (``claim``),
        else ``pending``."""
        now = time.time()
        status = "running" if claim else "pending"
        with self.db.write() as conn:
            row = conn.execute(
                "INSERT INTO agent_turns (user_id, agent_id, session_id, user_text, reply_text, "
                "status, created_at, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                f"RETURNING {_TURN_COLUMNS}",
                (scope.user_id, scope.agent_id, scope.session_id, user_text, reply_text, status,
                 now, now if claim else None),
            ).fetchone()  # fmt: skip
        return _turn(row)

    def claim_unfinished(self, scope: Scope) -> list[int]:
        """Claim the turns of ``scope``'s user and agent that no live process is extracting:
        pending ones, and ones left running by a process that died. One transaction, so two
        agents starting at once never take the same turn."""
        where, params = _where(scope, False)
        now = time.time()
        with self.db.write() as conn:
            rows = conn.execute(
                f"UPDATE agent_turns SET status = 'running', claimed_at = ? WHERE {where} AND "
                "(status = 'pending' OR (status = 'running' AND claimed_at < ?)) RETURNING id",
                [now, *params, now - STALE_SECONDS],
            ).fetchall()
        return sorted(int(r[0]) for r in rows)

    def finish(
        self,
        turn_id: int,
        status: Status,
        *,
        error: str | None = None,
        actions: list[dict[str, Any]] | None = None,
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE agent_turns SET status = ?, attempts = attempts + 1, error = ?, "
                "actions = ?, finished_at = ? WHERE id = ?",
                (status, error, None if actions is None else json.dumps(actions), time.time(),
                 turn_id),
            )  # fmt: skip

    def claim_failed(self, turn_id: int) -> bool:
        """Take a failed turn to run it again; False when someone else took it first."""
        with self.db.write() as conn:
            cursor = conn.execute(
                "UPDATE agent_turns SET status = 'running', error = NULL, claimed_at = ? "
                "WHERE id = ? AND status = 'failed'",
                (time.time(), turn_id),
            )
        return bool(cursor.rowcount == 1)

    def get(self, turn_id: int) -> Turn:
        row = self.db.one(f"SELECT {_TURN_COLUMNS} FROM agent_turns WHERE id = ?", (turn_id,))
        return _turn(row)

    def turns(
        self,
        scope: Scope,
        *,
        status: Status | None = None,
        session: bool = False,
        last: int | None = None,
    ) -> list[Turn]:
        """Turns of ``scope``'s user and agent (only its session when ``session``), oldest
        first; ``last``: only the latest so many."""
        where, params = _where(scope, session)
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        sql = f"SELECT {_TURN_COLUMNS} FROM agent_turns WHERE {where} ORDER BY id DESC"
        if last is not None:
            sql += f" LIMIT {int(last)}"
        rows = self.db.query(sql, params)
        return [_turn(r) for r in reversed(rows)]

    # -- core blocks ---------------------------------------------------------------------

    def core_blocks(self, scope: Scope) -> dict[str, tuple[str, int]]:
        rows = self.db.query(
            "SELECT label, value, max_chars FROM agent_core WHERE user_id = ? AND "
            "agent_id = ? ORDER BY rowid",
            (scope.user_id or "", scope.agent_id or ""),
        )
        return {str(r[0]): (str(r[1]), int(r[2])) for r in rows}

    def set_core(self, scope: Scope, label: str, value: str, max_chars: int) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO agent_core VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                "(user_id, agent_id, label) DO UPDATE SET value = excluded.value, "
                "max_chars = excluded.max_chars, updated_at = excluded.updated_at",
                (scope.user_id or "", scope.agent_id or "", label, value, max_chars, time.time()),
            )


def _where(scope: Scope, session: bool) -> tuple[str, list[Any]]:
    parts, params = [], []
    names = ("user_id", "agent_id", "session_id") if session else ("user_id", "agent_id")
    for name in names:
        value = getattr(scope, name)
        parts.append(f"{name} IS NOT DISTINCT FROM ?")
        params.append(value)
    return " AND ".join(parts), params


def _turn(row: Any) -> Turn:
    return Turn(
        id=int(row[0]),
        scope=Scope(user_id=row[1], agent_id=row[2], session_id=row[3]),
        user_text=str(row[4]),
        reply_text=str(row[5]),
        status=row[6],
        attempts=int(row[7]),
        error=row[8],
        actions=json.loads(row[9]) if row[9] else [],
        created_at=float(row[10]),
    )

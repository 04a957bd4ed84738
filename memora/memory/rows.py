"""The memory store's row plumbing: scope and metadata conditions in SQL, row decoding, input
checks. Pure functions; :mod:`memora.memory.store` composes them."""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memora.errors import ConfigError, InvalidRecordError, ReadOnlyError, ScopeError
from memora.memory.types import AnyUserScope, MemoryRecord, Scope, SurpriseScore, content_hash

__all__ = [
    "COLUMNS",
    "blob_vector",
    "check_batch",
    "check_cues",
    "check_expiry",
    "check_keys",
    "check_metadata",
    "check_metadatas",
    "check_text",
    "check_time",
    "check_times",
    "check_writable",
    "filter_sql",
    "new_record",
    "read_scope",
    "scope_sql",
    "to_record",
    "write_scope",
]

COLUMNS = (
    "rowid, id, user_id, agent_id, session_id, text, metadata, created_at, updated_at, "
    "embedder, dim, content_hash, expires_at, deleted_at, seq, surprise, salient, dedup, "
    "occurred_at, key_of"
)
_FILTER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _no_nul(where: Scope) -> Scope:
    """Scope ids are text without NUL characters (a database server cannot store them)."""
    if any("\x00" in value for _, value in where.items()):
        raise ScopeError("a scope id cannot contain a NUL character (\\x00); remove it")
    return where


def write_scope(where: Scope) -> Scope:
    _no_nul(where)
    if where.empty:
        raise ScopeError(
            "a memory needs a scope: pass user_id, agent_id and/or session_id (or scope=Scope(...))"
        )
    return where


def read_scope(scope: Scope | None, all_scopes: bool, all_users: bool = False) -> Scope | None:
    """The scope to read, or None for all scopes (only with ``all_scopes=True``). A scope that
    leaves ``user_id`` unset reads records without a user, unless ``all_users`` widens it to
    every user (:class:`AnyUserScope`)."""
    if scope is not None and not _no_nul(scope).empty:
        if all_scopes:
            raise ScopeError("pass a scope or all_scopes=True, not both")
        if not all_users:
            return scope
        if scope.user_id is not None:
            raise ScopeError("pass user_id or all_users=True, not both")
        return AnyUserScope(agent_id=scope.agent_id, session_id=scope.session_id)
    if all_scopes:
        return None
    if all_users:
        raise ScopeError(
            "all_users=True widens an agent_id or session_id to every user; pass one, or "
            "all_scopes=True to read across every scope"
        )
    raise ScopeError(
        "reads need a scope (user_id, agent_id and/or session_id) so that one user's "
        "memories never reach another; pass all_scopes=True to read across every scope"
    )


def scope_sql(
    where: Scope | None, *, live: bool = False, table: str = "memories", keys: bool = False
) -> tuple[str, list[Any]]:
    """Conditions that a row is in ``where`` (and live); search keys of records only with
    ``keys`` (they are found by searches, never listed or counted as memories)."""
    conditions: list[str] = ["1 = 1"] if keys else [f"{table}.key_of IS NULL"]
    params: list[Any] = []
    if where is not None:
        for column, value in where.items():
            conditions.append(f"{table}.{column} = ?")
            params.append(value)
        if where.user_id is None and not where.any_user:
            conditions.append(f"{table}.user_id IS NULL")  # fail closed: no user, no users
    if live:
        conditions.append(f"{table}.deleted_at IS NULL")
        conditions.append(f"({table}.expires_at IS NULL OR {table}.expires_at > ?)")
        params.append(time.time())
    return " AND ".join(conditions), params


def filter_sql(
    filters: Mapping[str, Any] | None, *, postgres: bool = False
) -> tuple[str, list[Any]]:
    """Conditions that the metadata hold ``filters`` exactly (JSON equality in Postgres)."""
    if not filters:
        return "1 = 1", []
    conditions, params = [], []
    for key, value in filters.items():
        if not _FILTER_KEY.match(key):
            raise ConfigError(f"filter key {key!r} must be a plain identifier (letters, digits, _)")
        if postgres:
            conditions.append("memories.metadata -> ?::text = ?::jsonb")
            params += [key, json.dumps(value)]
        elif isinstance(value, bool | dict | list) or value is None:
            conditions.append(f"json_extract(memories.metadata, '$.{key}') = json(?)")
            params.append(json.dumps(value))
        else:
            conditions.append(f"json_extract(memories.metadata, '$.{key}') = ?")
            params.append(value)
    return " AND ".join(conditions), params


def check_text(text: str, max_chars: int) -> None:
    if not isinstance(text, str) or not text.strip():
        raise InvalidRecordError("a memory's text must be a non-empty string")
    if "\x00" in text:
        raise InvalidRecordError("a memory's text cannot contain NUL characters (\\x00)")
    if len(text) > max_chars:
        raise InvalidRecordError(
            f"the text has {len(text)} characters, over the limit of "
            f"{max_chars}; split it into smaller memories or raise max_text_chars"
        )


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidRecordError("metadata must be a dict")
    try:
        dumped = json.dumps(dict(metadata), allow_nan=False)
        if "\\u0000" in dumped:
            raise ValueError("it contains a NUL character (\\u0000)")
        return dict(json.loads(dumped))
    except (TypeError, ValueError) as exc:
        raise InvalidRecordError(
            f"metadata must be JSON-serializable (str, numbers, bool, None, lists, dicts): {exc}"
        ) from exc


def check_metadatas(
    texts: Sequence[str],
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    metadata: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """One checked metadata dict per text: ``metadatas`` (one each) or ``metadata`` (one for
    all)."""
    if isinstance(texts, str):
        raise InvalidRecordError("add_many takes a list of texts; use add for one text")
    if metadatas is None:
        return [check_metadata(metadata)] * len(texts)
    if metadata is not None:
        raise InvalidRecordError("pass metadata (one for all) or metadatas (one per text)")
    if isinstance(metadatas, Mapping) or len(metadatas) != len(texts):
        raise InvalidRecordError(
            f"metadatas must be a list with one dict (or None) per text ({len(texts)})"
        )
    return [check_metadata(m) for m in metadatas]


def check_expiry(expires_at: float | None) -> None:
    check_time(expires_at, "expires_at")


def new_record(
    where: Scope, text: str, metadata: dict[str, Any], now: float, *, space: tuple[str, int],
    expires_at: float | None = None, score: SurpriseScore | None = None, dedup: bool = True,
    occurred_at: float | None = None, key_of: str | None = None,
) -> MemoryRecord:  # fmt: skip
    """A record about to be stored, with a fresh id (and its neural surprise, if any);
    ``space``: the embedder's name and dimension; a key (``key_of``) is never de-duplicated."""
    embedder, dim = space
    return MemoryRecord(
        id=uuid.uuid4().hex, scope=where, text=text, metadata=metadata, created_at=now,
        updated_at=now, embedder=embedder, dim=dim, content_hash=content_hash(text),
        expires_at=expires_at, surprise=None if score is None else score.normalized,
        salient=bool(score and score.salient), dedup=dedup and key_of is None,
        occurred_at=occurred_at, key_of=key_of,
    )  # fmt: skip


def check_time(value: float | None, name: str) -> float | None:
    """A finite timestamp (seconds since 1970), or None."""
    if value is not None and not (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ):
        raise InvalidRecordError(f"{name} must be a finite timestamp (seconds since 1970)")
    return None if value is None else float(value)


def check_times(value: float | Sequence[float | None] | None, n: int) -> list[float | None]:
    """One ``occurred_at`` (or None) per added text: one value for all, or a list of ``n``."""
    values = [value] * n if value is None or isinstance(value, int | float) else list(value)
    if len(values) != n:
        raise InvalidRecordError(f"occurred_at must be one timestamp, or a list of {n}")
    return [check_time(v, "occurred_at") for v in values]


def check_batch(
    texts: Sequence[str],
    max_chars: int,
    *,
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    metadata: Mapping[str, Any] | None,
    expires_at: float | None,
    cues: str | Sequence[str | None] | None,
    occurred_at: float | Sequence[float | None] | None,
) -> tuple[list[dict[str, Any]], list[str | None], list[float | None]]:
    """An ``add_many``'s inputs checked: one metadata dict, cue and time per text."""
    metas = check_metadatas(texts, metadatas, metadata)
    check_expiry(expires_at)
    for text in texts:
        check_text(text, max_chars)
    n = len(texts)
    return metas, check_cues(cues, n), check_times(occurred_at, n)


def check_keys(keys: Sequence[Sequence[str]] | None, n: int, max_chars: int) -> list[list[str]]:
    """The extra search keys of each added text (``keys[i]``: the texts that find text i)."""
    if keys is None:
        return [[] for _ in range(n)]
    if isinstance(keys, str) or len(keys) != n or any(isinstance(k, str) for k in keys):
        raise InvalidRecordError(f"keys must be a list with one list of key texts per text ({n})")
    checked = [list(dict.fromkeys(k)) for k in keys]
    for group in checked:
        for key in group:
            check_text(key, max_chars)
    return checked


def check_cues(cue: str | Sequence[str | None] | None, n: int) -> list[str | None]:
    """One cue (or None) per added text."""
    cues = [cue] * n if cue is None or isinstance(cue, str) else list(cue)
    if len(cues) != n or any(
        c is not None and not (isinstance(c, str) and c.strip()) for c in cues
    ):
        raise InvalidRecordError(f"cue must be one non-empty text per added text ({n}), or None")
    return cues


def to_record(row: Sequence[Any]) -> MemoryRecord:
    """A record from a row of :data:`COLUMNS`."""
    (_, record_id, user_id, agent_id, session_id, text, metadata, created_at, updated_at,
     embedder, dim, content_hash, expires_at, deleted_at, _, surprise, salient,
     dedup, occurred_at, key_of) = row  # fmt: skip
    return MemoryRecord(
        id=record_id,
        scope=Scope(user_id=user_id, agent_id=agent_id, session_id=session_id),
        text=text,
        metadata=json.loads(metadata),
        created_at=created_at,
        updated_at=updated_at,
        embedder=embedder,
        dim=dim,
        content_hash=content_hash,
        expires_at=expires_at,
        deleted_at=deleted_at,
        surprise=surprise,
        salient=bool(salient),
        dedup=bool(dedup),
        occurred_at=occurred_at,
        key_of=key_of,
    )


def blob_vector(blob: bytes) -> np.ndarray:
    """A stored vector; a damaged blob (not whole float32 values) reads as an empty vector,
    which no query matches (``memora memory doctor`` finds and repairs it)."""
    if len(blob) % 4:
        return np.zeros(0, dtype=np.float32)
    return np.frombuffer(blob, dtype=np.float32)


def check_writable(path: Path) -> None:
    """Refuse a memory file that cannot be written, before SQLite fails on its first write."""
    if str(path) != ":memory:" and path.is_file() and not os.access(path, os.W_OK):
        raise ReadOnlyError(
            f"{path} is read-only; make it writable (chmod u+w {path}) or run a command that "
            "only reads it (list, search, history, get, export)"
        )

"""The memory store's values: scopes, records, hits, history. Plain, frozen, serializable."""

from __future__ import annotations

import functools
import hashlib
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypedDict, Unpack

from memora.errors import ScopeError

__all__ = [
    "AddResult",
    "AnyUserScope",
    "DamagedStoreWarning",
    "HistoryEntry",
    "IndexStatus",
    "MemoryRecord",
    "Occurrence",
    "Scope",
    "ScopeIds",
    "SearchHit",
    "SurpriseScore",
    "content_hash",
    "normalize_text",
]

Event = Literal["ADD", "UPDATE", "DELETE"]
_FIELDS = ("user_id", "agent_id", "session_id")


class ScopeIds(TypedDict, total=False):
    """The scope as keyword arguments: ``user_id=..., agent_id=..., session_id=...``."""

    user_id: str | None
    agent_id: str | None
    session_id: str | None


@dataclass(frozen=True)
class Scope:
    """Whose memory: any of user, agent and session. A record belongs to the scope it was
    written with; a read with ``Scope(user_id="u")`` sees every record of user ``u``, whatever
    its agent or session, and nothing of any other user.

    Reads fail closed on the user: a read that leaves ``user_id`` unset sees only records
    written without a user (``Scope(agent_id="a")`` sees agent ``a``'s own records, not those
    it wrote for its users); :class:`AnyUserScope` is the explicit read across every user. An
    unset ``agent_id`` or ``session_id`` matches any value."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    any_user: ClassVar[bool] = False  # True: an unset user_id matches every user

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or value == ""):
                raise ScopeError(f"{name} must be a non-empty string or None, got {value!r}")

    @property
    def empty(self) -> bool:
        return all(getattr(self, name) is None for name in _FIELDS)

    def items(self) -> list[tuple[str, str]]:
        """The set fields as (column, value) pairs."""
        return [(n, v) for n in _FIELDS if (v := getattr(self, n)) is not None]

    def key(self) -> str:
        """A unique text key of the exact scope (for de-duplication)."""
        return _scope_key(self.user_id, self.agent_id, self.session_id)

    def to_dict(self) -> dict[str, str | None]:
        return {n: getattr(self, n) for n in _FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scope:
        return cls(**{n: data.get(n) for n in _FIELDS})

    @classmethod
    def coerce(cls, scope: Scope | Mapping[str, Any]) -> Scope:
        """A :class:`Scope` from a Scope or a plain dict of its fields."""
        if isinstance(scope, Scope):
            return scope
        if isinstance(scope, Mapping):
            unknown = sorted(str(k) for k in set(scope) - set(_FIELDS))
            if unknown:
                raise ScopeError(
                    f"unknown scope keys {unknown}; a scope takes {', '.join(_FIELDS)}"
                )
            return cls.from_dict(scope)
        raise ScopeError(
            f"a scope must be a Scope or a dict such as {{'user_id': 'u1'}}, got "
            f"{type(scope).__name__}"
        )

    @classmethod
    def of(cls, scope: Scope | Mapping[str, Any] | None = None, **ids: Unpack[ScopeIds]) -> Scope:
        """A scope from a Scope, a dict of its fields, or keyword ids (not both)."""
        unknown = set(ids) - set(_FIELDS)
        if unknown:
            raise ScopeError(f"unknown scope keys {sorted(unknown)}; use {', '.join(_FIELDS)}")
        if scope is not None:
            if any(v is not None for v in ids.values()):
                raise ScopeError("pass either scope= or user_id/agent_id/session_id, not both")
            return cls.coerce(scope)
        return cls(**ids)


@dataclass(frozen=True)
class AnyUserScope(Scope):
    """A read scope whose unset ``user_id`` matches every user (``all_users=True``)."""

    any_user: ClassVar[bool] = True


@dataclass(frozen=True)
class MemoryRecord:
    """One memory. ``id`` is stable across export and import."""

    id: str
    scope: Scope
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    embedder: str = ""
    dim: int = 0
    content_hash: str = ""
    expires_at: float | None = None
    deleted_at: float | None = None
    surprise: float | None = None  # normalized surprise when written to a neural memory
    salient: bool = False  # flagged by the neural memory as surprising
    dedup: bool = True  # False: added with dedup=False, never merged with the same text
    occurred_at: float | None = None  # when what it says happened (None: when it was written)
    key_of: str | None = None  # a search key of that record (not a memory of its own)

    @property
    def when(self) -> float:
        """When what the record says happened: ``occurred_at``, else ``created_at``."""
        return self.created_at if self.occurred_at is None else self.occurred_at

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope.to_dict(),
            "text": self.text,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "embedder": self.embedder,
            "dim": self.dim,
            "content_hash": self.content_hash,
            "expires_at": self.expires_at,
            "deleted_at": self.deleted_at,
            "surprise": self.surprise,
            "salient": self.salient,
            "dedup": self.dedup,
            "occurred_at": self.occurred_at,
            "key_of": self.key_of,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryRecord:
        return cls(
            id=data["id"],
            scope=Scope.from_dict(data["scope"]),
            text=data["text"],
            metadata=dict(data.get("metadata") or {}),
            created_at=float(data["created_at"]),
            updated_at=float(data["updated_at"]),
            embedder=data.get("embedder", ""),
            dim=int(data.get("dim", 0)),
            content_hash=data.get("content_hash", ""),
            expires_at=data.get("expires_at"),
            deleted_at=data.get("deleted_at"),
            surprise=data.get("surprise"),
            salient=bool(data.get("salient", False)),
            dedup=bool(data.get("dedup", True)),
            occurred_at=data.get("occurred_at"),
            key_of=data.get("key_of"),
        )


@dataclass(frozen=True)
class SurpriseScore:
    """How unexpected a (key, value) pair is to a neural memory before it is written."""

    surprise: float  # ||dl/dM(k)|| = 2 ||M(k) - v||
    loss: float  # ||M(k) - v||^2
    normalized: float  # loss / running mean loss (1.0 on an empty memory)
    salient: bool


@dataclass(frozen=True)
class AddResult:
    """What ``add`` did: ``created`` is False when the same text was already stored in this
    scope, and ``record`` is then the existing record."""

    record: MemoryRecord
    created: bool
    surprise: SurpriseScore | None = None  # with a neural memory: measured before the write


class DamagedStoreWarning(UserWarning):
    """Records whose stored vector is damaged (wrong length, NaN): they are left out of
    dense searches until ``memora memory doctor --repair`` quarantines them."""


@dataclass(frozen=True)
class SearchHit:
    """A search result. ``score`` orders the hits (reciprocal rank fusion in hybrid mode, plus
    the recency weight); ``similarity`` is the cosine similarity of query and record (None in a
    lexical search, which embeds nothing);
    ``dense_rank`` / ``lexical_rank`` are the 1-based ranks in each retriever (None: not
    retrieved by it); ``rerank_score`` is the second stage's score (None: no second stage, or
    a reranker without scores); ``via`` is the search key through which the record was found
    best (None: its own text); ``context`` holds the records written around it in its scope
    (``neighbours=n``: up to n before and n after, in time order, the hit not included)."""

    record: MemoryRecord
    score: float
    similarity: float | None
    dense_rank: int | None = None
    lexical_rank: int | None = None
    rerank_score: float | None = None
    via: str | None = None
    context: tuple[MemoryRecord, ...] = ()


@dataclass(frozen=True)
class HistoryEntry:
    """One write to a record."""

    memory_id: str
    event: Event
    old_text: str | None
    new_text: str | None
    actor: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory_id": self.memory_id,
            "event": self.event,
            "old_text": self.old_text,
            "new_text": self.new_text,
            "actor": self.actor,
            "at": self.at,
        }


@dataclass(frozen=True)
class Occurrence:
    """A text added again to a scope that already held it: the record is not stored twice,
    but this time it was said, with its metadata, is kept (``MemoryStore.occurrences``)."""

    memory_id: str
    at: float
    metadata: dict[str, Any]
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "metadata": self.metadata, "actor": self.actor}


@dataclass(frozen=True)
class IndexStatus:
    """How the vector index compares with SQLite (see :meth:`MemoryStore.verify_index`)."""

    db_count: int
    index_count: int
    missing: int
    extra: int
    kind: str

    @property
    def consistent(self) -> bool:
        return self.missing == 0 and self.extra == 0 and self.db_count == self.index_count


@functools.lru_cache(maxsize=4096)
def _scope_key(user_id: str | None, agent_id: str | None, session_id: str | None) -> str:
    return json.dumps([user_id, agent_id, session_id])


def normalize_text(text: str) -> str:
    """What de-duplication compares: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def content_hash(text: str) -> str:
    """The de-duplication key of a text."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()

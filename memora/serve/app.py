"""The ``memora serve`` application: the memory store over HTTP (JSON under ``/v1``), every
request in the scope of its API key (:mod:`memora.serve.keys`). :func:`create_app` builds it;
``memora serve`` and the tests run it with uvicorn.

The memory API: ``POST /v1/memories`` (add one or many), ``POST /v1/memories/search``,
``GET /v1/memories`` (list), ``GET|PATCH|DELETE /v1/memories/{id}``,
``GET /v1/memories/{id}/history``, ``GET /v1/export``. ``GET /healthz`` needs no key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from memora import __version__
from memora.errors import AccessError, InvalidOptionError
from memora.memory.store import MemoryStore
from memora.memory.types import MemoryRecord, Scope, SearchHit
from memora.serve.errors import BodyLimit, install_error_handlers
from memora.serve.keys import ApiKey, ApiKeys

__all__ = ["Limits", "create_app", "memory_routes"]


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; each refusal names its limit."""

    max_body_bytes: int = 1_000_000
    max_records: int = 100
    max_k: int = 100
    max_list: int = 1_000


class _Body(BaseModel):
    # unknown fields are refused (a body that names a user_id is one: the key gives the scope);
    # strict: "10" is not a number
    model_config = ConfigDict(extra="forbid", strict=True)


class AddBody(_Body):
    texts: list[str] = Field(min_length=1)
    metadata: dict[str, Any] | None = None
    metadatas: list[dict[str, Any] | None] | None = None
    cues: list[str | None] | None = None


class SearchBody(_Body):
    query: str
    k: int = Field(default=10, ge=1)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    filters: dict[str, Any] | None = None


class UpdateBody(_Body):
    text: str
    metadata: dict[str, Any] | None = None


def _caller(request: Request) -> ApiKey:
    """The key of a request (``Authorization: Bearer <key>``), checked on every request."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    keys: ApiKeys = request.app.state.keys
    return keys.check(secret.strip() if scheme.lower() == "bearer" else None)


Caller = Annotated[ApiKey, Depends(_caller)]


def create_app(store: MemoryStore, *, limits: Limits | None = None) -> FastAPI:
    """The application over ``store`` (a SQLite store: its file also holds the API keys)."""
    limits = limits or Limits()
    keys = ApiKeys(store.database)
    app = FastAPI(title="memora", version=__version__, openapi_url="/v1/openapi.json",
                  docs_url=None, redoc_url=None)  # fmt: skip
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)

    app.state.keys = keys

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        store.database.one("SELECT 1")  # the database answers (no count: no key needed here)
        return {"status": "ok", "version": __version__}

    app.include_router(memory_routes(store, limits))
    return app


def memory_routes(store: MemoryStore, limits: Limits) -> APIRouter:
    """The memory API over ``store``, each call in its key's scope."""
    router = APIRouter(prefix="/v1")

    @router.post("/memories", status_code=201)
    def add(body: AddBody, key: Caller) -> dict[str, Any]:
        scope = _scope(key, "write")
        _at_most(len(body.texts), limits.max_records, "max_records", "texts")
        results = store.add_many(body.texts, scope, metadata=body.metadata,
                                 metadatas=body.metadatas, cues=body.cues,
                                 actor=f"key:{key.id}")  # fmt: skip
        return {"results": [{**_record(r.record), "created": r.created} for r in results]}

    @router.post("/memories/search")
    def search(body: SearchBody, key: Caller) -> dict[str, Any]:
        scope = _scope(key, "read")
        _at_most(body.k, limits.max_k, "max_k", "k")
        hits = store.search(body.query, scope, k=body.k, mode=body.mode, filters=body.filters)
        return {"hits": [_hit(h) for h in hits]}

    @router.get("/memories")
    def list_(key: Caller, limit: int = 100) -> dict[str, Any]:
        _at_most(limit, limits.max_list, "max_list", "limit")
        return {"records": [_record(r) for r in store.list(_scope(key, "read"), limit=limit)]}

    @router.get("/memories/{record_id}")
    def get(record_id: str, key: Caller) -> dict[str, Any]:
        return _record(store.get(record_id, _scope(key, "read")))

    @router.patch("/memories/{record_id}")
    def update(record_id: str, body: UpdateBody, key: Caller) -> dict[str, Any]:
        record = store.update(record_id, body.text, _scope(key, "write"),
                              metadata=body.metadata, actor=f"key:{key.id}")  # fmt: skip
        return _record(record)

    @router.delete("/memories/{record_id}")
    def delete(record_id: str, key: Caller) -> dict[str, Any]:
        store.delete(record_id, _scope(key, "write"), actor=f"key:{key.id}")
        return {"id": record_id, "deleted": True}

    @router.get("/memories/{record_id}/history")
    def history(record_id: str, key: Caller) -> dict[str, Any]:
        entries = store.history(record_id, _scope(key, "read"))
        return {"history": [_plain(e) for e in entries]}

    @router.get("/export")
    def export(key: Caller) -> dict[str, Any]:
        records = store.list(_scope(key, "read"), include_deleted=True)
        return {"records": [_record(r) for r in records]}

    return router


def _scope(key: ApiKey, need: str) -> Scope:
    """The scope of a request: its key's, never its body's."""
    if not key.allows(need):
        raise AccessError(f"this API key may not {need}. Fix: create a key with --scopes "
                          f"{','.join((*key.scopes, need))}")  # fmt: skip
    if key.user_id is None:
        raise AccessError(
            "an admin key names no user; memory calls need a user's key. Fix: memora keys "
            "create --user U"
        )
    return Scope(user_id=key.user_id, agent_id=key.agent_id)


def _at_most(value: int, limit: int, name: str, field: str) -> None:
    if value > limit:
        raise InvalidOptionError(
            f"{field} is {value}, over the server's limit {name}={limit}. Fix: ask for at most "
            f"{limit}, in several requests if needed"
        )


def _record(record: MemoryRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "text": record.text,
        "metadata": record.metadata,
        "user_id": record.scope.user_id,
        "agent_id": record.scope.agent_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "occurred_at": record.occurred_at,
        "deleted": record.deleted_at is not None,
    }


def _hit(hit: SearchHit) -> dict[str, Any]:
    return {**_record(hit.record), "score": hit.score, "similarity": hit.similarity}


def _plain(entry: Any) -> dict[str, Any]:
    fields = getattr(entry, "__dataclass_fields__", {})
    return {name: getattr(entry, name) for name in fields}

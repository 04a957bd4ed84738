"""The ``memora serve`` application: the memory store over HTTP (JSON under ``/v1``), every
request in the scope of its API key (:mod:`memora.serve.keys`). :func:`create_app` builds it;
``memora serve`` and the tests run it with uvicorn.

The memory API: ``POST /v1/memories`` (add one or many), ``POST /v1/memories/search``,
``GET /v1/memories`` (list), ``GET|PATCH|DELETE /v1/memories/{id}``,
``GET /v1/memories/{id}/history``, ``GET /v1/export``; rerank and chat
(:mod:`memora.serve.models`). ``GET /healthz`` and ``GET /metrics`` (Prometheus) need no key.
An admin key acts for the user named by ``?user_id=`` (and ``agent_id``); any other key only
for its own, and a request naming another user is refused.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from pydantic import Field

from memora import __version__
from memora.memory.store import MemoryStore
from memora.memory.types import MemoryRecord, SearchHit
from memora.serve.common import Body, Caller, Limits, at_most, scope_of
from memora.serve.errors import BodyLimit, install_error_handlers
from memora.serve.keys import ApiKeys
from memora.serve.metrics import install_metrics
from memora.serve.models import ModelQueue, model_routes

__all__ = ["Limits", "create_app", "memory_routes"]


class AddBody(Body):
    texts: list[str] = Field(min_length=1)
    metadata: dict[str, Any] | None = None
    metadatas: list[dict[str, Any] | None] | None = None
    cues: list[str | None] | None = None


class SearchBody(Body):
    query: str
    k: int = Field(default=10, ge=1)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    filters: dict[str, Any] | None = None


class UpdateBody(Body):
    text: str
    metadata: dict[str, Any] | None = None


def create_app(store: MemoryStore, *, llm: Any = None, limits: Limits | None = None) -> FastAPI:
    """The application over ``store`` (its database also holds the API keys) and
    ``llm`` (None: no chat, and the bi-encoder the only reranker)."""
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
    queue = ModelQueue(limits.max_queue, limits.max_generations_per_key)
    app.state.queue, app.state.agents = queue, {}
    app.state.metrics = metrics = install_metrics(app, queue)
    app.include_router(model_routes(store, llm, limits, queue, app.state.agents, metrics))
    return app


def memory_routes(store: MemoryStore, limits: Limits) -> APIRouter:
    """The memory API over ``store``, each call in its key's scope."""
    router = APIRouter(prefix="/v1")

    @router.post("/memories", status_code=201)
    def add(body: AddBody, key: Caller) -> dict[str, Any]:
        scope = scope_of(key, "write")
        at_most(len(body.texts), limits.max_records, "max_records", "texts")
        results = store.add_many(body.texts, scope, metadata=body.metadata,
                                 metadatas=body.metadatas, cues=body.cues,
                                 actor=f"key:{key.id}")  # fmt: skip
        return {"results": [{**_record(r.record), "created": r.created} for r in results]}

    @router.post("/memories/search")
    def search(body: SearchBody, key: Caller) -> dict[str, Any]:
        scope = scope_of(key, "read")
        at_most(body.k, limits.max_k, "max_k", "k")
        hits = store.search(body.query, scope, k=body.k, mode=body.mode, filters=body.filters)
        return {"hits": [_hit(h) for h in hits]}

    @router.get("/memories")
    def list_(key: Caller, limit: int = 100) -> dict[str, Any]:
        at_most(limit, limits.max_list, "max_list", "limit")
        return {"records": [_record(r) for r in store.list(scope_of(key, "read"), limit=limit)]}

    @router.get("/memories/{record_id}")
    def get(record_id: str, key: Caller) -> dict[str, Any]:
        return _record(store.get(record_id, scope_of(key, "read")))

    @router.patch("/memories/{record_id}")
    def update(record_id: str, body: UpdateBody, key: Caller) -> dict[str, Any]:
        record = store.update(record_id, body.text, scope_of(key, "write"),
                              metadata=body.metadata, actor=f"key:{key.id}")  # fmt: skip
        return _record(record)

    @router.delete("/memories/{record_id}")
    def delete(record_id: str, key: Caller) -> dict[str, Any]:
        store.delete(record_id, scope_of(key, "write"), actor=f"key:{key.id}")
        return {"id": record_id, "deleted": True}

    @router.get("/memories/{record_id}/history")
    def history(record_id: str, key: Caller) -> dict[str, Any]:
        entries = store.history(record_id, scope_of(key, "read"))
        return {"history": [asdict(e) for e in entries]}

    @router.get("/export")
    def export(key: Caller) -> dict[str, Any]:
        records = store.list(scope_of(key, "read"), include_deleted=True)
        return {"records": [_record(r) for r in records]}

    return router


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

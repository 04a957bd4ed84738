"""Errors over HTTP: the ``MemoraError`` tree mapped onto status codes with a JSON body
``{"error": {"type", "message", "fix"}}``, request validation the same way, and no stack
trace ever reaching a client; the request body's size limit."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from memora.errors import (
    AccessError,
    ClosedError,
    ConfigError,
    ForbiddenError,
    InvalidRecordError,
    KeyNotFoundError,
    MemoraError,
    ReadOnlyError,
    RecordNotFoundError,
    ScopeError,
    ServerBusyError,
    StoreBusyError,
)

__all__ = ["BodyLimit", "error_body", "install_error_handlers", "status_of"]

log = logging.getLogger("memora.serve")

#: Seconds a client told 429 (a full model queue) or 503 (a busy store) waits before retrying.
RETRY_AFTER = 2

# the most specific class first
_STATUS: tuple[tuple[type[MemoraError], int], ...] = (
    (ServerBusyError, 429),
    (ForbiddenError, 403),
    (KeyNotFoundError, 404),
    (AccessError, 401),
    (RecordNotFoundError, 404),
    (ReadOnlyError, 403),
    (ScopeError, 403),
    (StoreBusyError, 503),
    (ClosedError, 503),
    (InvalidRecordError, 422),
    (ConfigError, 422),
)


def status_of(exc: MemoraError) -> int:
    """The HTTP status of an error (500: a server-side failure)."""
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


def error_body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"error": {...}}``: the message up to its "Fix:", the fix apart."""
    text, _, fix = message.partition(" Fix: ")
    if not fix:
        text, _, fix = message.partition("Fix: ")
    return {"error": {"type": kind, "message": text.strip().rstrip("."), "fix": fix.strip() or None,
                      **extra}}  # fmt: skip


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MemoraError)
    async def memora_error(request: Request, exc: MemoraError) -> JSONResponse:
        status = status_of(exc)
        if status == 500:
            log.error("request failed: %s: %s", type(exc).__name__, exc)
            return JSONResponse(error_body("InternalError", "the server failed"), status_code=500)
        headers = {"Retry-After": str(RETRY_AFTER)} if status in (429, 503) else None
        return JSONResponse(error_body(type(exc).__name__, str(exc)), status_code=status,
                            headers=headers)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(e) for e in exc.errors()[:5]]
        return JSONResponse(
            error_body("InvalidRequest", "; ".join(problems) + ". Fix: send the fields the "
                       "API documents (/v1/openapi.json) with their types; the scope comes "
                       "from the API key, never from the body"),
            status_code=422,
        )  # fmt: skip

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body("HTTPError", str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse(error_body("InternalError", "the server failed"), status_code=500)


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown field {where!r}"
    if kind == "json_invalid":
        return "the body is not valid JSON"
    if where == "body" and kind in ("model_attributes_type", "dict_type"):
        return "the body must be a JSON object (Content-Type: application/json)"
    if kind == "missing":
        return f"missing field {where!r}"
    return f"{where}: {error.get('msg', kind)}"


class BodyLimit:
    """Refuses a body over ``limit`` bytes (413, limit ``max_body_bytes``) before it is read,
    and a body without a length (411)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is None or not length.isdigit():
            await _send(send, 411, error_body(
                "LengthRequired", "a request body needs a Content-Length. Fix: send the body "
                "in one piece"))  # fmt: skip
            return
        if int(length) > self.limit:
            await _send(send, 413, error_body(
                "LimitError", f"the body is {int(length)} bytes, over the server's limit "
                f"max_body_bytes={self.limit}. Fix: send less per request",
                limit="max_body_bytes"))  # fmt: skip
            return
        await self.app(scope, receive, send)


async def _send(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": data})

"""What can go wrong between memora and an OpenAI-compatible endpoint, and how it is told: the
``openai`` client's exceptions mapped onto :mod:`memora.errors`, answers checked against the
protocol (a body that is not JSON, a stream that is not an event stream, chunks of the wrong
shape), and the one bounded retry loop. Used only by :mod:`memora.llm.openai`.

A timeout is never retried: a server that did not answer within the timeout is more likely hung
than unlucky, and a retry would only multiply the wait. Connection failures, HTTP 408, 409, 429
and 5xx are retried ``max_retries`` times with exponential backoff.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from memora.errors import (
    AuthenticationError,
    BackendError,
    ConnectionFailedError,
    ContextOverflowError,
    MemoraError,
    ModelNotFoundError,
    ProtocolError,
    RateLimitError,
    ServerError,
    missing_extra,
)

try:
    import openai
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("openai", "openai") from exc

__all__ = ["ErrorMap", "bad_answer", "check_stream", "chunk_text", "detail", "with_retries"]

T = TypeVar("T")

#: How much of a bad answer an error message shows.
SHOWN = 200
#: The base URL hint every protocol error ends with.
BASE_URL_FIX = (
    "Fix: check the base URL: it must be the API root of an OpenAI-compatible server, which "
    "usually ends in /v1 (MEMORA_OPENAI_BASE_URL, e.g. http://127.0.0.1:8000/v1)"
)
_RETRY_STATUS = (408, 409, 429)
_MAX_BACKOFF = 8.0
_MAX_RETRY_AFTER = 20.0


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP library's errors for a connection that failed or broke midway (the ``openai``
    client wraps those of the request, not always those of a stream being read)."""
    errors: list[type[Exception]] = [httpx.TransportError]
    try:
        import httpx2  # the HTTP library of newer openai releases
    except ImportError:  # pragma: no cover - depends on the openai release
        pass
    else:
        errors.append(httpx2.TransportError)
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


@dataclass(frozen=True)
class ErrorMap:
    """``with ErrorMap(...):`` turns ``openai`` and transport exceptions into memora's tree,
    with the endpoint and the fix in the message."""

    origin: str
    model: str
    n_ctx: int
    timeout: float
    structured_output: str
    midway: bool = False  # around the reading of an answer already begun

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, openai.OpenAIError):
            raise translate(exc, self) from exc
        if isinstance(exc, _TRANSPORT_ERRORS):
            if "timeout" in type(exc).__name__.lower():
                raise _timed_out(self) from exc
            raise _broke(self, f"{type(exc).__name__}: {exc}") from exc


def translate(exc: openai.OpenAIError, where: ErrorMap) -> MemoraError:
    """The memora error for one ``openai`` client error."""
    origin = where.origin
    if isinstance(exc, openai.APITimeoutError):
        return _timed_out(where)
    if isinstance(exc, openai.APIConnectionError) and where.midway:
        return _broke(where, str(exc).rstrip("."))
    if isinstance(exc, openai.APIConnectionError):
        return ConnectionFailedError(
            f"cannot reach {origin}: {str(exc).rstrip('.')}. Fix: start the server, or set "
            "the right base URL "
            "(MEMORA_OPENAI_BASE_URL, e.g. http://127.0.0.1:8000/v1)"
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return bad_answer(
            str(exc.request.url), f"an answer of the wrong shape ({exc.message})", exc.body
        )
    if not isinstance(exc, openai.APIStatusError):
        return BackendError(f"the OpenAI client failed talking to {origin}: {exc}")
    status, text = exc.status_code, detail(exc)
    if status in (401, 403):
        return AuthenticationError(
            f"{origin} rejected the credentials (HTTP {status}): {text}. Fix: set a valid API "
            "key (MEMORA_OPENAI_API_KEY or OPENAI_API_KEY)",
            status_code=status,
        )
    if status == 404:
        return ModelNotFoundError(
            f"{origin} answered 404 for model {where.model!r}: {text}. Fix: check the model "
            "name (GET /v1/models lists them) and that the base URL ends in /v1"
        )
    if status == 429:
        return RateLimitError(
            f"{origin} kept answering 429 (rate limited) after the retries: {text}. Fix: "
            "lower the request rate or raise max_retries",
            status_code=status,
        )
    if "context" in text.lower() and status in (400, 413, 422, 500):
        return ContextOverflowError(
            f"the server says the prompt does not fit its context: {text}. Fix: shorten the "
            "prompt, lower max_tokens, or start the server with a larger context",
            prompt_tokens=-1,
            max_tokens=-1,
            n_ctx=where.n_ctx,
        )
    if "response_format" in text:
        other = "json_object" if where.structured_output == "json_schema" else "json_schema"
        return ServerError(
            f"{origin} does not accept this response_format (HTTP {status}): {text}. Fix: "
            f"create the model with structured_output='{other}'",
            status_code=status,
        )
    if status >= 500:
        return ServerError(
            f"{origin} failed with HTTP {status} after the retries: {text}. Check the server's log",
            status_code=status,
        )
    return ServerError(f"{origin} rejected the request (HTTP {status}): {text}", status_code=status)


def _broke(where: ErrorMap, why: str) -> ConnectionFailedError:
    return ConnectionFailedError(
        f"the connection to {where.origin} broke midway through the answer ({why}): the "
        "server may have crashed or restarted. Check the server's log, then retry"
    )


def _timed_out(where: ErrorMap) -> ConnectionFailedError:
    return ConnectionFailedError(
        f"{where.origin} did not answer within {where.timeout:g} s (a timeout is not retried): "
        "the server is hung or overloaded. Fix: check the server, or raise the timeout "
        "(MEMORA_OPENAI_TIMEOUT, or timeout= of the model)"
    )


def detail(exc: openai.APIStatusError) -> str:
    """The server's own words from an error answer, at most 500 characters."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error") or body
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:500]
    if isinstance(body, str) and body.strip():  # not JSON: an HTML error page, plain text
        return f"{exc.message}, body {shown(body)}"[:500]
    return str(exc.message)[:500]


def shown(received: Any) -> str:
    """The start of what an endpoint sent, for a message."""
    if isinstance(received, bytes):
        received = received.decode("utf-8", "replace")
    elif isinstance(received, openai.BaseModel):
        data = received.model_dump(warnings=False, exclude_unset=True)
        received = json.dumps(data, default=str, ensure_ascii=False)
    elif not isinstance(received, str):
        received = json.dumps(received, default=str, ensure_ascii=False)
    text = " ".join(received.split())
    return repr(text[:SHOWN] + ("..." if len(text) > SHOWN else ""))


def bad_answer(url: str, what: str, received: Any) -> ProtocolError:
    """The error for an answer outside the protocol: ``url`` sent ``what`` (``received``)."""
    return ProtocolError(f"{url} sent {what}: {shown(received)}. {BASE_URL_FIX}")


def check_stream(stream: Any, url: str) -> None:
    """Refuse a streamed answer that is not an event stream (an HTML page, a JSON object),
    before reading it as one: its content type and the start of its body name the cause."""
    response = getattr(stream, "response", None)
    if response is None:  # pragma: no cover - every openai release keeps the response
        return
    content_type = response.headers.get("content-type", "")
    if not content_type or "event-stream" in content_type:
        return
    body = response.read()[: SHOWN * 4]
    raise bad_answer(
        str(getattr(response, "url", url)),
        f"{content_type} (HTTP {response.status_code}) where an event stream of JSON chunks "
        "was expected",
        body,
    )


def chunk_text(chunk: Any, *, raw: bool, url: str) -> tuple[str, str | None]:
    """The text and finish reason of one streamed chunk ("" and None for a chunk with no
    choices, such as a usage-only chunk); :class:`ProtocolError` for a chunk of another shape."""
    choices = getattr(chunk, "choices", None)
    if isinstance(choices, list) and not choices:
        return "", None
    choice = choices[0] if isinstance(choices, list) else None
    holder = choice if raw else getattr(choice, "delta", None)
    piece = getattr(holder, "text" if raw else "content", None)
    finish = getattr(choice, "finish_reason", None)
    if (
        not isinstance(holder, openai.BaseModel)
        or not isinstance(piece, str | None)
        or not isinstance(finish, str | None)
    ):
        field = "choices[0].text" if raw else "choices[0].delta.content"
        raise bad_answer(url, f"a chunk without a readable {field}", chunk)
    return piece or "", finish


def with_retries(call: Callable[[], T], max_retries: int) -> T:
    """``call()``, retried at most ``max_retries`` times on a connection failure, HTTP 408, 409,
    429 or 5xx, with exponential backoff (or the server's Retry-After, up to 20 s). Timeouts and
    every other error are raised at once."""
    for attempt in range(max_retries + 1):
        try:
            return call()
        except openai.APIError as exc:
            if attempt >= max_retries or not _retryable(exc):
                raise
            time.sleep(_backoff(attempt, exc))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _retryable(exc: openai.APIError) -> bool:
    if isinstance(exc, openai.APITimeoutError):
        return False
    if isinstance(exc, openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRY_STATUS or exc.status_code >= 500
    return False


def _backoff(attempt: int, exc: openai.APIError) -> float:
    if isinstance(exc, openai.APIStatusError):
        after = exc.response.headers.get("retry-after", "")
        try:
            seconds = float(after)
        except ValueError:
            seconds = -1.0
        if 0 < seconds <= _MAX_RETRY_AFTER:
            return seconds
    return min(0.5 * 2.0**attempt, _MAX_BACKOFF) * (1 - 0.25 * random.random())

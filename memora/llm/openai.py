"""Any OpenAI-compatible endpoint through the official ``openai`` client. With
:mod:`memora.llm.openai_errors` (its error map, protocol checks and retries), the only module
that imports ``openai``.

Chat prompts go to ``/chat/completions``; plain-string prompts to the legacy ``/completions``
route, which llama.cpp, vLLM and most local servers still serve. Transient failures (connection
errors, HTTP 429 and 5xx) are retried a bounded number of times with exponential backoff; a
timeout is not retried, so a hung server surfaces after one ``timeout``. What still fails, and
an answer outside the protocol (an HTML page, invalid JSON, chunks of the wrong shape), becomes
a typed :mod:`memora.errors` error (:mod:`memora.llm.openai_errors`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

import httpx

from memora.errors import (
    GenerationError,
    InvalidOptionError,
    UnsupportedError,
    missing_extra,
)
from memora.llm.base import LLM, Completion, Prompt, ToolCall, ToolReply, Usage, as_messages
from memora.llm.openai_errors import (
    ErrorMap,
    bad_answer,
    check_stream,
    chunk_text,
    detail,
    with_retries,
)
from memora.llm.options import SamplingOptions, parse_options

try:
    import openai
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("openai", "openai") from exc

__all__ = ["OpenAILLM"]

T = TypeVar("T")

StructuredOutput = Literal["json_schema", "json_object"]
Tokenizer = Literal["llama-cpp-python"]

#: llama.cpp-style sampling fields that the OpenAI API itself does not define.
_EXTRA_SAMPLING = ("top_k", "min_p", "repeat_penalty")


class OpenAILLM(LLM):
    """A model behind an OpenAI-compatible HTTP API.

    Args:
        model: the model name the server knows.
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (None: api.openai.com).
        api_key: the key; local servers usually accept any value.
        timeout: seconds to wait for the server (to connect, and for each read of its answer;
            for a call that does not stream, the whole answer). A timeout is not retried.
        max_retries: retries of connection errors, HTTP 408, 409, 429 and 5xx, with backoff.
        n_ctx: the server's context length, for callers that budget prompts.
        structured_output: how to ask for JSON-schema output. ``"json_schema"`` is the OpenAI
            format (OpenAI, vLLM, llama.cpp's server); ``"json_object"`` sends
            ``{"type": "json_object", "schema": ...}`` (llama-cpp-python's server).
        tokenizer: ``"llama-cpp-python"`` uses that server's ``/extras/tokenize`` routes for
            exact token counts; None estimates counts (``supports_tokenize`` is then False).
        sampling_extras: also send ``top_k``, ``min_p`` and ``repeat_penalty`` (servers built on
            llama.cpp accept them; the OpenAI API rejects unknown fields).
    """

    supports_raw_json = False
    supports_tools = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 15.0,
        max_retries: int = 3,
        n_ctx: int = 4096,
        structured_output: StructuredOutput = "json_schema",
        tokenizer: Tokenizer | None = None,
        sampling_extras: bool = False,
        defaults: SamplingOptions | None = None,
    ) -> None:
        if structured_output not in ("json_schema", "json_object"):
            raise InvalidOptionError(
                "structured_output must be 'json_schema' or 'json_object', "
                f"got {structured_output!r}"
            )
        if tokenizer not in (None, "llama-cpp-python"):
            raise InvalidOptionError(
                f"tokenizer must be None or 'llama-cpp-python', got {tokenizer!r}"
            )
        if max_retries < 0 or timeout <= 0:
            raise InvalidOptionError("max_retries must be >= 0 and timeout > 0")
        self.name = model
        self.n_ctx = n_ctx
        self.defaults = defaults or SamplingOptions()
        self.base_url = base_url
        self.structured_output = structured_output
        self.sampling_extras = sampling_extras
        self.supports_tokenize = tokenizer is not None
        self.timeout = timeout
        self.max_retries = max_retries
        self._format_settled = False  # whether the server took (or refused) a response_format
        self._client = openai.OpenAI(
            base_url=base_url,
            # Local servers need no key; a real endpoint answers 401, which names the fix.
            api_key=api_key or "no-key",
            timeout=timeout,
            max_retries=0,  # retried here, by with_retries: a timeout is not retried
        )
        self._origin = str(self._client.base_url).rstrip("/").removesuffix("/v1")

    # -- generation ----------------------------------------------------------------------

    def _run(
        self, prompt: Prompt, options: SamplingOptions, schema: dict[str, Any] | None
    ) -> Generator[str, None, Completion]:
        params = self._params(options)
        if self.supports_tokenize:  # exact counts: fail before sending what cannot fit
            self.check_fits(self.count_tokens(prompt), options.max_tokens)
        raw = isinstance(prompt, str)
        with self._errors():
            if isinstance(prompt, str):
                if schema is not None:  # pragma: no cover - LLM.generate_json checks first
                    raise UnsupportedError("JSON-schema output needs a chat prompt here")
                stream: Iterator[Any] = self._retrying(
                    lambda: self._client.completions.create(
                        model=self.name, prompt=prompt, stream=True, **params
                    )
                )
            else:
                messages: Any = [m.to_dict() for m in as_messages(prompt)]
                stream = self._chat(messages, schema, params)
        text: list[str] = []
        finish: str | None = None
        usage: Any = None
        url = self._url(stream, "/completions" if raw else "/chat/completions")
        try:
            with self._errors(midway=True):
                check_stream(stream, url)
                for chunk in _chunks(stream, url):
                    usage = getattr(chunk, "usage", None) or usage
                    piece, finish_now = chunk_text(chunk, raw=raw, url=url)
                    if piece:
                        text.append(piece)
                        yield piece
                    finish = finish_now or finish
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if finish is None:
            raise GenerationError(
                f"the stream from {url} ended without a finish reason: the server dropped the "
                "answer midway (some servers do this for a prompt longer than their context). "
                "Check the server's log, then retry"
            )
        full = "".join(text)
        return Completion(
            text=full,
            finish_reason="length" if finish == "length" else "stop",
            usage=self._usage(prompt, full, usage, len(text)),
            model=self.name,
        )

    def call_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        tool_choice: str | Mapping[str, Any] = "auto",
        **options: Any,
    ) -> ToolReply:
        """One chat call offering ``tools`` (OpenAI format); returns the text and the tool calls
        the model made. ``messages`` may hold tool results (``role: tool``) and assistant
        messages with ``tool_calls``. ``tool_choice``: "auto", "none", or
        ``{"type": "function", "function": {"name": ...}}`` to force one tool."""
        params = self._params(parse_options(self.defaults, **options))
        if tools:
            params["tools"] = list(tools)
            params["tool_choice"] = tool_choice
        sent: Any = [dict(m) for m in messages]
        create = self._client.chat.completions.with_raw_response.create
        with self._errors():
            answer: Any = self._retrying(lambda: create(model=self.name, messages=sent, **params))
            url = str(answer.http_response.url)
            _check_json(answer.headers.get("content-type", ""), answer.status_code, url, answer)
            return _tool_reply(answer.parse(), url, answer.text)

    def _params(self, options: SamplingOptions) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "presence_penalty": options.presence_penalty,
            "frequency_penalty": options.frequency_penalty,
        }
        if options.seed is not None:
            params["seed"] = options.seed
        if options.stop:
            params["stop"] = list(options.stop)
        if self.sampling_extras:
            params["extra_body"] = {name: getattr(options, name) for name in _EXTRA_SAMPLING}
        return params

    def _chat(self, messages: Any, schema: dict[str, Any] | None, params: dict[str, Any]) -> Any:
        """Start a streamed chat call. When the server refuses the JSON response_format, the
        other style is tried once and kept (llama-cpp-python's server takes only
        ``json_object``; OpenAI and vLLM take ``json_schema``)."""
        create = self._client.chat.completions.create
        if schema is None:
            return self._retrying(
                lambda: create(model=self.name, messages=messages, stream=True, **params)
            )
        response_format = self._response_format(schema)
        try:
            stream = self._retrying(
                lambda: create(
                    model=self.name,
                    messages=messages,
                    stream=True,
                    response_format=response_format,
                    **params,
                )
            )
        except openai.APIStatusError as exc:
            if self._format_settled or "response_format" not in detail(exc):
                raise
            self._format_settled = True
            self.structured_output = (
                "json_object" if self.structured_output == "json_schema" else "json_schema"
            )
            return self._chat(messages, schema, params)
        self._format_settled = True
        return stream

    def _response_format(self, schema: dict[str, Any]) -> Any:
        if self.structured_output == "json_object":
            return {"type": "json_object", "schema": schema}
        return {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }

    def _usage(self, prompt: Prompt, text: str, usage: Any, chunks: int) -> Usage:
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
            details = getattr(usage, "prompt_tokens_details", None)
            return Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cached_tokens=_count(getattr(details, "cached_tokens", 0)),
            )
        counted = len(self.tokenize(text)) if self.supports_tokenize else chunks
        return Usage(prompt_tokens=self.count_tokens(prompt), completion_tokens=counted)

    # -- tokens --------------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        data = self._extras("/extras/tokenize", {"input": text})
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise bad_answer(self._origin + "/extras/tokenize", "no list of token ids", data)
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        data = self._extras("/extras/detokenize", {"tokens": list(tokens)})
        text = data.get("text")
        if not isinstance(text, str):
            raise bad_answer(self._origin + "/extras/detokenize", "no text", data)
        return text

    def count_tokens(self, prompt: Prompt) -> int:
        """Exact with a tokenizer route; otherwise an estimate that errs high (3 bytes a token,
        plus 4 tokens of chat markup per message)."""
        if isinstance(prompt, str):
            parts, overhead = [prompt], 0
        else:
            messages = as_messages(prompt)
            parts, overhead = [m.content for m in messages], 4 * len(messages) + 2
        if self.supports_tokenize:
            return sum(len(self.tokenize(p)) for p in parts) + overhead
        return sum(math.ceil(len(p.encode("utf-8")) / 3) for p in parts) + overhead

    def _extras(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        if not self.supports_tokenize:
            raise UnsupportedError(
                "this endpoint has no tokenizer route (supports_tokenize is False); pass "
                "tokenizer='llama-cpp-python' for a llama-cpp-python server, or use count_tokens"
            )
        url = self._origin + route
        with self._errors():
            answer: Any = self._retrying(
                lambda: self._client.post(url, body=body, cast_to=httpx.Response)
            )
            _check_json(answer.headers.get("content-type", ""), answer.status_code, url, answer)
            try:
                data = json.loads(answer.text)
            except json.JSONDecodeError as exc:
                raise bad_answer(url, "a body that is not valid JSON", answer.text) from exc
        if not isinstance(data, dict):
            raise bad_answer(url, "JSON that is not an object", data)
        return data

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    # -- errors --------------------------------------------------------------------------

    def _errors(self, *, midway: bool = False) -> ErrorMap:
        return ErrorMap(
            self._origin, self.name, self.n_ctx, self.timeout, self.structured_output, midway
        )

    def _retrying(self, call: Callable[[], T]) -> T:
        return with_retries(call, self.max_retries)

    def _url(self, stream: Any, route: str) -> str:
        response = getattr(stream, "response", None)
        url = getattr(response, "url", None)
        return str(url) if url is not None else str(self._client.base_url).rstrip("/") + route


def _chunks(stream: Iterator[Any], url: str) -> Iterator[Any]:
    """The chunks of ``stream``; a chunk that is not JSON is a :class:`ProtocolError`."""
    try:
        yield from stream
    except json.JSONDecodeError as exc:
        raise bad_answer(url, "a chunk that is not valid JSON", exc.doc) from exc


def _check_json(content_type: str, status: int, url: str, answer: Any) -> None:
    """Refuse an answer that is not JSON (an HTML page: often a base URL without /v1)."""
    if not content_type or "json" in content_type:
        return
    what = f"{content_type} (HTTP {status}) where a JSON answer was expected"
    raise bad_answer(url, what, answer.text)


def _tool_reply(response: Any, url: str, received: str) -> ToolReply:
    """The :class:`ToolReply` of a chat answer; :class:`ProtocolError` for another shape."""
    choices = getattr(response, "choices", None)
    message = choices[0].message if isinstance(choices, list) and choices else None
    content = getattr(message, "content", None)
    tool_calls = getattr(message, "tool_calls", None) or []
    functions: list[Any] = [getattr(c, "function", None) for c in tool_calls]
    if (
        not isinstance(message, openai.BaseModel)
        or not isinstance(content, str | None)
        or not isinstance(tool_calls, list)
        or not all(isinstance(getattr(f, "name", None), str) for f in functions)
    ):
        raise bad_answer(url, "a chat answer without a readable choices[0].message", received)
    calls = [
        ToolCall(id=c.id or f"call_{i}", name=f.name, arguments=f.arguments or "")
        for i, (c, f) in enumerate(zip(tool_calls, functions, strict=True))
    ]
    usage = getattr(response, "usage", None)
    return ToolReply(
        text=content or "",
        calls=calls,
        usage=Usage(
            prompt_tokens=_count(getattr(usage, "prompt_tokens", 0)),
            completion_tokens=_count(getattr(usage, "completion_tokens", 0)),
        ),
    )


def _count(value: Any) -> int:
    """A token count from the server's usage; 0 where it sent none (or not a number)."""
    return value if isinstance(value, int) and value >= 0 else 0

"""Any OpenAI-compatible endpoint through the official ``openai`` client. The only module that
imports ``openai``.

Chat prompts go to ``/chat/completions``; plain-string prompts to the legacy ``/completions``
route, which llama.cpp, vLLM and most local servers still serve. Transient failures (connection
errors, timeouts, HTTP 429 and 5xx) are retried by the client a bounded number of times with
exponential backoff; what still fails becomes a typed :mod:`memora.errors` error.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any, Literal

import httpx

from memora.errors import (
    AuthenticationError,
    BackendError,
    ConnectionFailedError,
    ContextOverflowError,
    GenerationError,
    InvalidOptionError,
    MemoraError,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
    UnsupportedError,
    missing_extra,
)
from memora.llm.base import LLM, Completion, Prompt, ToolCall, ToolReply, Usage, as_messages
from memora.llm.options import SamplingOptions, parse_options

try:
    import openai
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("openai", "openai") from exc

__all__ = ["OpenAILLM"]

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
        timeout: seconds per request (connect, read, write).
        max_retries: retries of connection errors, timeouts, 429 and 5xx, with backoff.
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
        timeout: float = 60.0,
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
        self._format_settled = False  # whether the server took (or refused) a response_format
        self._client = openai.OpenAI(
            base_url=base_url,
            # Local servers need no key; a real endpoint answers 401, which names the fix.
            api_key=api_key or "no-key",
            timeout=timeout,
            max_retries=max_retries,
        )
        self._origin = str(self._client.base_url).rstrip("/").removesuffix("/v1")

    # -- generation ----------------------------------------------------------------------

    def _run(
        self, prompt: Prompt, options: SamplingOptions, schema: dict[str, Any] | None
    ) -> Generator[str, None, Completion]:
        params = self._params(options)
        if self.supports_tokenize:  # exact counts: fail before sending what cannot fit
            self.check_fits(self.count_tokens(prompt), options.max_tokens)
        with self._errors():
            if isinstance(prompt, str):
                if schema is not None:  # pragma: no cover - LLM.generate_json checks first
                    raise UnsupportedError("JSON-schema output needs a chat prompt here")
                stream: Iterator[Any] = self._client.completions.create(
                    model=self.name, prompt=prompt, stream=True, **params
                )
            else:
                messages: Any = [m.to_dict() for m in as_messages(prompt)]
                stream = self._chat(messages, schema, params)
        text: list[str] = []
        finish: str | None = None
        usage: Any = None
        chunks = 0
        try:
            with self._errors():
                for chunk in stream:
                    usage = getattr(chunk, "usage", None) or usage
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    piece = choice.text if isinstance(prompt, str) else choice.delta.content
                    if piece:
                        chunks += 1
                        text.append(piece)
                        yield piece
                    finish = choice.finish_reason or finish
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if finish is None:
            raise GenerationError(
                f"the stream from {self._origin} ended without a finish reason: the server "
                "dropped the answer midway (some servers do this for a prompt longer than their "
                "context). Check the server's log, then retry"
            )
        full = "".join(text)
        return Completion(
            text=full,
            finish_reason="length" if finish == "length" else "stop",
            usage=self._usage(prompt, full, usage, chunks),
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
        with self._errors():
            sent: Any = [dict(m) for m in messages]
            response: Any = self._client.chat.completions.create(
                model=self.name, messages=sent, **params
            )
        message = response.choices[0].message
        calls = [
            ToolCall(id=c.id or f"call_{i}", name=c.function.name, arguments=c.function.arguments)
            for i, c in enumerate(message.tool_calls or [])
        ]
        usage = getattr(response, "usage", None)
        return ToolReply(
            text=message.content or "",
            calls=calls,
            usage=Usage(
                prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            ),
        )

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
        if schema is None:
            return self._client.chat.completions.create(
                model=self.name, messages=messages, stream=True, **params
            )
        try:
            stream = self._client.chat.completions.create(
                model=self.name, messages=messages, stream=True,
                response_format=self._response_format(schema), **params,
            )  # fmt: skip
        except openai.APIStatusError as exc:
            if self._format_settled or "response_format" not in _detail(exc):
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
        if usage is not None:
            details = getattr(usage, "prompt_tokens_details", None)
            return Usage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=getattr(details, "cached_tokens", None) or 0,
            )
        completion_tokens = len(self.tokenize(text)) if self.supports_tokenize else chunks
        return Usage(prompt_tokens=self.count_tokens(prompt), completion_tokens=completion_tokens)

    # -- tokens --------------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        data = self._extras("/extras/tokenize", {"input": text})
        tokens: list[int] = data["tokens"]
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        data = self._extras("/extras/detokenize", {"tokens": list(tokens)})
        text: str = data["text"]
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
        with self._errors():
            data: dict[str, Any] = self._client.post(
                self._origin + route, body=body, cast_to=httpx.Response
            ).json()
        return data

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    # -- errors --------------------------------------------------------------------------

    def _errors(self) -> _ErrorMap:
        return _ErrorMap(self)


class _ErrorMap:
    """Turns ``openai`` exceptions into memora's error tree, with the fix in the message."""

    def __init__(self, llm: OpenAILLM) -> None:
        self.llm = llm

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not isinstance(exc, openai.OpenAIError):
            return
        raise _translate(exc, self.llm) from exc


def _translate(exc: openai.OpenAIError, llm: OpenAILLM) -> MemoraError:
    where = llm._origin
    if isinstance(exc, openai.APITimeoutError):
        return ConnectionFailedError(
            f"{where} did not answer in time; raise the timeout or check the server's load"
        )
    if isinstance(exc, openai.APIConnectionError):
        return ConnectionFailedError(
            f"cannot reach {where}: {exc}. Fix: start the server, or set the right base URL "
            "(MEMORA_OPENAI_BASE_URL, e.g. http://127.0.0.1:8000/v1)"
        )
    if not isinstance(exc, openai.APIStatusError):
        return BackendError(f"the OpenAI client failed: {exc}")
    status, detail = exc.status_code, _detail(exc)
    if status in (401, 403):
        return AuthenticationError(
            f"{where} rejected the credentials (HTTP {status}): {detail}. Fix: set a valid API "
            "key (MEMORA_OPENAI_API_KEY or OPENAI_API_KEY)",
            status_code=status,
        )
    if status == 404:
        return ModelNotFoundError(
            f"{where} answered 404 for model {llm.name!r}: {detail}. Fix: check the model name "
            "(GET /v1/models lists them) and that the base URL ends in /v1"
        )
    if status == 429:
        return RateLimitError(
            f"{where} kept answering 429 (rate limited) after the retries: {detail}. Fix: "
            "lower the request rate or raise max_retries",
            status_code=status,
        )
    if "context" in detail.lower() and status in (400, 413, 422, 500):
        return _overflow(detail, llm)
    if "response_format" in detail:
        other = "json_object" if llm.structured_output == "json_schema" else "json_schema"
        return ServerError(
            f"{where} does not accept this response_format (HTTP {status}): {detail}. Fix: "
            f"create the model with structured_output='{other}'",
            status_code=status,
        )
    if status >= 500:
        return ServerError(
            f"{where} failed with HTTP {status} after the retries: {detail}. Check the "
            "server's log",
            status_code=status,
        )
    return ServerError(
        f"{where} rejected the request (HTTP {status}): {detail}", status_code=status
    )


def _overflow(detail: str, llm: OpenAILLM) -> ContextOverflowError:
    return ContextOverflowError(
        f"the server says the prompt does not fit its context: {detail}. Fix: shorten the "
        "prompt, lower max_tokens, or start the server with a larger context",
        prompt_tokens=-1,
        max_tokens=-1,
        n_ctx=llm.n_ctx,
    )


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error") or body
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:500]
    return str(exc.message)[:500]

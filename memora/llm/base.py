"""The model contract: one small abstract class that every backend implements.

A backend implements one generator, :meth:`LLM._run`, that yields text chunks and returns a
:class:`Completion`; the base class builds blocking, streaming and JSON-schema generation on top
of it. Prompts are either a plain string (a raw completion prompt) or a list of chat messages,
which the backend renders with the model's own chat template.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload

import numpy as np
from pydantic import BaseModel

from memora.errors import (
    ConfigError,
    ContextOverflowError,
    OutputValidationError,
    UnsupportedError,
)
from memora.llm.options import SamplingOptions, parse_options
from memora.llm.set_prompt import SetPrompt
from memora.llm.structured import OutputSpec, SchemaLike

__all__ = [
    "LLM",
    "Completion",
    "JsonCompletion",
    "Message",
    "Prompt",
    "Stream",
    "ToolCall",
    "ToolReply",
    "Usage",
    "as_messages",
]

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length"]
M = TypeVar("M", bound=BaseModel)

#: Temperature used for the retries of JSON generation when the caller asked for greedy
#: decoding: greedy retries would repeat the same output.
RETRY_TEMPERATURE = 0.7


class Closable:
    """``with`` support for anything with a ``close()``."""

    def close(self) -> None:
        """Release what this object holds. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        role, content = data.get("role"), data.get("content")
        if role not in ("system", "user", "assistant", "tool") or not isinstance(content, str):
            raise ConfigError(
                f"a chat message needs a role (system, user, assistant or tool) and text content, "
                f"got {dict(data)!r}"
            )
        return cls(role=role, content=content)


#: A raw completion string, chat messages, or a set prompt (order-invariant items).
Prompt = str | Sequence[Message | Mapping[str, Any]] | SetPrompt


def as_messages(prompt: Prompt) -> list[Message]:
    """Normalize a chat prompt; an empty list is an error."""
    if isinstance(prompt, str | SetPrompt):
        raise ConfigError(f"expected chat messages, got a {type(prompt).__name__}")
    messages = [m if isinstance(m, Message) else Message.from_dict(m) for m in prompt]
    if not messages:
        raise ConfigError("a chat prompt needs at least one message")
    return messages


@dataclass(frozen=True)
class Usage:
    """Token accounting of one call. ``cached_tokens`` were served from a KV cache and not
    evaluated again (llama.cpp prefix reuse, or what the server reports)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    @property
    def evaluated_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens


@dataclass(frozen=True)
class Completion:
    """The result of one generation."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    model: str


@dataclass(frozen=True)
class JsonCompletion:
    """Validated JSON output (``data``) and every completion it took (the last one parsed)."""

    data: Any
    completions: list[Completion]


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asked for; ``arguments`` is the raw JSON text it wrote."""

    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class ToolReply:
    """A model's answer when offered tools: text, tool calls, or both."""

    text: str
    calls: list[ToolCall]
    usage: Usage


@dataclass
class Stream(Iterator[str], Closable):
    """Text chunks as they are generated; iterate it, or call :meth:`result` to wait for all.

    After the last chunk, :attr:`completion` holds the full :class:`Completion`. Closing the
    stream early (``close()``, leaving a ``with`` block, or dropping it) stops generation.
    """

    _chunks: Generator[str, None, Completion]
    _completion: Completion | None = field(default=None, init=False)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            return next(self._chunks)
        except StopIteration as stop:
            if self._completion is None:  # an exhausted generator stops again with None
                self._completion = stop.value
            raise

    @property
    def completion(self) -> Completion | None:
        """The finished completion, or None while chunks remain."""
        return self._completion

    def result(self) -> Completion:
        """Consume the remaining chunks and return the whole completion."""
        for _ in self:
            pass
        assert self._completion is not None
        return self._completion

    def text(self) -> str:
        return self.result().text

    def close(self) -> None:
        self._chunks.close()


class LLM(Closable, ABC):
    """A language model. Subclasses implement :meth:`_run`, tokenization and :meth:`close`.

    Capabilities are attributes so callers can pick a strategy without probing:

    - ``supports_logits``: :meth:`logits` returns next-token logits over the vocabulary;
    - ``supports_sequences``: multi-sequence KV decoding (explicit positions, sequence copy);
    - ``supports_tokenize``: :meth:`tokenize` / :meth:`detokenize` are exact;
    - ``supports_raw_json``: JSON-schema output also for plain-string prompts (not only chat);
    - ``supports_tools``: ``call_tools`` (OpenAI-style tool calling).
    """

    supports_logits: bool = False
    supports_sequences: bool = False
    supports_tokenize: bool = False
    supports_raw_json: bool = False
    supports_tools: bool = False

    name: str
    n_ctx: int
    defaults: SamplingOptions

    # -- what a backend implements ---------------------------------------------------------

    @abstractmethod
    def _run(
        self, prompt: Prompt, options: SamplingOptions, schema: dict[str, Any] | None
    ) -> Generator[str, None, Completion]:
        """Yield text chunks for ``prompt``; return the completion. Constrain to ``schema``
        (a checked JSON schema) when given."""

    @abstractmethod
    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text`` (no BOS). ``special=True`` parses special-token markup."""

    @abstractmethod
    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens``."""

    @abstractmethod
    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens ``prompt`` takes in the context, chat template included."""

    def logits(self, prompt: Prompt) -> np.ndarray:
        """Next-token logits after ``prompt``: float32, one per vocabulary entry."""
        raise UnsupportedError(
            f"{type(self).__name__} has no next-token logits (supports_logits is False); "
            "use a local llama.cpp model (LlamaCppLLM) for logit-based scoring"
        )

    def call_tools(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        tool_choice: str | Mapping[str, Any] = "auto",
        **options: Any,
    ) -> ToolReply:
        """One chat call offering ``tools`` (OpenAI format); the text and the tool calls the
        model made. Only backends with ``supports_tools``."""
        raise UnsupportedError(
            f"{type(self).__name__} does not call tools (supports_tools is False); use an "
            "OpenAI-compatible endpoint (OpenAILLM), or leave tools off"
        )

    def _check_prompt(self, prompt: Prompt) -> None:
        if isinstance(prompt, SetPrompt) and not self.supports_sequences:
            raise UnsupportedError(
                f"{type(self).__name__} cannot run a SetPrompt: exact order invariance needs "
                "KV sequences (supports_sequences), which only local llama.cpp models have. "
                "For remote models use memora.prompting.choose(..., method='psc') "
                "(permutation self-consistency: it reduces order dependence, it does not remove it)"
            )

    def check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        """Raise :class:`ContextOverflowError` unless the prompt plus the output budget fits."""
        if prompt_tokens == 0:
            raise ConfigError("the prompt is empty; pass some text")
        if prompt_tokens + max_tokens > self.n_ctx:
            raise ContextOverflowError(
                f"the prompt has {prompt_tokens} tokens and max_tokens={max_tokens}, together more "
                f"than the context of {self.n_ctx} tokens. Fix: shorten the prompt, lower "
                "max_tokens, or use a larger context (load a local model with a larger n_ctx; "
                "start a server with a larger context)",
                prompt_tokens=prompt_tokens,
                max_tokens=max_tokens,
                n_ctx=self.n_ctx,
            )

    # -- what callers use ------------------------------------------------------------------

    def stream(self, prompt: Prompt, **options: Any) -> Stream:
        """Generate, yielding text as it comes (see :class:`Stream`)."""
        opts = parse_options(self.defaults, **options)
        self._check_prompt(prompt)
        return Stream(self._run(prompt, opts, None))

    def generate(self, prompt: Prompt, **options: Any) -> Completion:
        """Generate and return the whole completion."""
        return self.stream(prompt, **options).result()

    @overload
    def generate_json(
        self, prompt: Prompt, schema: type[M], *, retries: int = ..., **options: Any
    ) -> M: ...

    @overload
    def generate_json(
        self, prompt: Prompt, schema: Mapping[str, Any], *, retries: int = ..., **options: Any
    ) -> Any: ...

    def generate_json(
        self, prompt: Prompt, schema: SchemaLike, *, retries: int = 2, **options: Any
    ) -> Any:
        """Generate output constrained to a JSON schema and return the validated data.

        ``schema`` is a JSON schema (returns the parsed JSON) or a pydantic model class (returns
        an instance). Output that fails validation is sampled again, at most ``retries`` more
        times, with another seed (and temperature 0.7 when greedy was asked for); then
        :class:`OutputValidationError` is raised carrying every raw output.
        """
        return self.complete_json(prompt, schema, retries=retries, **options).data

    def complete_json(
        self,
        prompt: Prompt,
        schema: SchemaLike,
        *,
        retries: int = 2,
        on_text: Callable[[str], None] | None = None,
        **options: Any,
    ) -> JsonCompletion:
        """:meth:`generate_json`, returning the data with the completions that produced it
        (their text and token usage). ``on_text`` is called with each piece of raw output as
        it is generated (every attempt streams from its start); an exception it raises stops
        generation and propagates."""
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries}")
        spec = OutputSpec.from_schema(schema)
        self._check_prompt(prompt)
        if isinstance(prompt, str | SetPrompt) and not self.supports_raw_json:
            raise UnsupportedError(
                f"{type(self).__name__} constrains JSON output only for chat prompts; pass a "
                "list of messages, e.g. [{'role': 'user', 'content': prompt}]"
            )
        opts = parse_options(self.defaults, **options)
        completions: list[Completion] = []
        errors: list[str] = []
        for attempt in range(retries + 1):
            attempt_opts = opts if attempt == 0 else _retry_options(opts, attempt)
            with Stream(self._run(prompt, attempt_opts, spec.schema)) as stream:
                if on_text is not None:
                    for piece in stream:
                        on_text(piece)
                completion = stream.result()
            completions.append(completion)
            try:
                return JsonCompletion(data=spec.parse(completion.text), completions=completions)
            except ValueError as exc:
                reason = str(exc)
                if completion.finish_reason == "length":
                    reason += f" (cut off at max_tokens={opts.max_tokens})"
                errors.append(reason)
        raise OutputValidationError(
            f"model output did not validate after {retries + 1} attempts; last: {errors[-1]}. "
            f"Fix: raise max_tokens (now {opts.max_tokens}) if the output was cut off, loosen the "
            "schema's constraints, or use a stronger model",
            outputs=[c.text for c in completions],
            errors=errors,
            completions=completions,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n_ctx={self.n_ctx})"


def _retry_options(opts: SamplingOptions, attempt: int) -> SamplingOptions:
    return opts.model_copy(
        update={
            "seed": (opts.seed or 0) + attempt,
            "temperature": opts.temperature or RETRY_TEMPERATURE,
        }
    )

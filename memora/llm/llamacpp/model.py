"""Local GGUF models through llama.cpp: :class:`LlamaCppLLM`, over the native layer.

:class:`LlamaCppLLM` owns one model and one context and frees them deterministically
(``close()`` or a ``with`` block). Calls on one instance are serialized by its lock: llama.cpp
contexts are not thread-safe.

Prefix reuse: the context keeps the KV cells of the tokens it evaluated last; a call whose
prompt starts with the same tokens evaluates only the rest (``Completion.usage.cached_tokens``).

Multi-sequence decoding (:meth:`LlamaCppLLM.sequences`) exposes a unified KV cache with explicit
positions and sequence copies, the mechanism behind set-based prompting and KV memory banks.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from memora.errors import ClosedError, ConfigError, InvalidOptionError, UnsupportedError
from memora.llm.base import LLM, Completion, Prompt, Usage, as_messages
from memora.llm.llamacpp.kv import (
    KVSequences,
    SetTokens,
    Span,
    check_set,
    continuation_logprobs,
    decode_set,
)
from memora.llm.llamacpp.native import (
    ChatTemplate,
    ContextSettings,
    NativeContext,
    NativeModel,
    NativeSampler,
    SamplerSettings,
    gbnf_from_schema,
    max_parallel_sequences,
    supports_gpu_offload,
)
from memora.llm.llamacpp.text import TextStream
from memora.llm.names import check_gguf, default_name, resolve_gguf
from memora.llm.options import SamplingOptions
from memora.llm.set_prompt import SetPrompt

__all__ = ["LlamaCppLLM"]


class LlamaCppLLM(LLM):
    """A GGUF model run by llama.cpp on the CPU, or offloaded to a GPU with ``n_gpu_layers``.

    Args:
        model_path: path of a ``.gguf`` file (:func:`memora.llm.load_model` also takes
            registered names such as ``"default"``).
        name: display name (defaults to the file name).
        n_ctx: context length in tokens.
        n_threads: CPU threads for generation and prompt evaluation (None: llama.cpp's choice).
        n_gpu_layers: layers to offload (-1: all); needs a llama.cpp built with CUDA or Metal.
        n_batch: tokens per decode call for prompt evaluation.
        seed: sampling seed used when a call passes none.
        defaults: sampling options used when a call passes none.
        reuse_prefix: evaluate only what follows the KV prefix shared with the previous call.
            llama.cpp's kernels depend on how many tokens one decode holds, so a warm call can
            differ slightly from a cold one: on the CPU with the bundled model, logits were
            identical for a 5-token prompt and up to 0.66 apart for 34 and 55 tokens (enough to
            change a greedy token), more with GPU layers. Pass False (or call
            :meth:`reset_cache`) for output that does not depend on the previous call.
    """

    supports_logits = True
    supports_sequences = True
    supports_tokenize = True
    supports_raw_json = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        n_batch: int = 512,
        seed: int = 0,
        defaults: SamplingOptions | None = None,
        reuse_prefix: bool = True,
        verbose: bool = False,
    ) -> None:
        path = resolve_gguf(model_path)
        check_gguf(path)
        if n_ctx < 16:
            raise InvalidOptionError(f"n_ctx must be at least 16, got {n_ctx}")
        self.path = path
        self.name = name or default_name(model_path, path)
        self.defaults = defaults or SamplingOptions()
        self._lock = threading.RLock()
        self._model = NativeModel(path, n_gpu_layers=n_gpu_layers, verbose=verbose)
        # With no layers offloaded, keep every operation on the CPU: a CUDA build would
        # otherwise still send large batches to the GPU.
        self._settings = ContextSettings(
            n_ctx=n_ctx, n_batch=min(n_batch, n_ctx), n_threads=n_threads,
            op_offload=n_gpu_layers != 0,
        )  # fmt: skip
        try:
            self._context = NativeContext(self._model, self._settings)
        except BaseException:
            self._model.close()
            raise
        self._cancel: threading.Event | None = None  # see cancel_on
        self._main = KVSequences(self._context, 1)  # sequence 0 of ordinary calls
        self.n_ctx = self._context.n_ctx
        self.n_vocab = self._model.n_vocab
        self.n_batch = self._context.n_batch
        self.n_gpu_layers = n_gpu_layers
        self.reuse_prefix = reuse_prefix
        self._seed = seed
        self._cached: list[int] = []  # tokens whose cells are in sequence 0, in order
        self._template = self._chat_template()
        self._closed = False

    # -- information ---------------------------------------------------------------------

    @property
    def metadata(self) -> dict[str, str]:
        """GGUF metadata (key/value strings)."""
        self._ensure_open()
        return self._model.metadata()

    @property
    def device(self) -> str:
        """Where the weights run: 'cpu', or 'gpu (N layers)' when layers were offloaded."""
        if self.n_gpu_layers != 0 and supports_gpu_offload():
            layers = "all" if self.n_gpu_layers < 0 else str(self.n_gpu_layers)
            return f"gpu ({layers} layers)"
        return "cpu"

    @property
    def eos_token(self) -> int:
        return self._model.eos

    def is_end_of_generation(self, token: int) -> bool:
        return self._model.is_end_of_generation(token)

    # -- tokens --------------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        self._ensure_open()
        return self._model.tokenize(text, add_special=False, parse_special=special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        self._ensure_open()
        return self._model.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens ``prompt`` occupies in the context (for a set prompt: its KV cells)."""
        if isinstance(prompt, SetPrompt):
            return self.set_tokens(prompt).cells
        return len(self.prompt_tokens(prompt))

    def render_chat(self, prompt: Prompt, *, add_generation_prompt: bool = True) -> str:
        """The text the model's chat template makes of ``prompt`` (a string passes through)."""
        if isinstance(prompt, str):
            return prompt
        if isinstance(prompt, SetPrompt):
            raise ConfigError("a SetPrompt is rendered already; see SetPrompt.from_chat")
        if self._template is None:
            raise UnsupportedError(
                f"{self.name} has no chat template in its GGUF metadata "
                "(tokenizer.chat_template); pass a plain string prompt or use a chat model"
            )
        messages = [m.to_dict() for m in as_messages(prompt)]
        return self._template.render(messages, add_generation_prompt=add_generation_prompt)

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        """The exact token ids this backend evaluates for a plain or chat ``prompt``."""
        self._ensure_open()
        if isinstance(prompt, SetPrompt):
            raise ConfigError("a SetPrompt has no single token sequence; use set_tokens()")
        if isinstance(prompt, str):
            # A raw prompt gets the model's BOS (when it uses one) and may contain special tokens.
            return self._model.tokenize(prompt, add_special=True, parse_special=True)
        # The chat template writes BOS itself where the model wants one.
        return self._model.tokenize(self.render_chat(prompt), add_special=False,
                                    parse_special=True)  # fmt: skip

    def set_tokens(self, prompt: SetPrompt) -> SetTokens:
        """The token ids of a set prompt's prefix, items and suffix, each tokenized alone."""
        self._ensure_open()
        prefix = self._model.tokenize(prompt.prefix, add_special=not prompt.rendered,
                                      parse_special=True)  # fmt: skip
        return SetTokens(
            prefix=tuple(prefix),
            items=tuple(tuple(self._piece_tokens(item)) for item in prompt.items),
            suffix=tuple(self._piece_tokens(prompt.suffix)),
        )

    def _piece_tokens(self, text: str) -> list[int]:
        return self._model.tokenize(text, add_special=False, parse_special=True)

    # -- generation ----------------------------------------------------------------------

    def _run(
        self, prompt: Prompt, options: SamplingOptions, schema: dict[str, Any] | None
    ) -> Generator[str, None, Completion]:
        grammar = _grammar(json.dumps(schema, sort_keys=True)) if schema is not None else None
        with self._lock:
            self._ensure_open()
            cached = 0
            if isinstance(prompt, SetPrompt):
                set_tokens = self.set_tokens(prompt)
                check_set(set_tokens, self.n_ctx, options.max_tokens)
                n_prompt = set_tokens.cells
                tokens_out = self._set_generate(set_tokens, options, grammar)
            else:
                tokens = self.prompt_tokens(prompt)
                self.check_fits(len(tokens), options.max_tokens)
                n_prompt, cached = len(tokens), self._reusable_prefix(tokens)
                tokens_out = self._generate(tokens, cached, options, grammar)
            stream = TextStream(self._model, options)
            text, n_completion, finish = yield from stream.run(tokens_out)
        return Completion(
            text=text,
            finish_reason=finish,
            usage=Usage(
                prompt_tokens=n_prompt, completion_tokens=n_completion, cached_tokens=cached
            ),
            model=self.name,
        )

    @contextlib.contextmanager
    def cancel_on(self, event: threading.Event) -> Iterator[None]:
        """Inside this block, a call stops with :class:`~memora.errors.GenerationCancelledError`
        soon after ``event`` is set (from any thread), in prompt evaluation too: llama.cpp checks
        it between the operations of a decode. Prompts are evaluated in the same chunks, so a
        call that is not stopped computes the same, bit for bit."""
        self._cancel = self._main.cancel = event
        self._context.set_abort(event.is_set)
        try:
            yield
        finally:
            self._cancel = self._main.cancel = None
            if not self._closed:
                self._context.set_abort(None)

    def _sampler(self, options: SamplingOptions, grammar: str | None) -> NativeSampler:
        settings = SamplerSettings(
            temperature=options.temperature, top_k=options.top_k, top_p=options.top_p,
            min_p=options.min_p, repeat_penalty=options.repeat_penalty,
            presence_penalty=options.presence_penalty,
            frequency_penalty=options.frequency_penalty,
            seed=options.seed if options.seed is not None else self._seed,
        )  # fmt: skip
        return NativeSampler(self._model, settings, grammar)

    def _generate(
        self, tokens: list[int], keep: int, options: SamplingOptions, grammar: str | None
    ) -> Generator[int, None, None]:
        """Sampled tokens after ``tokens``, of which the first ``keep`` are in the cache."""
        sampler = self._sampler(options, grammar)
        try:
            self._evaluate(tokens, keep)
            while True:
                token = sampler.sample(self._context)
                yield token
                self._decode([token], len(self._cached))
        finally:
            sampler.close()

    def _set_generate(
        self, tokens: SetTokens, options: SamplingOptions, grammar: str | None
    ) -> Generator[int, None, None]:
        """Sampled tokens after a set prompt; every generated token sees every item."""
        with self.sequences(len(tokens.items) + 1) as kv:
            decoded = decode_set(kv, tokens)
            sampler = self._sampler(options, grammar)
            try:
                pos = decoded.next_pos
                while True:
                    token = sampler.sample(self._context)
                    yield token
                    kv.decode([Span([token], pos, seq_ids=(0,), logits=True)])
                    pos += 1
            finally:
                sampler.close()

    def logits(self, prompt: Prompt) -> np.ndarray:
        """Next-token logits after ``prompt`` (float32, ``n_vocab`` long).

        A plain prompt reuses the KV prefix of the previous call; a :class:`SetPrompt` gives
        the same logits, bit for bit, for every order of its items.
        """
        with self._lock:
            self._ensure_open()
            if isinstance(prompt, SetPrompt):
                set_tokens = self.set_tokens(prompt)
                check_set(set_tokens, self.n_ctx, 0)
                with self.sequences(len(set_tokens.items) + 1) as kv:
                    logits = decode_set(kv, set_tokens).suffix_logits
                assert logits is not None
                return logits
            tokens = self.prompt_tokens(prompt)
            self.check_fits(len(tokens), 0)
            self._evaluate(tokens, self._reusable_prefix(tokens))
            return self._context.logits(-1)

    def continuation_logprobs(
        self, prompt: Prompt, continuations: Sequence[str]
    ) -> list[np.ndarray]:
        """Log-probability of every token of each continuation given ``prompt``.

        All continuations are scored in one pass: the prompt is decoded once and the
        continuations as parallel items, so each result is the same, bit for bit, whatever the
        order of ``continuations``.
        """
        if isinstance(prompt, SetPrompt):
            raise ConfigError("continuation_logprobs takes a plain or chat prompt as context")
        with self._lock:
            self._ensure_open()
            tokens = SetTokens(
                prefix=tuple(self.prompt_tokens(prompt)),
                items=tuple(tuple(self._piece_tokens(c)) for c in continuations),
                suffix=(),
            )
            if not tokens.items or any(not item for item in tokens.items):
                raise ConfigError("pass at least one continuation, none of them empty")
            check_set(tokens, self.n_ctx, 0)
            with self.sequences(len(tokens.items) + 1) as kv:
                decoded = decode_set(kv, tokens, item_logits=True)
            return continuation_logprobs(decoded, tokens)

    # -- the KV cache --------------------------------------------------------------------

    @contextlib.contextmanager
    def sequences(self, n_seq: int) -> Iterator[KVSequences]:
        """Exclusive access to a unified KV cache with ``n_seq`` sequences (ids 0..n_seq-1).

        The cache is empty on entry and cleared on exit, so the prefix cache of ordinary calls
        starts over afterwards. The context is rebuilt once when more sequences are asked for
        than it was made with.
        """
        if n_seq < 1:
            raise InvalidOptionError(f"n_seq must be >= 1, got {n_seq}")
        with self._lock:
            self._ensure_open()
            self._ensure_seq_capacity(n_seq)
            self._reset_cache()
            kv = KVSequences(self._context, n_seq, cancel=self._cancel)
            try:
                yield kv
            finally:
                kv.close()
                self._reset_cache()

    def reset_cache(self) -> None:
        """Forget the KV cache: the next call evaluates its whole prompt."""
        with self._lock:
            self._ensure_open()
            self._reset_cache()

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._main.close()
                self._context.close()
                self._model.close()

    # -- internals -----------------------------------------------------------------------

    def _ensure_open(self) -> None:
        # Native calls on a freed model crash the process; fail in Python instead.
        if self._closed:
            raise ClosedError(f"{self.name} was closed; load the model again")

    def _reusable_prefix(self, tokens: Sequence[int]) -> int:
        """Tokens of ``tokens`` whose KV cells are already in sequence 0 (at least one token is
        always evaluated again, to produce fresh logits)."""
        if not self.reuse_prefix:
            self._reset_cache()
        same = 0
        for a, b in zip(self._cached, tokens, strict=False):
            if a != b:
                break
            same += 1
        return min(same, len(tokens) - 1)

    def _evaluate(self, tokens: Sequence[int], keep: int) -> None:
        """Make sequence 0 hold exactly ``tokens``, reusing its first ``keep`` cells; the
        logits after the last token are then available (row -1)."""
        self._context.remove(0, keep, -1)  # also cells of a decode stopped by cancel_on
        self._cached = list(tokens[:keep])
        self._decode(tokens[keep:], keep)

    def _decode(self, tokens: Sequence[int], start: int) -> None:
        """Decode ``tokens`` into sequence 0 from position ``start`` (logits after the last)."""
        for offset in range(0, len(tokens), self.n_batch):
            chunk = list(tokens[offset : offset + self.n_batch])
            last = offset + len(chunk) == len(tokens)
            self._main.decode([Span(chunk, start + offset, seq_ids=(0,), logits=last)])
            self._cached.extend(chunk)

    def _reset_cache(self) -> None:
        self._context.clear()
        self._cached = []

    def _ensure_seq_capacity(self, n_seq: int) -> None:
        if n_seq <= self._context.settings.n_seq_max:
            return
        limit = max_parallel_sequences()
        if n_seq > limit:
            raise InvalidOptionError(
                f"llama.cpp allows at most {limit} parallel sequences, {n_seq} were asked for"
            )
        old, old_main = self._context, self._main
        self._context = NativeContext(self._model, replace(old.settings, n_seq_max=n_seq))
        if self._cancel is not None:
            self._context.set_abort(self._cancel.is_set)
        self._main = KVSequences(self._context, 1, cancel=self._cancel)
        self._cached = []
        old_main.close()
        old.close()

    def _chat_template(self) -> ChatTemplate | None:
        template = self._model.metadata().get("tokenizer.chat_template")
        if not template:
            return None
        return ChatTemplate(
            template,
            self._model.token_text(self._model.bos),
            self._model.token_text(self._model.eos),
        )


@lru_cache(maxsize=64)
def _grammar(schema_json: str) -> str:
    return gbnf_from_schema(schema_json)

"""Local GGUF models through llama.cpp: :class:`LlamaCppLLM`, over the native layer.

:class:`LlamaCppLLM` owns one model and one context and frees them deterministically
(``close()`` or a ``with`` block). Calls on one instance are serialized by its lock: llama.cpp
contexts are not thread-safe.

Prefix reuse: the context keeps the KV cells of the tokens each cache slot evaluated last
(:mod:`memora.llm.llamacpp.slots`); a call evaluates only what follows the longest prefix it
shares with any slot (``Completion.usage.cached_tokens``).

Multi-sequence decoding (:meth:`LlamaCppLLM.sequences`) exposes a unified KV cache with explicit
positions and sequence copies, the mechanism behind set-based prompting and KV memory banks.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
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
    ContextSettings,
    NativeContext,
    NativeModel,
    NativeSampler,
    SamplerSettings,
    gbnf_from_schema,
    max_parallel_sequences,
    supports_gpu_offload,
)
from memora.llm.llamacpp.slots import DEFAULT_SLOTS, Slot, SlotCache
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
        reuse_prefix: evaluate only what follows the KV prefix shared with an earlier call, in
            up to 4 KV cache slots (a number: that many; ``cache_slot=`` names one per call,
            the least recently used gives way when more are named). llama.cpp's kernels
            depend on how many tokens one decode holds, so a warm call can differ slightly
            from a cold one: on the CPU with the bundled model, logits were identical for a
            5-token prompt and up to 0.66 apart for 34 and 55 tokens (enough to change a greedy
            token), more with GPU layers. Pass False (or call :meth:`reset_cache`) for output
            that does not depend on the previous call.
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
        reuse_prefix: bool | int = True,
        verbose: bool = False,
    ) -> None:
        path = resolve_gguf(model_path)
        check_gguf(path)
        if n_ctx < 16:
            raise InvalidOptionError(f"n_ctx must be at least 16, got {n_ctx}")
        n_slots = DEFAULT_SLOTS if isinstance(reuse_prefix, bool) else reuse_prefix
        if not 1 <= n_slots <= 64:
            raise InvalidOptionError(f"reuse_prefix: 1 to 64 cache slots, got {n_slots}")
        self.path = path
        self.name = name or default_name(model_path, path)
        self.defaults = defaults or SamplingOptions()
        self._lock = threading.RLock()
        self._model = NativeModel(path, n_gpu_layers=n_gpu_layers, verbose=verbose)
        # With no layers offloaded, keep every operation on the CPU: a CUDA build would
        # otherwise still send large batches to the GPU.
        self._settings = ContextSettings(
            n_ctx=n_ctx, n_batch=min(n_batch, n_ctx), n_threads=n_threads,
            op_offload=n_gpu_layers != 0, n_seq_max=n_slots + 4,  # 4: a choice among 3
        )  # fmt: skip
        try:
            self._context = NativeContext(self._model, self._settings)
        except BaseException:
            self._model.close()
            raise
        self._cancel: threading.Event | None = None  # see cancel_on
        self._slots = SlotCache(self._context, n_slots)  # sequences 0..n_slots-1
        self._main = self._slot_sequences()
        self.n_ctx = self._context.n_ctx
        self.n_vocab = self._model.n_vocab
        self.n_batch = self._context.n_batch
        self.n_gpu_layers = n_gpu_layers
        self.reuse_prefix = reuse_prefix is not False
        self._seed = seed
        self._template = self._model.chat_template()
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
        grammar = None if schema is None else gbnf_from_schema(json.dumps(schema, sort_keys=True))
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
                slot = self._slots.take(options.cache_slot)
                n_prompt, cached = len(tokens), self._reusable_prefix(slot, tokens)
                tokens_out = self._generate(slot, tokens, cached, options, grammar)
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
        self, slot: Slot, tokens: list[int], keep: int, options: SamplingOptions,
        grammar: str | None,
    ) -> Generator[int, None, None]:  # fmt: skip
        """Sampled tokens after ``tokens``, of which the first ``keep`` are in ``slot``."""
        sampler = self._sampler(options, grammar)
        try:
            self._evaluate(slot, tokens, keep)
            while True:
                token = sampler.sample(self._context)
                yield token
                self._decode(slot, [token], len(slot.tokens))
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
            slot = self._slots.take(None)
            self._evaluate(slot, tokens, self._reusable_prefix(slot, tokens))
            return self._context.logits(-1)

    def continuation_logprobs(
        self, prompt: Prompt, continuations: Sequence[str], *, keep_slots: bool = False
    ) -> list[np.ndarray]:
        """Log-probability of every token of each continuation given ``prompt``.

        All continuations are scored in one pass: the prompt is decoded once and the
        continuations as parallel items, so each result is the same, bit for bit, whatever the
        order of ``continuations``. ``keep_slots``: see :meth:`sequences`.
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
            with self.sequences(len(tokens.items) + 1, keep_slots=keep_slots) as kv:
                decoded = decode_set(kv, tokens, item_logits=True)
            return continuation_logprobs(decoded, tokens)

    # -- the KV cache --------------------------------------------------------------------

    @contextlib.contextmanager
    def sequences(self, n_seq: int, *, keep_slots: bool = False) -> Iterator[KVSequences]:
        """Exclusive access to ``n_seq`` empty sequences (ids 0..n_seq-1) of the unified KV
        cache, emptied again on exit.

        By default the whole cache is cleared on entry and exit: the block computes exactly
        what it would on a fresh model, and ordinary calls start over afterwards. With
        ``keep_slots`` the cache slots of ordinary calls keep their cells beside the block
        (giving way, least recently used first, when the cache runs out of room): faster for
        a side call between prompts that share a prefix, but where cells land in the cache
        changes floating-point rounding, so logits may differ slightly from a fresh model's
        (the same cache state gives the same result). The context is rebuilt once when more
        sequences are asked for than it was made with.
        """
        if n_seq < 1:
            raise InvalidOptionError(f"n_seq must be >= 1, got {n_seq}")
        with self._lock:
            self._ensure_open()
            base = len(self._slots)
            if not keep_slots or base + n_seq > max_parallel_sequences():
                base = 0
                self._slots.clear()
            self._ensure_seq_capacity(base + n_seq)
            self._slots.active = None
            self._slots.drop(range(base, base + n_seq))
            kv = KVSequences(self._context, n_seq, cancel=self._cancel, base=base,
                             make_room=self._slots.make_room)  # fmt: skip
            try:
                yield kv
            finally:
                kv.close()
                if base:
                    self._slots.drop(range(base, base + n_seq))
                else:
                    self._slots.clear()

    def reset_cache(self) -> None:
        """Forget the KV cache: the next call evaluates its whole prompt."""
        with self._lock:
            self._ensure_open()
            self._slots.clear()

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

    def _reusable_prefix(self, slot: Slot, tokens: Sequence[int]) -> int:
        """Tokens of ``tokens`` whose KV cells ``slot`` holds (see :meth:`SlotCache.reuse`)."""
        if not self.reuse_prefix:
            self._slots.clear()
        return self._slots.reuse(slot, tokens)

    def _evaluate(self, slot: Slot, tokens: Sequence[int], keep: int) -> None:
        """Make ``slot`` hold exactly ``tokens``, reusing its first ``keep`` cells; the logits
        after the last token are then available (row -1)."""
        self._slots.truncate(slot, keep)
        self._slots.active = slot
        self._decode(slot, tokens[keep:], keep)

    def _decode(self, slot: Slot, tokens: Sequence[int], start: int) -> None:
        """Decode ``tokens`` into ``slot`` from position ``start`` (logits after the last)."""
        for offset in range(0, len(tokens), self.n_batch):
            chunk = list(tokens[offset : offset + self.n_batch])
            last = offset + len(chunk) == len(tokens)
            self._main.decode([Span(chunk, start + offset, seq_ids=(slot.seq,), logits=last)])
            slot.tokens.extend(chunk)

    def _slot_sequences(self) -> KVSequences:
        return KVSequences(self._context, len(self._slots), cancel=self._cancel,
                           make_room=self._slots.make_room)  # fmt: skip

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
        self._slots.context = self._context
        self._slots.table.forget()
        self._main = self._slot_sequences()
        old_main.close()
        old.close()

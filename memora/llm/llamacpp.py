"""Local GGUF models through llama.cpp (llama-cpp-python). The only module that imports llama_cpp.

:class:`LlamaCppLLM` owns one model and one context and frees them deterministically
(``close()`` or a ``with`` block). Calls on one instance are serialized by a lock: llama.cpp
contexts are not thread-safe.

Prefix reuse: llama.cpp keeps the KV cells of the tokens it evaluated last; a call whose prompt
starts with the same tokens evaluates only the rest (``Completion.usage.cached_tokens``).

Multi-sequence decoding (:meth:`LlamaCppLLM.sequences`) exposes a unified KV cache with explicit
positions and sequence copies, the mechanism behind set-based prompting and KV memory banks.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import json
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from memora.errors import (
    ConfigError,
    ContextOverflowError,
    InvalidOptionError,
    InvalidSchemaError,
    ModelLoadError,
    UnsupportedError,
    missing_extra,
)
from memora.llm import registry
from memora.llm.base import LLM, Completion, FinishReason, Prompt, Usage, as_messages
from memora.llm.options import SamplingOptions
from memora.prompting.kv_set import (
    SetTokens,
    check_set,
    continuation_logprobs,
    decode_set,
)
from memora.prompting.set_prompt import SetPrompt

try:
    import llama_cpp
    from llama_cpp import _internals as llama_internals
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("llama-cpp-python", "local") from exc

__all__ = ["KVSequences", "LlamaCppLLM", "Span"]


class LlamaCppLLM(LLM):
    """A GGUF model run by llama.cpp on the CPU, or offloaded to a GPU with ``n_gpu_layers``.

    Args:
        model_path: path of a ``.gguf`` file, or a registered name (``"default"``).
        name: display name (defaults to the file name).
        n_ctx: context length in tokens.
        n_threads: CPU threads for generation and prompt evaluation (None: llama.cpp's choice).
        n_gpu_layers: layers to offload (-1: all); needs a llama.cpp built with CUDA or Metal.
        n_batch: tokens per decode call for prompt evaluation.
        seed: sampling seed used when a call passes none.
        defaults: sampling options used when a call passes none.
        reuse_prefix: evaluate only what follows the KV prefix shared with the previous call.
            On the CPU the result is the same bit for bit either way; with GPU layers the GPU
            kernels depend on how tokens are batched, so a warm call can differ slightly from a
            cold one (and greedy text can change): pass False for reproducible output there.
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
        path = Path(model_path).expanduser()
        if not path.is_file() and not registry.looks_like_path(str(model_path)):
            path = registry.model_path(str(model_path))  # a name such as "default"
            name = name or registry.canonical_name(str(model_path))
        registry.check_gguf(path)
        if n_ctx < 16:
            raise InvalidOptionError(f"n_ctx must be at least 16, got {n_ctx}")
        self.path = path
        self.name = name or path.stem
        self.defaults = defaults or SamplingOptions()
        self._lock = threading.RLock()
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=min(n_batch, n_ctx),
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=n_gpu_layers,
                # With no layers offloaded, keep every operation on the CPU: a CUDA build would
                # otherwise still send large batches to the GPU.
                op_offload=n_gpu_layers != 0,
                seed=seed,
                verbose=verbose,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(
                f"llama.cpp could not load {path}: {exc}. The file may be truncated or corrupt, "
                "or made for a newer llama.cpp; download it again or check its checksum"
            ) from exc
        self.n_ctx = self._llama.n_ctx()
        self.n_vocab = self._llama.n_vocab()
        self.n_batch = self._llama.n_batch
        self.n_gpu_layers = n_gpu_layers
        self.reuse_prefix = reuse_prefix
        self._seed = seed
        self._n_seq_max = 1
        self._formatter = self._chat_formatter()
        self._closed = False

    # -- information ---------------------------------------------------------------------

    @property
    def metadata(self) -> dict[str, str]:
        """GGUF metadata (key/value strings)."""
        return dict(self._llama.metadata)

    @property
    def device(self) -> str:
        """Where the weights run: 'cpu', or 'gpu (N layers)' when layers were offloaded."""
        if self.n_gpu_layers != 0 and llama_cpp.llama_supports_gpu_offload():
            layers = "all" if self.n_gpu_layers < 0 else str(self.n_gpu_layers)
            return f"gpu ({layers} layers)"
        return "cpu"

    @property
    def eos_token(self) -> int:
        return int(self._llama.token_eos())

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._llama._model.vocab, token))

    # -- tokens --------------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        self._ensure_open()
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def detokenize(self, tokens: Sequence[int]) -> str:
        self._ensure_open()
        data: bytes = self._llama.detokenize(list(tokens))
        return data.decode("utf-8", errors="replace")

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
        formatter = self._formatter
        if formatter is None:
            raise UnsupportedError(
                f"{self.name} has no chat template in its GGUF metadata "
                "(tokenizer.chat_template); pass a plain string prompt or use a chat model"
            )
        if not add_generation_prompt:
            formatter = Jinja2ChatFormatter(
                template=formatter.template,
                eos_token=formatter.eos_token,
                bos_token=formatter.bos_token,
                add_generation_prompt=False,
            )
        messages: Any = [m.to_dict() for m in as_messages(prompt)]
        rendered: str = formatter(messages=messages).prompt
        return rendered

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        """The exact token ids this backend evaluates for a plain or chat ``prompt``."""
        self._ensure_open()
        if isinstance(prompt, SetPrompt):
            raise ConfigError("a SetPrompt has no single token sequence; use set_tokens()")
        if isinstance(prompt, str):
            # A raw prompt gets the model's BOS (when it uses one) and may contain special tokens.
            return list(self._llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
        # The chat template writes BOS itself where the model wants one.
        return list(
            self._llama.tokenize(
                self.render_chat(prompt).encode("utf-8"), add_bos=False, special=True
            )
        )

    # -- generation ----------------------------------------------------------------------

    def _run(
        self, prompt: Prompt, options: SamplingOptions, schema: dict[str, Any] | None
    ) -> Generator[str, None, Completion]:
        grammar = _grammar(json.dumps(schema, sort_keys=True)) if schema is not None else None
        with self._lock:
            self._ensure_open()
            self._llama.set_seed(options.seed if options.seed is not None else self._seed)
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
                tokens_out = self._llama.generate(tokens, grammar=grammar, **_sampler_args(options))
            text, n_completion, finish = yield from self._stream_text(tokens_out, options)
        return Completion(
            text=text,
            finish_reason=finish,
            usage=Usage(
                prompt_tokens=n_prompt, completion_tokens=n_completion, cached_tokens=cached
            ),
            model=self.name,
        )

    def _stream_text(
        self, tokens_out: Generator[int, Any, None], options: SamplingOptions
    ) -> Generator[str, None, tuple[str, int, FinishReason]]:
        """Turn sampled tokens into text pieces: UTF-8 decoded incrementally, stop strings
        honoured, at most ``max_tokens`` tokens. Returns (text, tokens, finish reason)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = _StopMatcher(options.stop)
        generated: list[str] = []
        n_completion = 0
        finish: FinishReason = "length"
        try:
            for token in tokens_out:
                if self.is_end_of_generation(token):
                    finish = "stop"
                    break
                n_completion += 1
                piece, stopped = stops.feed(decoder.decode(self._llama._model.detokenize([token])))
                if piece:
                    generated.append(piece)
                    yield piece
                if stopped:
                    finish = "stop"
                    break
                if n_completion >= options.max_tokens:
                    break
        finally:
            tokens_out.close()
        if not stops.stopped:
            tail = stops.flush(decoder.decode(b"", final=True))
            if tail:
                generated.append(tail)
                yield tail
        return "".join(generated), n_completion, finish

    def _set_generate(
        self, tokens: SetTokens, options: SamplingOptions, grammar: Any
    ) -> Generator[int, Any, None]:
        """Sampled tokens after a set prompt; every generated token sees every item."""
        with self.sequences(len(tokens.items) + 1) as kv:
            decoded = decode_set(kv, tokens)
            sampler = self._llama._init_sampler(grammar=grammar, **_sampler_args(options))
            pos = decoded.next_pos
            while True:
                token = int(sampler.sample(self._llama._ctx, -1))
                yield token
                kv.decode([Span([token], pos, seq_ids=(0,), logits=True)])
                pos += 1

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
            keep = self._reusable_prefix(tokens)
            llama = self._llama
            llama._ctx.kv_cache_seq_rm(0, keep, -1)
            llama.n_tokens = keep
            llama.eval(tokens[keep:])
            return _logits_row(llama._ctx.ctx, -1, self.n_vocab)

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
                items=tuple(tuple(self._tokenize_piece(c)) for c in continuations),
                suffix=(),
            )
            if not tokens.items or any(not item for item in tokens.items):
                raise ConfigError("pass at least one continuation, none of them empty")
            check_set(tokens, self.n_ctx, 0)
            with self.sequences(len(tokens.items) + 1) as kv:
                decoded = decode_set(kv, tokens, item_logits=True)
            return continuation_logprobs(decoded, tokens)

    def set_tokens(self, prompt: SetPrompt) -> SetTokens:
        """The token ids of a set prompt's prefix, items and suffix, each tokenized alone."""
        self._ensure_open()
        prefix = self._llama.tokenize(
            prompt.prefix.encode("utf-8"), add_bos=not prompt.rendered, special=True
        )
        return SetTokens(
            prefix=tuple(prefix),
            items=tuple(tuple(self._tokenize_piece(item)) for item in prompt.items),
            suffix=tuple(self._tokenize_piece(prompt.suffix)),
        )

    def _tokenize_piece(self, text: str) -> list[int]:
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    # -- multi-sequence decoding ---------------------------------------------------------

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
            kv = KVSequences(self, n_seq)
            try:
                yield kv
            finally:
                kv._close()
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
                self._llama.close()

    # -- internals -----------------------------------------------------------------------

    def _ensure_open(self) -> None:
        # Native calls on a freed model crash the process; fail in Python instead.
        if self._closed:
            raise ConfigError(f"{self.name} was closed; load the model again")

    def _reusable_prefix(self, tokens: Sequence[int]) -> int:
        """Tokens of ``tokens`` whose KV cells are already in sequence 0 (at least one token is
        always evaluated again, to produce fresh logits)."""
        llama = self._llama
        if not self.reuse_prefix:
            self._reset_cache()
        if llama.n_tokens == 0:
            return 0
        prefix = int(llama_cpp.Llama.longest_token_prefix(llama._input_ids.tolist(), tokens))
        return min(prefix, len(tokens) - 1)

    def _reset_cache(self) -> None:
        # Metadata only: the cells' data is overwritten by the next decode (clearing the data
        # too would memset the whole KV buffer on every set prompt).
        llama_cpp.llama_memory_clear(self._llama._ctx.memory, False)
        self._llama.n_tokens = 0
        self._llama._requires_eval = True

    def _ensure_seq_capacity(self, n_seq: int) -> None:
        if n_seq <= self._n_seq_max:
            return
        limit = int(llama_cpp.llama_max_parallel_sequences())
        if n_seq > limit:
            raise InvalidOptionError(
                f"llama.cpp allows at most {limit} parallel sequences, {n_seq} were asked for"
            )
        llama = self._llama
        params = llama.context_params
        params.n_seq_max = n_seq
        params.kv_unified = True
        new_ctx = llama_internals.LlamaContext(model=llama._model, params=params, verbose=False)
        old_ctx, llama._ctx = llama._ctx, new_ctx
        old_ctx.close()
        self._n_seq_max = n_seq

    def _chat_formatter(self) -> Jinja2ChatFormatter | None:
        template = self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        model = self._llama._model

        def token_text(token: int) -> str:
            return "" if token == -1 else str(model.token_get_text(token))

        return Jinja2ChatFormatter(
            template=template,
            eos_token=token_text(self._llama.token_eos()),
            bos_token=token_text(self._llama.token_bos()),
        )


@dataclass(frozen=True)
class Span:
    """Tokens to decode into the KV cache.

    The tokens take positions ``pos, pos+1, ...`` in every sequence of ``seq_ids``. With
    ``logits=True`` the next-token logits after the span's last token are returned (shape
    ``(n_vocab,)``); with ``logits="all"``, those after every token (``(len, n_vocab)``).
    """

    tokens: Sequence[int]
    pos: int
    seq_ids: tuple[int, ...] = (0,)
    logits: bool | Literal["all"] = False


class KVSequences:
    """Low-level decoding into a unified KV cache; get one from :meth:`LlamaCppLLM.sequences`.

    A token attends to the cells that share its sequence id and whose position is not after its
    own. Positions inside each sequence must stay consecutive.
    """

    def __init__(self, llm: LlamaCppLLM, n_seq: int) -> None:
        self._llm = llm
        self.n_seq = n_seq
        self.n_ctx = llm.n_ctx
        self.n_batch = llm.n_batch
        self.n_vocab = llm.n_vocab
        self.decode_calls = 0
        self._batch: Any = llama_internals.LlamaBatch(
            n_tokens=llm.n_batch, embd=0, n_seq_max=n_seq, verbose=False
        )

    def decode(self, spans: Sequence[Span]) -> list[np.ndarray | None]:
        """Decode ``spans`` in order, packing them into as few decode calls as ``n_batch`` allows.

        Returns, for each span, its last-token logits (when asked for) or None.
        """
        for span in spans:
            if not span.tokens:
                raise ConfigError("a span needs at least one token")
            bad = [s for s in span.seq_ids if not 0 <= s < self.n_seq]
            if bad or not span.seq_ids:
                raise InvalidOptionError(
                    f"sequence ids must lie in 0..{self.n_seq - 1}, got {span.seq_ids}"
                )
            if span.pos < 0 or span.pos + len(span.tokens) > self.n_ctx:
                raise ContextOverflowError(
                    f"span at positions {span.pos}..{span.pos + len(span.tokens) - 1} does not "
                    f"fit the context of {self.n_ctx} tokens; load the model with a larger n_ctx",
                    prompt_tokens=span.pos + len(span.tokens),
                    max_tokens=0,
                    n_ctx=self.n_ctx,
                )
        rows: list[list[np.ndarray]] = [[] for _ in spans]
        pending: list[tuple[int, int]] = []  # (span index, row in the batch) wanting logits
        batch = self._batch.batch
        fill = 0
        for index, span in enumerate(spans):
            for offset, token in enumerate(span.tokens):
                if fill == self.n_batch:
                    self._flush(fill, pending, rows)
                    fill = 0
                    pending = []
                batch.token[fill] = token
                batch.pos[fill] = span.pos + offset
                batch.n_seq_id[fill] = len(span.seq_ids)
                for k, seq in enumerate(span.seq_ids):
                    batch.seq_id[fill][k] = seq
                wanted = span.logits == "all" or (
                    span.logits is True and offset == len(span.tokens) - 1
                )
                batch.logits[fill] = wanted
                if wanted:
                    pending.append((index, fill))
                fill += 1
        if fill:
            self._flush(fill, pending, rows)
        results: list[np.ndarray | None] = []
        for span, got in zip(spans, rows, strict=True):
            if span.logits == "all":
                results.append(np.stack(got))
            else:
                results.append(got[0] if got else None)
        return results

    def copy(self, src: int, dst: int, p0: int = 0, p1: int = -1) -> None:
        """Give the cells of ``src`` at positions [p0, p1) also to ``dst`` (p1=-1: to the end).
        In a unified cache this copies metadata only."""
        self._llm._llama._ctx.kv_cache_seq_cp(src, dst, p0, p1)

    def remove(self, seq: int, p0: int = 0, p1: int = -1) -> None:
        """Drop ``seq``'s cells at positions [p0, p1) (p1=-1: to the end)."""
        if not llama_cpp.llama_memory_seq_rm(self._llm._llama._ctx.memory, seq, p0, p1):
            raise UnsupportedError("this model's memory cannot remove a partial sequence")

    def _flush(
        self, fill: int, pending: list[tuple[int, int]], rows: list[list[np.ndarray]]
    ) -> None:
        self._batch.batch.n_tokens = fill
        ctx = self._llm._llama._ctx
        status = llama_cpp.llama_decode(ctx.ctx, self._batch.batch)
        if status != 0:
            raise ContextOverflowError(
                f"llama_decode returned {status}: no room in the KV cache for {fill} tokens. "
                "Fix: remove sequences you no longer need or load with a larger n_ctx",
                prompt_tokens=fill,
                max_tokens=0,
                n_ctx=self.n_ctx,
            )
        self.decode_calls += 1
        for index, row in pending:
            rows[index].append(_logits_row(ctx.ctx, row, self.n_vocab))

    def _close(self) -> None:
        self._batch.close()


def _sampler_args(options: SamplingOptions) -> dict[str, Any]:
    return {
        "top_k": options.top_k,
        "top_p": options.top_p,
        "min_p": options.min_p,
        "temp": options.temperature,
        "repeat_penalty": options.repeat_penalty,
        "presence_penalty": options.presence_penalty,
        "frequency_penalty": options.frequency_penalty,
    }


class _StopMatcher:
    """Streams text while watching for stop strings: text that could still become the start of
    a stop string is held back until it cannot."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        """Add ``text``; return what can be emitted and whether a stop string was reached."""
        if not self.stops:
            return text, False
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending, self.stopped = self.pending[: min(hits)], "", True
            return out, True
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:k]):
                    hold = max(hold, k)
                    break
        cut = len(self.pending) - hold
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def flush(self, text: str) -> str:
        out, self.pending = self.pending + text, ""
        return out


def _logits_row(ctx: Any, row: int, n_vocab: int) -> np.ndarray:
    pointer = llama_cpp.llama_get_logits_ith(ctx, row)
    if not pointer:
        raise RuntimeError(f"llama.cpp has no logits for output row {row}")
    array = np.ctypeslib.as_array(
        ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,)
    )
    return np.array(array, dtype=np.float32, copy=True)


@lru_cache(maxsize=64)
def _grammar(schema_json: str) -> Any:
    try:
        return llama_cpp.LlamaGrammar.from_json_schema(schema_json, verbose=False)
    except (ValueError, RuntimeError, KeyError, TypeError, NotImplementedError) as exc:
        raise InvalidSchemaError(
            f"llama.cpp cannot turn this JSON schema into a grammar: {exc}. Fix: use the "
            "supported subset (types, properties, required, enum, items, min/maxLength, "
            "min/maxItems)"
        ) from exc

"""The native layer of the llama.cpp backend: the only module that imports ``llama_cpp``.

It uses llama-cpp-python's ctypes bindings of ``llama.h`` (the C functions and structs) and
nothing of its high-level ``Llama`` class, so no private attribute of another library is read
or written. Each class owns one native handle and frees it in ``close()`` (idempotent);
nothing above this module sees a pointer.

- :class:`NativeModel`: a loaded GGUF file (``llama_model``) and its vocabulary.
- :class:`NativeContext`: a context over a model (``llama_context``): decoding, logits and the
  KV memory's sequence operations.
- :class:`NativeBatch`: a ``llama_batch`` to fill with tokens, positions and sequence ids.
- :class:`NativeSampler`: a sampler chain (penalties, grammar, top-k/p, min-p, temperature).
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from memora.errors import InvalidSchemaError, ModelLoadError, missing_extra

try:
    import llama_cpp
    from llama_cpp import llama_grammar
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("llama-cpp-python", "local") from exc

__all__ = [
    "ChatTemplate",
    "ContextSettings",
    "NativeBatch",
    "NativeContext",
    "NativeModel",
    "NativeSampler",
    "SamplerSettings",
    "gbnf_from_schema",
    "library_version",
    "max_parallel_sequences",
    "supports_gpu_offload",
]

#: Tokens the repetition penalties look back on (llama-cpp-python's default).
PENALTY_LAST_N = 64

_init_lock = threading.Lock()
_initialized = False
_verbose = False


def _write_log(level: int, text: bytes, user_data: Any) -> None:
    if _verbose:
        sys.stderr.write(text.decode("utf-8", errors="replace"))


_log: Any = llama_cpp.llama_log_callback(_write_log)  # kept alive: llama.cpp holds the pointer


def _backend(verbose: bool) -> None:
    """Initialize llama.cpp once per process; its log goes to stderr only when verbose."""
    global _initialized, _verbose
    with _init_lock:
        _verbose = _verbose or verbose
        if not _initialized:
            llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _initialized = True


def library_version() -> str:
    return str(llama_cpp.__version__)


def supports_gpu_offload() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def max_parallel_sequences() -> int:
    return int(llama_cpp.llama_max_parallel_sequences())


def _set(params: Any, field: str, value: Any) -> None:
    """Set a params struct field where this build of llama.cpp has it."""
    if any(name == field for name, *_ in type(params)._fields_):
        setattr(params, field, value)


class NativeModel:
    """A GGUF model loaded by llama.cpp, with its vocabulary. Free it with :meth:`close`."""

    def __init__(self, path: Path, *, n_gpu_layers: int = 0, verbose: bool = False) -> None:
        _backend(verbose)
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0x7FFFFFFF if n_gpu_layers < 0 else n_gpu_layers
        handle = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not handle:
            raise ModelLoadError(
                f"llama.cpp could not load {path}. The file may be truncated or corrupt, or "
                "made for a newer llama.cpp; download it again or check its checksum"
            )
        self.handle: Any = handle
        self.vocab: Any = llama_cpp.llama_model_get_vocab(handle)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(handle))
        self.bos = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.eos = int(llama_cpp.llama_vocab_eos(self.vocab))

    def close(self) -> None:
        if self.handle is not None:
            llama_cpp.llama_model_free(self.handle)
            self.handle = None

    def metadata(self) -> dict[str, str]:
        """GGUF metadata as strings."""
        out = {}
        for i in range(int(llama_cpp.llama_model_meta_count(self.handle))):
            key = _string(lambda buf, n, i=i: llama_cpp.llama_model_meta_key_by_index(
                self.handle, i, buf, n))  # fmt: skip
            out[key] = _string(lambda buf, n, i=i: llama_cpp.llama_model_meta_val_str_by_index(
                self.handle, i, buf, n))  # fmt: skip
        return out

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 8
        while True:
            buf = (llama_cpp.llama_token * size)()
            n = int(llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, size,
                                             add_special, parse_special))  # fmt: skip
            if n >= 0:
                return list(buf[:n])
            size = -n

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token (a piece of a UTF-8 character for some tokens)."""
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = int(llama_cpp.llama_token_to_piece(self.vocab, token, buf, size, 0, special))
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        out = b"".join(self.piece(t) for t in tokens)
        if tokens and tokens[0] == self.bos and out.startswith(b" "):
            return out[1:]  # the space SentencePiece models put before the first word
        return out

    def token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(llama_cpp.llama_vocab_get_text(self.vocab, token)).decode("utf-8", "replace")

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def chat_template(self) -> ChatTemplate | None:
        """The chat template of the GGUF metadata (None: the file has none)."""
        template = self.metadata().get("tokenizer.chat_template")
        if not template:
            return None
        return ChatTemplate(template, self.token_text(self.bos), self.token_text(self.eos))


@dataclass(frozen=True)
class ContextSettings:
    n_ctx: int
    n_batch: int
    n_seq_max: int = 1
    n_threads: int | None = None
    op_offload: bool = False


class NativeContext:
    """A llama.cpp context over ``model``: a unified KV cache of ``n_seq_max`` sequences."""

    def __init__(self, model: NativeModel, settings: ContextSettings) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = settings.n_ctx
        params.n_batch = settings.n_batch
        params.n_ubatch = min(settings.n_batch, 512)
        params.n_seq_max = settings.n_seq_max
        if settings.n_threads is not None:
            params.n_threads = params.n_threads_batch = settings.n_threads
        _set(params, "flash_attn_type", getattr(llama_cpp, "LLAMA_FLASH_ATTN_TYPE_DISABLED", 0))
        _set(params, "flash_attn", False)
        _set(params, "op_offload", settings.op_offload)
        _set(params, "kv_unified", settings.n_seq_max > 1)
        handle = llama_cpp.llama_init_from_model(model.handle, params)
        if not handle:
            raise ModelLoadError(
                f"llama.cpp could not make a context of {settings.n_ctx} tokens; try a smaller "
                "n_ctx (memory) or fewer GPU layers"
            )
        self.handle: Any = handle
        self.settings = settings
        self.n_ctx = int(llama_cpp.llama_n_ctx(handle))
        self.n_batch = int(llama_cpp.llama_n_batch(handle))
        self.n_vocab = model.n_vocab
        self._memory: Any = llama_cpp.llama_get_memory(handle)
        self._abort: Any = None  # the installed abort callback, kept alive while installed

    def set_abort(self, check: Callable[[], bool] | None) -> None:
        """Have ``llama_decode`` stop early (returning 2) once ``check()`` is true: llama.cpp
        asks between the operations of a decode, so even a long prompt stops within
        milliseconds, and a decode that is not stopped computes exactly what it would without
        the check. None removes it."""
        if check is None:
            callback = llama_cpp.ggml_abort_callback()  # NULL: no check
        else:
            callback = llama_cpp.ggml_abort_callback(lambda _data: bool(check()))
        llama_cpp.llama_set_abort_callback(self.handle, callback, None)
        self._abort = None if check is None else callback

    def close(self) -> None:
        if self.handle is not None:
            llama_cpp.llama_free(self.handle)
            self.handle = None

    def decode(self, batch: NativeBatch) -> int:
        """``llama_decode`` of the filled batch; 0 on success, 2 when stopped by the check of
        :meth:`set_abort`."""
        return int(llama_cpp.llama_decode(self.handle, batch.handle))

    def logits(self, row: int) -> np.ndarray:
        """A copy of the logits of output row ``row`` of the last decode (-1: the last)."""
        pointer = llama_cpp.llama_get_logits_ith(self.handle, row)
        if not pointer:
            raise RuntimeError(f"llama.cpp has no logits for output row {row}")
        array = np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,)
        )
        return np.array(array, dtype=np.float32, copy=True)

    def clear(self) -> None:
        """Forget every cell (metadata only: the next decode overwrites the data)."""
        llama_cpp.llama_memory_clear(self._memory, False)

    def remove(self, seq: int, p0: int, p1: int) -> bool:
        return bool(llama_cpp.llama_memory_seq_rm(self._memory, seq, p0, p1))

    def copy(self, src: int, dst: int, p0: int, p1: int) -> None:
        llama_cpp.llama_memory_seq_cp(self._memory, src, dst, p0, p1)


class NativeBatch:
    """A ``llama_batch`` of up to ``capacity`` tokens, each in up to ``n_seq_max`` sequences."""

    def __init__(self, capacity: int, n_seq_max: int) -> None:
        self.capacity = capacity
        self.handle: Any = llama_cpp.llama_batch_init(capacity, 0, n_seq_max)
        self.n_seq_max = n_seq_max

    def set(self, i: int, token: int, pos: int, seq_ids: Sequence[int], logits: bool) -> None:
        batch = self.handle
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = len(seq_ids)
        for k, seq in enumerate(seq_ids):
            batch.seq_id[i][k] = seq
        batch.logits[i] = logits

    def use(self, n_tokens: int) -> None:
        self.handle.n_tokens = n_tokens

    def close(self) -> None:
        if self.handle is not None:
            llama_cpp.llama_batch_free(self.handle)
            self.handle = None


@dataclass(frozen=True)
class SamplerSettings:
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    repeat_penalty: float
    presence_penalty: float
    frequency_penalty: float
    seed: int


class NativeSampler:
    """A sampler chain: repetition penalties, then the grammar (if any), then greedy at
    temperature 0 or top-k, typical, top-p, min-p, temperature and a seeded draw."""

    def __init__(self, model: NativeModel, settings: SamplerSettings, grammar: str | None) -> None:
        params = llama_cpp.llama_sampler_chain_default_params()
        chain = llama_cpp.llama_sampler_chain_init(params)
        self.handle: Any = chain

        def add(sampler: Any) -> None:
            llama_cpp.llama_sampler_chain_add(chain, sampler)

        penalties = [PENALTY_LAST_N, settings.repeat_penalty, settings.frequency_penalty,
                     settings.presence_penalty]  # fmt: skip
        if len(llama_cpp.llama_sampler_init_penalties.argtypes) == 5:
            penalties.insert(0, model.n_vocab)  # llama.h versions that take the vocabulary size
        add(llama_cpp.llama_sampler_init_penalties(*penalties))
        if grammar is not None:
            sampler = llama_cpp.llama_sampler_init_grammar(
                model.vocab, grammar.encode("utf-8"), b"root"
            )
            if not sampler:
                self.close()
                raise InvalidSchemaError("llama.cpp could not parse the grammar made of the schema")
            add(sampler)
        if settings.temperature == 0:
            add(llama_cpp.llama_sampler_init_greedy())
            return
        add(llama_cpp.llama_sampler_init_top_k(settings.top_k))
        add(llama_cpp.llama_sampler_init_typical(1.0, 1))
        add(llama_cpp.llama_sampler_init_top_p(settings.top_p, 1))
        add(llama_cpp.llama_sampler_init_min_p(settings.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(settings.temperature))
        add(llama_cpp.llama_sampler_init_dist(settings.seed & 0xFFFFFFFF))

    def sample(self, context: NativeContext, row: int = -1) -> int:
        """Sample (and accept) the next token from output row ``row`` of the last decode."""
        return int(llama_cpp.llama_sampler_sample(self.handle, context.handle, row))

    def close(self) -> None:
        if self.handle is not None:
            llama_cpp.llama_sampler_free(self.handle)
            self.handle = None


@lru_cache(maxsize=64)
def gbnf_from_schema(schema_json: str) -> str:
    """The llama.cpp grammar (GBNF) that accepts exactly the JSON of a schema."""
    try:
        return str(llama_grammar.json_schema_to_gbnf(schema_json))
    except (ValueError, RuntimeError, KeyError, TypeError, NotImplementedError) as exc:
        raise InvalidSchemaError(
            f"llama.cpp cannot turn this JSON schema into a grammar: {exc}. Fix: use the "
            "supported subset (types, properties, required, enum, items, min/maxLength, "
            "min/maxItems)"
        ) from exc


class ChatTemplate:
    """A model's Jinja chat template (from its GGUF metadata) rendered as llama.cpp's server
    does."""

    def __init__(self, template: str, bos: str, eos: str) -> None:
        self._with = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._without = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                            add_generation_prompt=False)  # fmt: skip

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> str:
        formatter = self._with if add_generation_prompt else self._without
        return str(formatter(messages=messages).prompt)


def _string(read: Any) -> str:
    size = 256
    while True:
        buf = ctypes.create_string_buffer(size)
        n = int(read(buf, size))
        if n < size:
            return buf.value.decode("utf-8", errors="replace")
        size = n + 1

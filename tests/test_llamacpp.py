"""What only the llama.cpp backend does: chat template, prefix reuse, multi-sequence decoding,
and the errors of bad model files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memora import (
    ClosedError,
    ContextOverflowError,
    ModelLoadError,
    ModelNotFoundError,
)
from memora.llm.llamacpp import LlamaCppLLM, Span

pytestmark = pytest.mark.slow


def test_chat_uses_the_models_own_template(local_llm: LlamaCppLLM) -> None:
    template = local_llm.metadata["tokenizer.chat_template"]
    assert "<|im_start|>" in template
    text = local_llm.render_chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    tokens = local_llm.prompt_tokens([{"role": "user", "content": "Hi"}])
    im_start = local_llm.tokenize("<|im_start|>", special=True)
    assert len(im_start) == 1 and tokens.count(im_start[0]) == 3  # default system, user, assistant


def test_a_shared_prefix_is_not_evaluated_again(local_llm: LlamaCppLLM) -> None:
    prefix = "Notes on the history of the lighthouse keeper. " * 20
    first = local_llm.generate(prefix + "Question one:", temperature=0, max_tokens=4)
    second = local_llm.generate(prefix + "Question two:", temperature=0, max_tokens=4)
    shared = len(local_llm.prompt_tokens(prefix))
    assert first.usage.cached_tokens < shared
    assert second.usage.cached_tokens >= shared - 1
    assert second.usage.evaluated_prompt_tokens <= second.usage.prompt_tokens - shared + 2


def test_prefix_reuse_can_be_turned_off(gguf_path: Path) -> None:
    with LlamaCppLLM(gguf_path, n_ctx=512, n_threads=1, reuse_prefix=False) as llm:
        first = llm.generate("A shared prefix, then one", temperature=0, max_tokens=3)
        second = llm.generate("A shared prefix, then two", temperature=0, max_tokens=3)
        assert first.usage.cached_tokens == second.usage.cached_tokens == 0
        assert second.text == llm.generate("A shared prefix, then two", temperature=0,
                                           max_tokens=3).text  # fmt: skip


def test_logits_after_generation_match_a_fresh_model(
    local_llm: LlamaCppLLM, gguf_path: Path
) -> None:
    local_llm.generate("An unrelated prompt to fill the cache", temperature=0, max_tokens=4)
    warm = local_llm.logits("The capital of France is")
    with LlamaCppLLM(gguf_path, n_ctx=512, n_threads=1) as fresh:
        cold = fresh.logits("The capital of France is")
    assert int(warm.argmax()) == int(cold.argmax())
    np.testing.assert_allclose(warm, cold, atol=1e-3)


def test_sequences_decode_equals_the_plain_prompt(local_llm: LlamaCppLLM) -> None:
    prompt = "The quick brown fox jumps over the lazy"
    plain = local_llm.logits(prompt)
    tokens = local_llm.prompt_tokens(prompt)
    with local_llm.sequences(1) as kv:
        (logits,) = kv.decode([Span(tokens, pos=0, logits=True)])
    assert logits is not None
    assert np.array_equal(logits, plain)


def test_sequence_copy_shares_a_prefix_between_sequences(local_llm: LlamaCppLLM) -> None:
    prefix = local_llm.prompt_tokens("A list of animals: cat, dog,")
    tails = [local_llm.tokenize(" horse,"), local_llm.tokenize(" parrot, owl,")]
    expected = [
        local_llm.logits(prefix_text + tail)
        for prefix_text, tail in (
            ("A list of animals: cat, dog,", " horse,"),
            ("A list of animals: cat, dog,", " parrot, owl,"),
        )
    ]
    with local_llm.sequences(3) as kv:
        kv.decode([Span(prefix, pos=0)])
        kv.copy(0, 1)
        kv.copy(0, 2)
        calls_before = kv.decode_calls
        got = kv.decode(
            [
                Span(tails[0], pos=len(prefix), seq_ids=(1,), logits=True),
                Span(tails[1], pos=len(prefix), seq_ids=(2,), logits=True),
            ]
        )
        assert kv.decode_calls == calls_before + 1, "both spans fit one batch"
    for logits, want in zip(got, expected, strict=True):
        assert logits is not None
        assert int(logits.argmax()) == int(want.argmax())
        np.testing.assert_allclose(logits, want, atol=0.05)
    # Ordinary calls work again after the sequences block.
    assert local_llm.generate("Hello", temperature=0, max_tokens=2).text


def test_prompt_longer_than_the_context(local_llm: LlamaCppLLM) -> None:
    long_prompt = "word " * 3000
    with pytest.raises(ContextOverflowError, match="larger n_ctx") as info:
        local_llm.generate(long_prompt, max_tokens=8)
    assert info.value.n_ctx == local_llm.n_ctx
    assert info.value.prompt_tokens > local_llm.n_ctx
    with pytest.raises(ContextOverflowError):
        local_llm.logits(long_prompt)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no GGUF file at"):
        LlamaCppLLM(tmp_path / "nope.gguf")


def test_file_that_is_not_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        LlamaCppLLM(bad)


def test_truncated_gguf_file(tmp_path: Path, gguf_path: Path) -> None:
    bad = tmp_path / "truncated.gguf"
    with gguf_path.open("rb") as src:
        bad.write_bytes(src.read(1_000_000))
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        LlamaCppLLM(bad, n_threads=1)


def test_runs_on_the_cpu_by_default(local_llm: LlamaCppLLM) -> None:
    assert local_llm.device == "cpu"


def test_loads_after_numpy_was_imported_first(gguf_path: Path) -> None:
    # A llama.cpp built with a mismatched C++ runtime crashed while loading a model whenever
    # libstdc++ came in first (through numpy); keep this path covered.
    code = (
        "import numpy\n"
        "from memora.llm.llamacpp import LlamaCppLLM\n"
        f"llm = LlamaCppLLM({str(gguf_path)!r}, n_ctx=256, n_threads=1)\n"
        "print(llm.generate('Hello', temperature=0, max_tokens=3).usage.completion_tokens)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "3"


def test_calls_after_close_raise_instead_of_crashing(gguf_path: Path) -> None:
    llm = LlamaCppLLM(gguf_path, n_ctx=256, n_threads=1)
    llm.close()
    llm.close()  # idempotent
    for call in (
        lambda: llm.tokenize("hi"),
        lambda: llm.count_tokens("hi"),
        lambda: llm.detokenize([1]),
        lambda: llm.generate("hi", max_tokens=2),
        lambda: llm.logits("hi"),
    ):
        with pytest.raises(ClosedError, match="closed"):
            call()


def test_cancel_stops_prompt_evaluation_within_a_second(gguf_path: Path) -> None:
    import threading
    import time

    from memora.errors import GenerationCancelledError

    prompt = "The keeper wrote the weather into the log of the lighthouse. " * 250
    with LlamaCppLLM(gguf_path, n_ctx=4096, n_threads=1) as llm:
        cancel, ended = threading.Event(), {}

        def run() -> None:
            try:
                with llm.cancel_on(cancel):
                    llm.generate(prompt, max_tokens=40)
            except GenerationCancelledError as exc:
                ended["error"] = exc
            ended["at"] = time.monotonic()

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(2.0)  # inside the evaluation of the first 512-token chunk or a later one
        assert thread.is_alive(), "the prompt was evaluated already: make it longer"
        cancel.set()
        set_at = time.monotonic()
        thread.join(timeout=60)
        assert "error" in ended and ended["at"] - set_at < 1.0, ended
        # Outside the block the set event stops nothing; the cache is consistent again.
        short = "The capital of France is"
        warm = llm.logits(short)
        llm.reset_cache()
        assert np.array_equal(warm, llm.logits(short))
        # Inside the block, a call that is not stopped computes the same, bit for bit.
        llm.reset_cache()
        plain = llm.logits(prompt[:3000])
        llm.reset_cache()
        with llm.cancel_on(threading.Event()):
            watched = llm.logits(prompt[:3000])
        assert np.array_equal(plain, watched)

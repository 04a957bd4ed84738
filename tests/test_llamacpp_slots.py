"""KV cache slots: calls in different slots keep each other's prompt cached, a slot starts from
the longest prefix any slot holds, and side calls can leave the slots alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from memora.errors import InvalidOptionError
from memora.llm.llamacpp import LlamaCppLLM

STORY = "Notes on the lighthouse keeper of the northern cape, his lamp and his logbook. " * 6


@pytest.fixture
def llm(gguf_path: Path) -> Iterator[LlamaCppLLM]:
    with LlamaCppLLM(gguf_path, n_ctx=1024, n_threads=1, reuse_prefix=3) as model:
        yield model


def _call(llm: LlamaCppLLM, prompt: str, slot: str | None = None) -> int:
    done = llm.generate(prompt, temperature=0, max_tokens=3, cache_slot=slot)
    return done.usage.cached_tokens


def test_alternating_slots_keep_each_others_prompt(llm: LlamaCppLLM, gguf_path: Path) -> None:
    writer = STORY + "Write the next paragraph."
    other = "A different conversation about cooking rice and beans. " * 5
    _call(llm, writer, "writer")
    _call(llm, other, "summary")
    again = _call(llm, writer, "writer")
    assert again == len(llm.prompt_tokens(writer)) - 1
    # With one slot, the other call takes the writer's cells.
    with LlamaCppLLM(gguf_path, n_ctx=1024, n_threads=1, reuse_prefix=1) as single:
        _call(single, writer, "writer")
        _call(single, other, "summary")
        assert _call(single, writer, "writer") < len(single.prompt_tokens(STORY)) // 2


def test_a_slot_starts_from_the_longest_prefix_any_slot_holds(llm: LlamaCppLLM) -> None:
    _call(llm, STORY + "Write the next paragraph.", "writer")
    cached = _call(llm, STORY + "Summarize the story so far.", "planner")
    assert cached >= len(llm.prompt_tokens(STORY)) - 1


def test_slot_output_equals_a_fresh_model(llm: LlamaCppLLM, gguf_path: Path) -> None:
    prompt = STORY + "The keeper's name was"
    _call(llm, STORY + "Something else first.", "writer")
    warm = llm.generate(prompt, temperature=0, max_tokens=8, cache_slot="planner")
    assert warm.usage.cached_tokens > 0
    with LlamaCppLLM(gguf_path, n_ctx=1024, n_threads=1) as fresh:
        cold = fresh.generate(prompt, temperature=0, max_tokens=8)
        np.testing.assert_allclose(llm.logits(prompt), fresh.logits(prompt), atol=1.0)
    assert warm.text.split()[:2] == cold.text.split()[:2]


def test_side_calls_can_keep_the_slots(llm: LlamaCppLLM) -> None:
    writer = STORY + "Write the next paragraph."
    n = len(llm.prompt_tokens(writer))
    _call(llm, writer, "writer")
    kept = llm.continuation_logprobs("Pick one:", [" red", " blue"], keep_slots=True)
    assert _call(llm, writer, "writer") == n - 1
    cleared = llm.continuation_logprobs("Pick one:", [" red", " blue"])
    assert _call(llm, writer, "writer") == 0
    # Kept or cleared, the scores agree closely and rank the same.
    assert [float(x.mean()) for x in kept] == pytest.approx(
        [float(x.mean()) for x in cleared], abs=0.5
    )


def test_a_full_cache_evicts_the_least_recently_used_slot(gguf_path: Path) -> None:
    with LlamaCppLLM(gguf_path, n_ctx=256, n_threads=1, reuse_prefix=3) as llm:
        first = "First topic: the harbour, ships and sailors at dawn. " * 14
        second = "Second topic: a mountain village, goats and snow in winter. " * 14
        assert len(llm.prompt_tokens(first)) + len(llm.prompt_tokens(second)) > 256
        _call(llm, first, "a")
        _call(llm, second, "b")  # needs a's cells: a gives way instead of an error
        assert _call(llm, second, "b") == len(llm.prompt_tokens(second)) - 1
        assert _call(llm, first, "a") == 0  # a was evicted; it is evaluated again


def test_more_names_than_slots_reuse_the_least_recently_used(llm: LlamaCppLLM) -> None:
    prompts = {name: f"Slot {name}: " + STORY for name in ("one", "two", "three", "four")}
    for name in ("one", "two", "three"):
        _call(llm, prompts[name], name)
    _call(llm, prompts["four"], "four")  # takes the slot of "one"
    assert _call(llm, prompts["two"], "two") == len(llm.prompt_tokens(prompts["two"])) - 1
    assert _call(llm, prompts["one"], "one") < len(llm.prompt_tokens(prompts["one"])) - 1


def test_bad_slot_settings_are_refused(gguf_path: Path, llm: LlamaCppLLM) -> None:
    with pytest.raises(InvalidOptionError, match="cache_slot"):
        llm.generate("Hi", max_tokens=1, cache_slot="")
    with pytest.raises(InvalidOptionError, match="cache slots"):
        LlamaCppLLM(gguf_path, n_ctx=256, reuse_prefix=0)

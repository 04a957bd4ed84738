"""Set-based prompting on llama.cpp: invariance first, then correctness and bad input."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from memora import ConfigError, ContextOverflowError, InvalidOptionError, UnsupportedError
from memora.llm import LLM
from memora.llm.llamacpp import LlamaCppLLM, Span
from memora.prompting import SetPrompt
from memora.prompting.kv_set import decode_set

pytestmark = pytest.mark.slow

STORY_ITEMS = [
    "The keeper lit the lamp at dusk.\n",
    "A storm hit the coast at night.\n",
    "Gulls nested on the rocks near the old harbour wall, as they had for years.\n",
    "Fog.\n",
]
ANIMALS = ["cat", "horse", "blue whale", "ant", "golden eagle", "dog", "tiny shrew", "elephant"]


def permutations(n: int, limit: int = 50, seed: int = 0) -> list[tuple[int, ...]]:
    """All permutations of n items, or ``limit`` random ones (identity included) for large n."""
    if math.factorial(n) <= limit:
        return list(itertools.permutations(range(n)))
    rng = random.Random(seed)
    found = {tuple(range(n))}
    while len(found) < limit:
        order = list(range(n))
        rng.shuffle(order)
        found.add(tuple(order))
    return sorted(found)


PROMPTS = {
    "facts-2": SetPrompt("Facts:\n", STORY_ITEMS[:2], "Question: what happened at night? Answer:"),
    "facts-4": SetPrompt("Facts:\n", STORY_ITEMS, "Question: which fact is the longest? Answer:"),
    "animals-8": SetPrompt(
        "Animals:\n", [f"- {a}\n" for a in ANIMALS], "The largest animal in the list is the"
    ),
}


@pytest.mark.parametrize("name", PROMPTS)
def test_logits_are_identical_for_every_order(local_llm: LlamaCppLLM, name: str) -> None:
    prompt = PROMPTS[name]
    reference = local_llm.logits(prompt)
    orders = permutations(len(prompt.items))
    for order in orders:
        logits = local_llm.logits(prompt.ordered(order))
        assert np.array_equal(logits, reference), f"order {order} changed the logits"
    assert len(orders) == min(50, math.factorial(len(prompt.items)))


def test_greedy_generation_is_identical_for_every_order(local_llm: LlamaCppLLM) -> None:
    prompt = SetPrompt.from_chat(
        local_llm, "Here are some notes:\n", STORY_ITEMS[:3], "\nSummarize the notes in a sentence."
    )
    texts = {
        local_llm.generate(prompt.ordered(order), temperature=0, max_tokens=16).text
        for order in itertools.permutations(range(3))
    }
    assert len(texts) == 1
    assert next(iter(texts)).strip()


def test_sampled_and_json_generation_are_identical_for_every_order(local_llm: LlamaCppLLM) -> None:
    prompt = SetPrompt.from_chat(
        local_llm, "Notes:\n", STORY_ITEMS[:3], "\nWhat is the weather like? Answer in JSON."
    )
    schema = {
        "type": "object",
        "properties": {"weather": {"type": "string", "minLength": 2, "maxLength": 40}},
        "required": ["weather"],
    }
    sampled, structured = set(), []
    for order in [(0, 1, 2), (2, 1, 0), (1, 2, 0)]:
        reordered = prompt.ordered(order)
        sampled.add(local_llm.generate(reordered, temperature=0.9, seed=11, max_tokens=12).text)
        structured.append(local_llm.generate_json(reordered, schema, temperature=0, max_tokens=40))
    assert len(sampled) == 1
    assert structured[0] == structured[1] == structured[2]
    assert 2 <= len(structured[0]["weather"]) <= 40


def test_one_item_equals_the_plain_prompt(local_llm: LlamaCppLLM) -> None:
    prompt = SetPrompt("Facts:\n", [STORY_ITEMS[0]], "Question: who lit the lamp? Answer:")
    assert local_llm.set_tokens(prompt).cells == local_llm.count_tokens(prompt.concatenated())
    assert np.array_equal(local_llm.logits(prompt), local_llm.logits(prompt.concatenated()))


def test_an_item_cannot_see_another(local_llm: LlamaCppLLM) -> None:
    question = "Q: what is the secret code? A: the code is"
    planted = ["Secret: the code is 4417.\n", "Secret: the code is 9902.\n"]
    assert len(set(map(len, map(local_llm.tokenize, planted)))) == 1  # same layout
    seen = [local_llm.continuation_logprobs("Notes:\n", [fact, question])[1] for fact in planted]
    assert np.array_equal(seen[0], seen[1])
    # Read in sequence, the planted fact does change what follows.
    plain = [local_llm.continuation_logprobs("Notes:\n" + fact, [question])[0] for fact in planted]
    assert np.abs(plain[0] - plain[1]).max() > 0.05


def test_the_suffix_sees_every_item(local_llm: LlamaCppLLM) -> None:
    prompt = PROMPTS["facts-4"]
    base = local_llm.logits(prompt)
    for k in range(len(prompt.items)):
        items = list(prompt.items)
        items[k] = "The lamp went out.\n"
        changed = local_llm.logits(SetPrompt(prompt.prefix, items, prompt.suffix))
        assert np.abs(changed - base).max() > 1e-3, f"the suffix ignored item {k}"


def test_plain_concatenation_depends_on_the_order(
    local_llm: LlamaCppLLM, record_property: pytest.RecordProperty
) -> None:
    prompt = PROMPTS["facts-4"]
    orders = permutations(len(prompt.items))
    plain = [local_llm.logits(prompt.ordered(o).concatenated()) for o in orders]
    largest = max(float(np.abs(p - plain[0]).max()) for p in plain)
    answers = {int(p.argmax()) for p in plain}
    record_property("largest_logit_change", largest)
    record_property("distinct_greedy_answers", len(answers))
    assert largest > 0.5


def test_sixty_four_items_pack_into_few_decode_calls(local_llm: LlamaCppLLM) -> None:
    items = [f"item {i}: {'x' * (i % 7)}\n" for i in range(64)]
    prompt = SetPrompt("List:\n", items, "The list has")
    tokens = local_llm.set_tokens(prompt)
    packed = len(tokens.prefix) + sum(len(i) for i in tokens.items)
    with local_llm.sequences(65) as kv:
        decoded = decode_set(kv, tokens)
        assert kv.decode_calls == math.ceil(packed / kv.n_batch) + 1  # + the suffix
    reference = local_llm.logits(prompt)
    assert decoded.suffix_logits is not None and np.array_equal(decoded.suffix_logits, reference)
    for order in permutations(64, limit=3, seed=1):
        assert np.array_equal(local_llm.logits(prompt.ordered(order)), reference)


def test_too_many_items(local_llm: LlamaCppLLM) -> None:
    prompt = SetPrompt("List:\n", [f"{i}\n" for i in range(256)], "Done.")
    with pytest.raises(InvalidOptionError, match="at most 255 items"):
        local_llm.logits(prompt)


def test_set_longer_than_the_context(local_llm: LlamaCppLLM) -> None:
    prompt = SetPrompt("List:\n", ["word " * 300 + "\n"] * 8, "Done.")
    with pytest.raises(ContextOverflowError, match="KV cells"):
        local_llm.logits(prompt)
    with pytest.raises(ContextOverflowError):
        local_llm.generate(prompt, max_tokens=4)


def test_remote_backend_refuses_exact_invariance(remote_llm: LLM) -> None:
    prompt = SetPrompt("Facts:\n", STORY_ITEMS[:2], "Answer:")
    with pytest.raises(UnsupportedError, match="psc"):
        remote_llm.generate(prompt, max_tokens=4)
    with pytest.raises(UnsupportedError):
        remote_llm.logits(prompt)


def test_set_prompt_validation_and_round_trip() -> None:
    with pytest.raises(ConfigError, match="at least one item"):
        SetPrompt("p", [], "s")
    with pytest.raises(ConfigError, match="suffix"):
        SetPrompt("p", ["a"], "")
    with pytest.raises(ConfigError, match="non-empty"):
        SetPrompt("p", ["a", ""], "s")
    with pytest.raises(ConfigError, match="list of strings"):
        SetPrompt("p", "abc", "s")
    prompt = SetPrompt("p", ["a", "b"], "s", rendered=True)
    assert SetPrompt.from_dict(prompt.to_dict()) == prompt
    assert prompt.ordered([1, 0]).items == ("b", "a")


def test_sequences_spans_are_checked(local_llm: LlamaCppLLM) -> None:
    with local_llm.sequences(2) as kv:
        with pytest.raises(InvalidOptionError, match="sequence ids"):
            kv.decode([Span([1, 2], pos=0, seq_ids=(2,))])
        with pytest.raises(ContextOverflowError):
            kv.decode([Span([1, 2], pos=local_llm.n_ctx - 1)])

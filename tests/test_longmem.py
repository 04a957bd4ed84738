"""LongMem-style memory: the text bank, the long-context reader and the llama.cpp KV bank, on the
real model, the real embedder and real KV sequences."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memora.embed import Embedder, load_embedder
from memora.errors import (
    ContextOverflowError,
    InvalidOptionError,
    InvalidRecordError,
    UnsupportedError,
)
from memora.llm.base import Message
from memora.llm.llamacpp import LlamaCppLLM
from memora.memory.longmem import Chunk, KVMemoryBank, LongContextReader, MemoryBank
from memora.testing import ScriptedLLM

PASSKEY = "The pass key is 71432. Remember it, 71432 is the pass key."
QUESTION = "What is the pass key?"
FILLER = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
)
DISTRACTORS = [
    "The train to the coast leaves at nine in the morning.",
    "Our cat sleeps on the warm windowsill most afternoons.",
    "The museum closes early on public holidays.",
    "He planted tomatoes and basil in the garden last spring.",
    "The recipe needs two eggs, flour and a pinch of salt.",
    "Rain is expected over the mountains this weekend.",
    "The library moved to a bigger building downtown.",
    "She practices the violin for an hour every evening.",
    "The bridge was painted red during the renovation.",
    "Fresh bread is sold at the bakery from six o'clock.",
    "The football match ended in a draw after extra time.",
]


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def passkey_document(n_filler: int, at: float) -> str:
    before = int(n_filler * at)
    return FILLER * before + PASSKEY + " " + FILLER * (n_filler - before)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


@pytest.fixture(scope="module")
def small_llm(gguf_path: Path) -> Iterator[LlamaCppLLM]:
    """The bundled model with a KV cache of only 256 cells: a leak of cells shows quickly."""
    with LlamaCppLLM(gguf_path, n_ctx=256, n_threads=1, seed=0) as llm:
        yield llm


# -- the text bank -------------------------------------------------------------------------


def test_bad_inputs_raise_specific_errors(embedder: Embedder) -> None:
    with pytest.raises(InvalidOptionError, match="chunk_tokens"):
        MemoryBank(embedder, chunk_tokens=0)
    with pytest.raises(InvalidOptionError, match="capacity"):
        MemoryBank(embedder, capacity=0)
    with pytest.raises(InvalidOptionError, match="'fifo', 'score' or 'surprise'"):
        MemoryBank(embedder, eviction="lru")  # type: ignore[arg-type]
    bank = MemoryBank(embedder, chunk_tokens=4)
    bank.add_chunks(["one two three"])
    with pytest.raises(InvalidOptionError, match="query is empty"):
        bank.retrieve("  ")
    with pytest.raises(InvalidOptionError, match="k must be"):
        bank.retrieve("one", k=0)
    with pytest.raises(InvalidRecordError, match="some text"):
        bank.add_chunks(["fine", " "])
    with pytest.raises(InvalidRecordError, match="add_text"):
        bank.add_chunks(["one two three four five"])
    with pytest.raises(InvalidRecordError, match="list of texts"):
        bank.add_chunks("one")
    with pytest.raises(InvalidOptionError, match="pass one each"):
        bank.add_chunks(["a", "b"], scores=[1.0])
    assert [c.text for c in bank.chunks] == ["one two three"]  # failed calls filed nothing


def test_fifo_keeps_capacity_and_drops_the_oldest(embedder: Embedder) -> None:
    bank = MemoryBank(embedder, capacity=3)
    gone: list[Chunk] = []
    bank.on_evict.append(gone.append)
    added = bank.add_chunks(DISTRACTORS[:2]) + bank.add_chunks(DISTRACTORS[2:6])
    assert [c.index for c in added] == [0, 1, 2, 3, 4, 5]
    assert len(bank) == 3
    assert [c.text for c in bank.chunks] == DISTRACTORS[3:6]
    assert [c.index for c in gone] == [0, 1, 2]
    assert (bank.added, bank.evicted, bank.rejected) == (6, 3, 0)
    assert 3 not in [c.index for c in gone] and 3 in bank and 2 not in bank


def test_score_eviction_keeps_the_distinct_chunk(embedder: Embedder) -> None:
    near = [
        "The grass is green.",
        "The grass is very green.",
        "The grass is green today.",
        "Green is the grass.",
        "The grass is so green.",
        "The green grass.",
    ]
    bank = MemoryBank(embedder, capacity=3, eviction="score")
    gone: list[Chunk] = []
    bank.on_evict.append(gone.append)
    bank.add_chunks([near[0], PASSKEY, near[1]])
    first, key, _ = bank.chunks
    assert first.score == 1.0 and key.score > 0.5
    for text in near[2:]:
        members = bank.chunks
        lowest = min(members, key=lambda c: (c.score, c.index))
        novelty = 1 - float(
            np.max(embedder.encode([c.text for c in members]) @ embedder.encode([text])[0])
        )
        admitted = bank.add_chunks([text])
        if novelty < lowest.score:  # less novel than every member: not admitted
            assert admitted == []
        else:
            assert gone[-1] == lowest  # the least novel chunk went
            assert admitted[0].score == pytest.approx(novelty, abs=1e-5)
    assert PASSKEY in [c.text for c in bank.chunks]
    assert len(bank) == 3
    assert bank.added + bank.rejected == 7 and bank.evicted == bank.added - 3
    assert bank.rejected > 0


def test_surprise_eviction_keeps_what_is_unlike_everything_read(embedder: Embedder) -> None:
    bank = MemoryBank(embedder, capacity=4, eviction="surprise")
    filler = DISTRACTORS * 3  # the same kind of text, over and over
    bank.add_chunks([*filler[:5], PASSKEY, *filler[5:]])
    assert bank.neural is not None and bank.neural.writes == len(filler) + 1
    assert PASSKEY in [c.text for c in bank.chunks]
    assert len(bank) == 4 and bank.added + bank.rejected == len(filler) + 1
    assert bank.retrieve("What is the pass key?", k=1)[0].text == PASSKEY
    # a repeat of what was read is not surprising: a full bank does not take it
    assert bank.add_chunks([DISTRACTORS[0]]) == [] and bank.rejected > 0


def test_caller_scores_and_admission(embedder: Embedder) -> None:
    bank = MemoryBank(embedder, capacity=3, eviction="score")
    bank.add_chunks(["alpha", "beta", "gamma"], scores=[0.5, 0.9, 0.1])
    (delta,) = bank.add_chunks(["delta"], scores=[0.3])
    assert [c.text for c in bank.chunks] == ["alpha", "beta", "delta"]
    assert bank.add_chunks(["epsilon"], scores=[0.2]) == []  # below every member
    assert (bank.rejected, bank.evicted) == (1, 1)
    (zeta,) = bank.add_chunks(["zeta"], scores=[0.3])  # ties the lowest: admitted, oldest goes
    assert zeta.index == 5 and delta.index not in bank
    assert [c.text for c in bank.chunks] == ["alpha", "beta", "zeta"]


def test_retrieval_finds_the_planted_chunk_in_stream_order(embedder: Embedder) -> None:
    bank = MemoryBank(embedder)
    bank.add_chunks([*DISTRACTORS[:5], PASSKEY, *DISTRACTORS[5:]])
    scored = bank.retrieve_scored(QUESTION, k=3)
    assert scored[0].chunk.text == PASSKEY and scored[0].chunk.index == 5
    assert scored[0].similarity > scored[1].similarity >= scored[2].similarity
    got = bank.retrieve(QUESTION, k=3)
    assert [c.index for c in got] == sorted(c.chunk.index for c in scored)
    assert PASSKEY in [c.text for c in got]
    assert bank.retrieve(QUESTION, k=50) == bank.chunks  # every chunk, in read order


def test_split_loses_nothing_and_keeps_the_budget(
    local_llm: LlamaCppLLM, embedder: Embedder
) -> None:
    bank = MemoryBank(embedder, tokenizer=local_llm, chunk_tokens=12)
    text = (
        "Short one. Another short one! A question?\n\nA sentence that is much longer than the "
        "twelve token budget of this bank, so it has to be cut between words somewhere. "
        + "x" * 90
        + " 3141592653589793238462643383279502884197169399375105820974944 done.\nEnd"
    )
    chunks = bank.split(text)
    assert all(0 < len(local_llm.tokenize(c)) <= 12 for c in chunks)
    assert squash("".join(chunks)) == squash(text)
    assert all(c == c.strip() and c in text for c in chunks)
    assert chunks[0] == "Short one. Another short one! A question?"  # whole sentences first
    assert chunks[1].startswith("A sentence")
    filed = bank.add_text(text)
    assert [c.text for c in filed] == chunks and all(c.n_tokens <= 12 for c in filed)


@settings(max_examples=60, deadline=None)
@given(
    text=st.lists(st.sampled_from([*"ab. ?!\n", "word", "Long", "é"]), max_size=120).map("".join),
    budget=st.integers(1, 9),
)
def test_split_invariants_with_the_word_proxy(embedder: Embedder, text: str, budget: int) -> None:
    bank = MemoryBank(embedder, chunk_tokens=budget)  # no tokenizer: whitespace words
    chunks = bank.split(text)
    assert squash("".join(chunks)) == squash(text)
    assert all(c and c == c.strip() and 1 <= len(c.split()) <= budget for c in chunks)


# -- the reader on the text bank -----------------------------------------------------------


def test_reader_answers_from_a_document_longer_than_the_context(local_llm: LlamaCppLLM) -> None:
    bank = MemoryBank(tokenizer=local_llm, chunk_tokens=48)
    reader = LongContextReader(local_llm, bank, window_tokens=96, k=2)
    document = passkey_document(120, at=0.3)
    reader.read(document)
    assert reader.read_tokens > local_llm.n_ctx
    assert PASSKEY not in reader.window
    answer = reader.ask(QUESTION, max_tokens=16)
    assert any("71432" in c.text for c in answer.chunks)
    assert [c.index for c in answer.chunks] == sorted(c.index for c in answer.chunks)
    assert "71432" in answer.text  # the 135M model reads it off the retrieved chunk
    assert 0 < answer.evaluated_tokens <= answer.prompt_tokens < local_llm.n_ctx


def test_reader_turns_and_continuation(local_llm: LlamaCppLLM) -> None:
    with pytest.raises(InvalidOptionError, match="at least 128"):
        LongContextReader(local_llm, window_tokens=40)
    bank = MemoryBank(tokenizer=local_llm, chunk_tokens=16)
    reader = LongContextReader(local_llm, bank, window_tokens=40, k=1)
    pushed = reader.read_turns(
        [Message("user", "My locker code is 5809."), *(f"user: note {i}." for i in range(30))]
    )
    assert pushed[0].text == "user: My locker code is 5809."
    assert reader.memory.retrieve("What is my locker code?", k=1)[0].index == 0
    reader.read(", ".join(str(i) for i in range(1, 30)) + ",")
    more = reader.continue_(max_tokens=4)
    assert more.text.startswith("30")
    with pytest.raises(InvalidOptionError, match="question is empty"):
        reader.ask(" ")


def test_reader_drops_the_least_similar_chunks_that_do_not_fit(embedder: Embedder) -> None:
    """Any backend: a scripted model (whitespace tokens) with a context of 90 words."""
    llm = ScriptedLLM(["The pass key is 71432."], n_ctx=90)
    bank = MemoryBank(embedder, tokenizer=llm, chunk_tokens=20)
    reader = LongContextReader(llm, bank, window_tokens=20, k=4)
    reader.read(" ".join([*DISTRACTORS[:4], PASSKEY, *DISTRACTORS[4:]]))
    assert len(bank) >= 4
    answer = reader.ask(QUESTION, max_tokens=10)
    assert 0 < len(answer.chunks) < 4
    assert PASSKEY in [c.text for c in answer.chunks]  # the most similar chunk stays
    assert answer.prompt_tokens + 10 <= llm.n_ctx == 90
    assert answer.prompt_tokens == llm.count_tokens(llm.prompts[-1])
    assert answer.text == "The pass key is 71432."


def test_reader_raises_when_window_and_question_cannot_fit(local_llm: LlamaCppLLM) -> None:
    reader = LongContextReader(local_llm, window_tokens=2000)
    reader.read(FILLER * 90)
    with pytest.raises(ContextOverflowError, match="window_tokens"):
        reader.ask(QUESTION, max_tokens=400)
    with pytest.raises(InvalidOptionError, match="n_ctx"):
        LongContextReader(local_llm, window_tokens=local_llm.n_ctx)


# -- the KV bank ---------------------------------------------------------------------------


def test_kv_bank_needs_llama_cpp(embedder: Embedder) -> None:
    with pytest.raises(UnsupportedError, match="LlamaCppLLM"):
        KVMemoryBank(ScriptedLLM(["x"]), embedder=embedder)


def test_kv_bank_capacity_is_bounded_by_the_cells(local_llm: LlamaCppLLM) -> None:
    with pytest.raises(InvalidOptionError, match="larger n_ctx"):
        KVMemoryBank(local_llm, chunk_tokens=64, capacity=200)
    with pytest.raises(InvalidOptionError, match="chunk_tokens"):
        KVMemoryBank(local_llm, chunk_tokens=1)


def test_kv_single_chunk_query_equals_the_plain_prompt(local_llm: LlamaCppLLM) -> None:
    question = "Question: " + QUESTION
    with KVMemoryBank(local_llm, chunk_tokens=32, capacity=4) as bank:
        instruction = bank.instruction
        (chunk,) = bank.add_chunks([PASSKEY])
        prefix = len(bank.prefix)
        kv_logits = bank.logits(QUESTION, k=1)
        answer = bank.ask(QUESTION, k=1, max_tokens=12)
    plain = [
        Message("system", instruction),
        Message("user", "Context:\n" + PASSKEY + "\n" + question),
    ]
    n_plain = len(local_llm.prompt_tokens(plain))
    chunk_cells = len(local_llm.tokenize(PASSKEY + "\n"))
    assert answer.evaluated_tokens == n_plain - prefix - chunk_cells  # the question only
    assert answer.prompt_tokens == n_plain
    assert np.array_equal(kv_logits, local_llm.logits(plain))  # bit for bit
    assert answer.text == local_llm.generate(plain, max_tokens=12, temperature=0).text.strip()
    assert "71432" in answer.text and answer.chunks == (chunk,)


def test_kv_chunk_among_others_answers_as_the_plain_prompt(local_llm: LlamaCppLLM) -> None:
    """Other chunks' cells lie between the retrieved chunk and the question: the attention is
    the plain prompt's, the summation order is not (no flash attention), so the logits may
    differ in the last bits (DESIGN.md); the greedy answer must not."""
    with KVMemoryBank(local_llm, chunk_tokens=32, capacity=8) as bank:
        bank.add_chunks([*DISTRACTORS[:3], PASSKEY, *DISTRACTORS[3:6]])
        logits = bank.logits(QUESTION, k=1)
        answer = bank.ask(QUESTION, k=1, max_tokens=12)
    plain = [
        Message("system", bank.instruction),
        Message("user", "Context:\n" + PASSKEY + "\nQuestion: " + QUESTION),
    ]
    reference = local_llm.logits(plain)
    assert int(np.argmax(logits)) == int(np.argmax(reference))
    assert np.max(np.abs(logits - reference)) < 2.0
    assert answer.text == local_llm.generate(plain, max_tokens=12, temperature=0).text.strip()


def test_kv_query_leaves_the_cache_as_it_was(local_llm: LlamaCppLLM) -> None:
    with KVMemoryBank(local_llm, chunk_tokens=32, capacity=8) as bank:
        bank.add_chunks([*DISTRACTORS[:3], PASSKEY, *DISTRACTORS[3:6]])
        first = bank.logits(QUESTION, k=3)
        other = bank.ask("When does the train leave?", k=2, max_tokens=8)
        again = bank.logits(QUESTION, k=3)
        answer = bank.ask(QUESTION, k=3, max_tokens=12)
        assert bank.queries == 4
    assert np.array_equal(first, again)
    assert DISTRACTORS[0] in [c.text for c in other.chunks]
    assert "71432" in answer.text
    assert answer.evaluated_tokens == len(
        local_llm.tokenize(
            "Question: " + QUESTION + "<|im_end|>\n<|im_start|>assistant\n", special=True
        )
    )


def test_kv_eviction_frees_cells_and_sequences(small_llm: LlamaCppLLM) -> None:
    texts = [f"Note {i}: the {w} is in box {i}." for i, w in enumerate(["key", "map", "pen"] * 7)]
    with KVMemoryBank(small_llm, chunk_tokens=24, query_reserve=64) as bank:
        cap = bank.capacity
        assert cap == (small_llm.n_ctx - len(bank.prefix) - 64) // 24
        for text in texts:  # 21 chunks of ~14 tokens: more cells than the cache has
            bank.add_chunks([text])
            assert len(bank) <= cap
        assert bank.filed_tokens > small_llm.n_ctx
        assert bank.memory.evicted == len(texts) - cap
        assert [c.text for c in bank.memory.chunks] == texts[-cap:]
        answer = bank.ask("Where is the pen? Note 20", k=1, max_tokens=12)
        assert answer.chunks[0].text == texts[20]
        assert "20" in answer.text


def test_kv_reader_answers_past_the_context_with_score_eviction(local_llm: LlamaCppLLM) -> None:
    with KVMemoryBank(local_llm, chunk_tokens=48, capacity=6, eviction="score") as bank:
        reader = LongContextReader(local_llm, bank, window_tokens=48, k=2)
        reader.read(passkey_document(120, at=0.2))
        assert reader.read_tokens > local_llm.n_ctx
        assert bank.memory.rejected > 0 and len(bank) == 6
        answer = reader.ask(QUESTION, max_tokens=16)
    assert any("71432" in c.text for c in answer.chunks)
    assert "71432" in answer.text
    window_and_question = answer.evaluated_tokens
    assert window_and_question < 48 + 40  # the retrieved chunks were not evaluated again

"""Question keys written by a model (memora.memory.keys): parsed, stored as search keys in the
background, found by a question that shares few words with the memory; and the real bundled
model through the same path."""

from __future__ import annotations

from pathlib import Path

import pytest

from memora.embed import Embedder, load_embedder
from memora.errors import ConfigError
from memora.memory.keys import QuestionKeys, parse_questions, questions_prompt
from memora.memory.store import MemoryStore
from memora.testing import ScriptedLLM

NOTES = [
    "Our wifi password is pebble23, by the way.",
    "My landlord raised the rent to 1,250 euros a month.",
    "Had way too much coffee today.",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def test_parse_keeps_questions_only() -> None:
    output = (
        " What is the wifi code?\nQuestion: 2. What is the wifi code?\n- How do I get "
        "online at home?\nnot a question\nWhy?\nQuestion: Our wifi password is pebble23?"
    )
    assert parse_questions(output, "Our wifi password is pebble23?", 5) == [
        "What is the wifi code?", "How do I get online at home?"
    ]  # fmt: skip
    assert parse_questions(output, "x", 1) == ["What is the wifi code?"]
    assert questions_prompt("a  {text}\n b").endswith("Text: a {text} b\nQuestion:")


def test_background_keys_find_the_memory_by_a_question(tmp_path: Path, embedder: Embedder) -> None:
    llm = ScriptedLLM([" How do I get online at home?\nQuestion: What is the network code?"])
    with MemoryStore(tmp_path / "m.db", embedder=embedder) as store:
        results = store.add_many(NOTES, user_id="u")
        question = "How do I get online at home?"
        before = store.search(question, user_id="u", k=1, keys=False)
        with QuestionKeys(store, llm) as keys:
            futures = keys.submit_many([results[0].record])
        assert [f.result() for f in futures] == [2] and keys.failed == []
        assert [k.text for k in store.keys(results[0].record.id, user_id="u")] == [
            "How do I get online at home?", "What is the network code?"
        ]  # fmt: skip
        (hit,) = store.search(question, user_id="u", k=1)
        assert hit.record.id == results[0].record.id and hit.via == question
        assert store.count(user_id="u") == 3 and len(store.list(user_id="u")) == 3
        assert before[0].via is None
        # written again: the same questions are not stored twice
        assert QuestionKeys(store, llm).expand([results[0].record]) == 0


def test_a_failing_model_is_reported_and_the_rest_go_on(tmp_path: Path,
                                                        embedder: Embedder) -> None:  # fmt: skip
    from memora.errors import GenerationError

    class Flaky(ScriptedLLM):
        def generate(self, prompt, **options):  # type: ignore[no-untyped-def]
            if "coffee" in str(prompt).rsplit("Text:", 1)[-1]:
                raise GenerationError("the model stopped")
            return super().generate(prompt, **options)

    with MemoryStore(tmp_path / "m.db", embedder=embedder) as store:
        records = [r.record for r in store.add_many(NOTES, user_id="u")]
        keys = QuestionKeys(store, Flaky([" What did I drink too much of today?"]))
        assert keys.expand(records) == 2
        assert [rid for rid, _ in keys.failed] == [records[2].id]
    with pytest.raises(ConfigError):
        QuestionKeys(None, None, n=0)


def test_the_bundled_model_writes_questions_as_keys(tmp_path: Path, embedder: Embedder) -> None:
    from memora.llm import load_model

    llm = load_model("default", n_threads=1)
    with MemoryStore(tmp_path / "m.db", embedder=embedder) as store:
        (result,) = store.add_many(["Dagny's new cockatiel is named Oreo, so cute."], user_id="u")
        with QuestionKeys(store, llm) as keys:
            (future,) = keys.submit_many([result.record])
        assert future.result() >= 1
        for key in store.keys(result.record.id, user_id="u"):
            assert key.text.endswith("?") and key.key_of == result.record.id

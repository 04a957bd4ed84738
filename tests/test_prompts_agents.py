"""Golden prompts of the memory agent: the turn prompt, the extraction prompt and the memory
tools, for fixed inputs, are checked in under ``tests/golden/agents/`` (``MEMORA_UPDATE_GOLDEN=1``
rewrites them; review the diff). User text with ``{braces}`` reaches every prompt verbatim."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from memora.agents import Extractor, MemoryAgent

from memora.embed import Embedder, load_embedder
from memora.memory.store import MemoryStore
from memora.memory.types import MemoryRecord, Scope, SearchHit
from memora.testing import ScriptedLLM

Golden = Callable[[str, object], None]

SCOPE = Scope(user_id="u", agent_id="assistant")
DAY = 86_400.0
START = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def record(n: int, text: str, days: float) -> MemoryRecord:
    return MemoryRecord(id=f"r{n}", scope=SCOPE, text=text, created_at=START + days * DAY)


def hits(*records: MemoryRecord) -> list[SearchHit]:
    return [SearchHit(record=r, score=1.0 / (i + 1), similarity=0.5) for i, r in enumerate(records)]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


@pytest.fixture
def agent(tmp_path: Path, embedder: Embedder) -> Iterator[MemoryAgent]:
    with MemoryStore(tmp_path / "m.db", embedder=embedder) as store:
        made = MemoryAgent(ScriptedLLM(["ok"]), store, user_id="u", session_id="s1",
                           extract=False, store_messages=False)  # fmt: skip
        yield made
        made.close()


def test_the_turn_prompt(agent: MemoryAgent, golden: Golden) -> None:
    golden("agents/turn_bare", agent.prompt("Hello {system}, who am I?", []))
    agent.core.set("human", "Name: Ana {core}")
    agent.core.set("persona", "A patient coach.")
    agent.journal.record(agent.scope, "I live in {Lyon}.", "Noted {reply}.", claim=False)
    agent.journal.record(agent.scope, "I keep bees.", "Nice.", claim=False)
    found = hits(
        record(1, 'The user said "hi" {message}.', 3.5),
        record(2, "The user lives in Lyon.", 0.25),
        record(3, "The user keeps bees {notes}.", 3.5),
    )
    golden("agents/turn", agent.prompt("Where do I live? {message} {notes}", found))


def test_the_extraction_prompt(golden: Golden) -> None:
    extractor = Extractor(ScriptedLLM(["{}"]))
    golden("agents/extract_new", extractor.messages("I moved to {city} last week.", []))
    nearest = [record(1, "The user lives in Lyon.", 0), record(2, 'The user likes "{tea}".', 1)]
    golden("agents/extract", extractor.messages("I moved to Paris {known}.", nearest))


def test_the_memory_tools(agent: MemoryAgent, golden: Golden) -> None:
    golden("agents/tools", json.dumps(agent.tool_specs(), indent=2))


def test_user_text_with_braces_reaches_the_prompts_verbatim(agent: MemoryAgent) -> None:
    message = "Say {system} and {core} and {notes} and {message} and {lines} {0} {}"
    agent.core.set("human", "I am {human} {value} {label}")
    noted = record(1, "Fact {message} {text} {known}", 0)
    prompt = agent.prompt(message, hits(noted))
    assert prompt[-1]["content"].endswith("\n\n" + message)
    assert json.dumps(noted.text) in prompt[-1]["content"]
    assert "<human>\nI am {human} {value} {label}\n</human>" in prompt[0]["content"]
    said = "My cat is {name}, not {user} or {known}."
    [_, user] = Extractor(ScriptedLLM(["{}"])).messages(said, [noted])
    assert json.dumps(said) in user["content"] and json.dumps(noted.text) in user["content"]


def test_a_system_text_with_braces_is_sent_as_written(tmp_path: Path, embedder: Embedder) -> None:
    with MemoryStore(tmp_path / "s.db", embedder=embedder) as store:
        agent = MemoryAgent(ScriptedLLM(["ok"]), store, user_id="u", extract=False,
                            system="Be {core} and {system}.")  # fmt: skip
        agent.core.set("human", "Name: {system}")
        [system, _] = agent.prompt("hi", [])
        assert system["content"] == (
            "Be {core} and {system}.\n\nCore memory (always true):\n<human>\nName: {system}\n"
            "</human>"
        )
        agent.close()

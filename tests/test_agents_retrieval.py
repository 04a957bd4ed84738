"""The memory agent on the store's retrieval: dates in the prompt (today's, and each memory's),
the fixed "I don't know" of a personal question that no memory answers (no model call), and
extracted facts that point to the turn they come from (and find its message). Real store and
embedder; scripted models where the model's output must be fixed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from memora.agents import ABSTAIN_TEXT, MemoryAgent
from memora.agents.abstain import first_person, personal_question

from memora.embed import Embedder, load_embedder
from memora.llm.base import as_messages
from memora.memory.store import MemoryStore
from memora.memory.types import Scope
from memora.testing import ScriptedLLM


def at(day: str) -> float:
    """Noon UTC of an ISO day, in epoch seconds."""
    return datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp()


def facts(*items: tuple[str, str, str | None]) -> str:
    """A scripted extractor answer: (text, action, id) per fact."""
    return json.dumps(
        {"facts": [{"text": t, "action": a, **({} if i is None else {"id": i})}
                   for t, a, i in items]}
    )  # fmt: skip


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


@pytest.fixture
def store(tmp_path: Path, embedder: Embedder) -> Iterator[MemoryStore]:
    with MemoryStore(tmp_path / "memories.db", embedder=embedder) as opened:
        yield opened


def quiet(llm: ScriptedLLM, store: MemoryStore, **options: Any) -> MemoryAgent:
    """An agent that stores and extracts nothing by itself (the test writes the memories)."""
    return MemoryAgent(llm, store, user_id="u", extract=False, store_messages=False, **options)


# -- dates ---------------------------------------------------------------------------------


def test_a_turn_states_today_and_the_day_of_every_memory(store: MemoryStore) -> None:
    llm = ScriptedLLM(["You ran the Berlin marathon."])
    agent = quiet(llm, store)
    scope = agent.memory_scope
    store.add("The user ran the Berlin marathon.", scope, occurred_at=at("2024-03-03"))
    store.add("The user trains for a marathon on Sundays.", scope)  # occurred when written
    days = {datetime.now(UTC).strftime("%Y-%m-%d (%A)")}
    reply = agent.chat("When did I run the Berlin marathon?")
    days.add(datetime.now(UTC).strftime("%Y-%m-%d (%A)"))  # a turn across midnight
    assert not reply.abstained and len(llm.prompts) == 1
    [system, *_, user] = [m.content for m in as_messages(llm.prompts[0])]
    assert any(f"Today is {d}." in system for d in days)
    assert '- [2024-03-03] "The user ran the Berlin marathon."' in user
    written = datetime.now(UTC).strftime("%Y-%m-%d")
    assert f'- [{written}] "The user trains for a marathon on Sundays."' in user
    assert user.index("2024-03-03") < user.index(written)  # oldest first

    pinned = agent.prompt("hi", reply.memories, now=at("2024-03-10"))
    assert "Today is 2024-03-10 (Sunday)." in pinned[0]["content"]
    assert "Today is" not in agent.prompt("hi", reply.memories)[0]["content"]  # no clock
    agent.close()


def test_recall_resolves_last_week_from_the_time_asked(store: MemoryStore) -> None:
    agent = quiet(ScriptedLLM(["ok"]), store)
    scope = agent.memory_scope
    store.add("The user went swimming at the lake.", scope, occurred_at=at("2024-01-10"))
    store.add("The user went hiking in the hills.", scope, occurred_at=at("2024-03-05"))
    for text in ("The user has a cat named Tom.", "The user's sister is called Eva."):
        store.add(text, scope, occurred_at=at("2023-06-01"))
    found = agent.recall("What did I do last week?", now=at("2024-03-12"))
    assert found[0].record.text == "The user went hiking in the hills."
    found = agent.recall("What did I do last week?", now=at("2024-01-16"))
    assert found[0].record.text == "The user went swimming at the lake."
    agent.close()


def test_the_memory_search_tool_gives_each_memory_its_date(store: MemoryStore) -> None:
    agent = quiet(ScriptedLLM(["ok"]), store)
    store.add("The user adopted a cat.", agent.memory_scope, occurred_at=at("2023-07-01"))
    result = json.loads(agent.run_tool("memory_search", {"query": "cat"}))
    assert result["memories"][0]["date"] == "2023-07-01"
    agent.close()


# -- abstention ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "personal"),
    [
        ("What is my dog called?", True),
        ("when did we go to Rome", True),  # a wh-word and a verb: a question without "?"
        ("Do you remember my sister's name?", True),
        ("I told you before. Where did I park?", True),
        ("Tell me about myself?", True),
        ("What is the capital of France?", False),
        ("Can you tell me a joke?", False),
        ("How do I bake bread?", False),
        ("I'm in Paris. What should I see?", False),
        ("Why do we dream?", False),
        ("What is the largest planet in our solar system?", False),
        ("When I was young I lived in Rome.", False),
        ("I moved to Paris last week.", False),
    ],
)
def test_which_messages_ask_about_the_users_past(message: str, personal: bool) -> None:
    assert personal_question(message) is personal


def test_a_personal_question_that_no_memory_answers_gets_no_model_call(
    store: MemoryStore,
) -> None:
    llm = ScriptedLLM(["Your dog is called Rex."])  # what a small model would invent
    agent = quiet(llm, store)
    agent.remember("The user's favourite colour is green.")

    reply = agent.chat("What is my dog called?")
    assert reply.abstained and reply.text == ABSTAIN_TEXT and reply.memories == []
    assert list(agent.stream("When did I go to Rome?")) == [ABSTAIN_TEXT]

    async def talk() -> tuple[Any, list[str], Any]:
        answered = await agent.achat("Where did we meet?")
        streamed = agent.astream("What's my sister's name?")
        return answered, [piece async for piece in streamed], streamed.reply

    answered, pieces, streamed = asyncio.run(talk())
    assert answered.abstained and pieces == [ABSTAIN_TEXT] and streamed.abstained
    assert llm.prompts == []  # not one model call
    turns = agent.history()  # the turns are recorded as usual
    assert [t.reply_text for t in turns] == [ABSTAIN_TEXT] * 4
    assert turns[0].id == reply.turn_id and turns[0].user_text == "What is my dog called?"

    general = agent.chat("What is the capital of France?")
    assert not general.abstained and general.text == "Your dog is called Rex."
    known = agent.chat("What is my favourite colour?")
    assert not known.abstained and len(llm.prompts) == 2
    assert any("green" in h.record.text for h in known.memories)
    agent.close()


@pytest.mark.parametrize(
    ("fact", "said"),
    [
        ("The user lives in Lyon.", "I live in Lyon."),
        ("The user's sister is called Ana.", "my sister is called Ana."),
        ("The user has a dog and the user studies law.", "I have a dog and I study law."),
        ("The user watches films; Ana calls the user daily.", "I watch films; Ana calls me daily."),
    ],
)
def test_facts_about_the_user_are_compared_as_the_user_says_them(fact: str, said: str) -> None:
    assert first_person(fact) == said


def test_memories_core_memory_and_this_sessions_statements_count_as_known(
    store: MemoryStore,
) -> None:
    llm = ScriptedLLM(["ok"])
    agent = quiet(llm, store)
    agent.remember("The user lives in Lyon.")  # 0.24 similar to the question as written
    assert not agent.chat("Where do I live?").abstained
    del llm.prompts[:]
    agent.core.set("human", "Name: Ana")
    assert not agent.chat("What is my name?").abstained
    agent.chat("My sister is called Eva.")  # not stored: only in this session's turns
    assert not agent.chat("What's my sister's name?").abstained
    assert len(llm.prompts) == 3
    assert agent.chat("Where did I park my car?").abstained  # nothing in reach says it
    assert len(llm.prompts) == 3

    other = quiet(llm, store, agent_id="coach")  # another session, and no core memory
    assert other.chat("What's my sister's name?").abstained  # said, but not in its reach
    off = quiet(llm, store, abstain=False)
    assert not off.chat("Where did I park my car?").abstained and len(llm.prompts) == 4
    for a in (agent, other, off):
        a.close()


def test_a_question_about_a_time_is_answered_by_what_happened_then(store: MemoryStore) -> None:
    llm = ScriptedLLM(["You went hiking."])
    agent = quiet(llm, store)
    yesterday = time.time() - 86_400
    store.add("The user went hiking in the hills.", agent.memory_scope, occurred_at=yesterday)
    reply = agent.chat("What did I do yesterday?")  # like no memory, but one happened then
    assert not reply.abstained and len(llm.prompts) == 1
    assert agent.chat("Which doctor did I see on 3 March 2001?").abstained
    agent.close()


def test_an_abstained_turn_is_extracted_like_any_other(store: MemoryStore) -> None:
    extractor = ScriptedLLM([facts()])
    agent = MemoryAgent(ScriptedLLM(["ok"]), store, user_id="u", extractor_llm=extractor)
    reply = agent.chat("What is my dog called?")
    assert reply.abstained and reply.extraction is not None
    [done] = agent.wait()
    assert done.turn_id == reply.turn_id and [t.status for t in agent.history()] == ["done"]
    assert len(extractor.prompts) == 1
    agent.close()


# -- extracted facts and their turns -------------------------------------------------------


def test_extracted_facts_point_to_their_turn_and_find_its_message(store: MemoryStore) -> None:
    colour = "The user's favourite colour is green."
    extractor = ScriptedLLM([
        facts((colour, "add", None)),
        facts(("The user's favourite colour is blue.", "update", "m1")),
    ])  # fmt: skip
    agent = MemoryAgent(ScriptedLLM(["Nice."]), store, user_id="u", extractor_llm=extractor)
    scope = agent.memory_scope
    said = "Green is my favourite colour, by the way."
    reply = agent.chat(said)
    [done] = agent.wait()
    [turn] = agent.history()
    [message] = [r for r in store.list(scope) if r.metadata.get("kind") == "message"]
    assert message.text == said and message.occurred_at == turn.created_at
    fact = store.get(str(done.actions[0].record_id), scope)
    assert fact.metadata["kind"] == "fact" and fact.metadata["source_turns"] == [reply.turn_id]
    assert fact.metadata["source_ids"] == [message.id]
    assert fact.occurred_at == turn.created_at == fact.when

    assert [k.text for k in store.keys(message.id, scope)] == [colour]
    hits = store.search("green colour", scope, mode="dense", k=5)
    via = {h.record.id: h.via for h in hits}
    assert via[message.id] == colour  # the message is found through its fact
    assert store.count(scope) == 2  # a key is no memory of its own

    time.sleep(0.01)
    later = agent.chat("My favourite colour is blue now.")
    [moved] = agent.wait()
    assert [a.kind for a in moved.actions] == ["update"]
    updated = store.get(fact.id, scope)
    second = [r for r in store.list(scope) if r.metadata.get("turn_id") == later.turn_id]
    assert updated.metadata["source_turns"] == [later.turn_id]
    assert updated.metadata["source_ids"] == [r.id for r in second if r.id != fact.id]
    agent.close()


def test_without_stored_messages_facts_still_name_their_turn(store: MemoryStore) -> None:
    extractor = ScriptedLLM([facts(("The user keeps bees.", "add", None))])
    agent = MemoryAgent(ScriptedLLM(["ok"]), store, user_id="u", extractor_llm=extractor,
                        store_messages=False)  # fmt: skip
    reply = agent.chat("I keep bees.")
    [done] = agent.wait()
    fact = store.get(str(done.actions[0].record_id), agent.memory_scope)
    assert fact.metadata["source_turns"] == [reply.turn_id] and fact.metadata["source_ids"] == []
    assert fact.occurred_at == agent.history()[0].created_at
    agent.close()


def test_neighbours_bring_the_turns_around_a_memory(store: MemoryStore) -> None:
    agent = quiet(ScriptedLLM(["Oreo."]), store, k=1, neighbours=1)
    session = Scope(user_id="u", agent_id=agent.memory_scope.agent_id, session_id="s1")
    said = ["My cousin Dagny is a pilot.", "She adopted a cockatiel last spring.",
            "It is named Oreo.", "The weather was awful all week."]  # fmt: skip
    store.add_many(said, session, occurred_at=[at("2024-03-03") + i for i in range(4)])
    question = "What is the name of the bird my cousin adopted?"
    (top,) = quiet(ScriptedLLM(["x"]), store, k=1).recall(question)
    index = said.index(top.record.text)
    expected = [said[index], *(said[i] for i in (index - 1, index + 1) if 0 <= i < len(said))]
    assert [h.record.text for h in agent.recall(question)] == expected

"""Golden prompts of the memora package: what is sent for fixed inputs is checked in under
``tests/golden/`` (``MEMORA_UPDATE_GOLDEN=1`` rewrites them; review the diff)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from memora.embed import Embedder, load_embedder
from memora.recurrent.engine import StoryEngine, render
from memora.recurrent.messages import planner_turns
from memora.recurrent.types import Premise
from memora.testing import ScriptedLLM

Golden = Callable[[str, object], None]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def test_story_prompts(tmp_path: Path, embedder: Embedder, golden: Golden) -> None:
    premise = Premise("A lighthouse keeper finds a {plan} note.", title="The Lamp", genre="mystery")
    with StoryEngine(ScriptedLLM(["x"]), tmp_path / "s.db", embedder=embedder) as engine:
        engine.create(premise)
        engine.pin("The keeper is called {Ada}.")
        context = engine._context()
        golden("story/writer", engine.writer_messages(context, "MEM {memory}", [], None, "PLAN"))
        golden("story/planner", engine.planner_messages(context, "MEM", "A paragraph {x}."))
        writer = engine.writer_messages(context, "MEM", [], None, "PLAN", lore="- Lamp: {x}",
                                        note="Eerie {plan}.", continued=True)  # fmt: skip
        golden("story/writer_continued", writer)
        golden("story/planner_continued", planner_turns(writer, "A paragraph {x}."))
    golden("story/chooser", render("chooser", memory="So far {plan}."))
    golden("story/opening_plan", render("opening_plan"))


def test_choose_prompts(golden: Golden) -> None:
    from memora.prompting.choose import label_prompt_parts, letter_prompt

    question, options = "Which door does {name} open?", ["the red door {a}", "the blue door"]
    golden("prompting/choose_letter", letter_prompt(question, options))
    head, items, tail = label_prompt_parts(question, ["B", "A"], options)
    golden("prompting/choose_label_set", "\n---\n".join([head, *items, tail]))
    assert items[0] == "B. the red door {a}\n"  # user text verbatim


def test_repair_prompt(golden: Golden) -> None:
    from memora.llm.structured import repair_messages

    messages = repair_messages([{"role": "user", "content": "Task"}], '{"x": 1}', "no {plans}")
    golden("llm/repair", messages)


def test_memory_reader_prompts(golden: Golden) -> None:
    from memora.memory.bank import DEFAULT_INSTRUCTION, Chunk, context_text, question_text

    chunks = [Chunk(0, "The key is under {mat}.", 6, 0.0), Chunk(1, "Ada left.", 3, 0.0)]
    question = question_text("Where is the {key}?", "Ada said: look down.")
    golden("memory/reader", [
        {"role": "system", "content": DEFAULT_INSTRUCTION},
        {"role": "user", "content": context_text(chunks) + question},
    ])  # fmt: skip
    golden("memory/reader_continue", context_text(chunks, "") + "Ada said: look down.")

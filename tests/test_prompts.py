"""Golden prompts of the memora package: what is sent for fixed inputs is checked in under
``tests/golden/`` (``MEMORA_UPDATE_GOLDEN=1`` rewrites them; review the diff)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from memora.embed import Embedder, load_embedder
from memora.recurrent.engine import StoryEngine, render
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
    golden("story/chooser", render("chooser", memory="So far {plan}."))
    golden("story/opening_plan", render("opening_plan"))

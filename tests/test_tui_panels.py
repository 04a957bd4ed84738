"""The main screen shows what it holds in full: three long plans (the panel scrolls) and an
error with its fix (the status line wraps)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("textual")

from memora.tui.app import build_app
from textual.containers import VerticalScroll
from textual.widgets import Static

from memora.embed import Embedder, load_embedder
from memora.errors import ContextOverflowError
from memora.recurrent.messages import PLAN_CHARS, finished_plan
from memora.recurrent.storyfile import StoryFile
from memora.recurrent.types import Premise, Step
from memora.testing import ScriptedLLM

PLAN = (
    "Mara carries the bottle down the spiral stairs to the harbour master, who reads the "
    "warning aloud twice and then sends every boat of the fleet back into port before dusk"
)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _story(path: Path) -> None:
    file = StoryFile(path)
    file.init(Premise("A keeper finds a bottle."), "fixed")
    file.add_step(Step(
        id=0, parent_id=None, depth=1, plan="open", chosen_by="opening",
        paragraph="Mara found a green bottle on the rocks at dusk. " * 3, memory="Mara, a bottle.",
        plans=tuple(f"{PLAN} ({n})." for n in (1, 2, 3)),
    ))  # fmt: skip
    file.close()


def test_a_plan_cut_by_the_schema_ends_on_a_whole_word() -> None:
    cut = (PLAN + " and the harbour " * 5)[:PLAN_CHARS]
    assert finished_plan(cut).endswith("…") and finished_plan(cut)[:-1] in cut
    assert not finished_plan(cut)[:-1].endswith(" harbo")
    assert finished_plan(PLAN) == PLAN
    sentences = "The keeper opens the bottle. " * 10
    assert finished_plan(sentences[:PLAN_CHARS]).endswith("bottle.")


@pytest.mark.anyio
async def test_plans_and_errors_are_shown_in_full(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "s.db"
    _story(path)
    app = build_app(path, llm=ScriptedLLM(["unused"]), embedder=embedder, config_file=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        plans = str(app.query_one("#plans", Static).render())
        for n in (1, 2, 3):
            assert f"{PLAN} ({n})." in " ".join(plans.split()).replace("\n", " ")
        box = app.query_one("#plans-box", VerticalScroll)
        assert box.virtual_size.height > box.scrollable_content_region.height  # it scrolls
        box.scroll_end(animate=False)
        await pilot.pause()
        assert box.scroll_y > 0
        error = ContextOverflowError(
            "the story does not fit the context of 2048 tokens: its premise takes 1900 tokens. "
            "Fix: shorten the premise or the outline, pin fewer facts, or use a larger context",
            prompt_tokens=1900, max_tokens=220, n_ctx=2048,
        )  # fmt: skip
        app.show_error(error)
        await pilot.pause()
        status = app.query_one("#status", Static)
        assert status.region.height >= 3
        shown = " ".join(str(status.render()).split())
        assert shown.endswith("or use a larger context") and "ContextOverflowError" in shown
    app.close()

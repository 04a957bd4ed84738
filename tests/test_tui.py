"""The story TUI, driven through Textual's pilot: the scripted model for the flows and the
snapshot, the bundled model for a few real steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("textual")

from memora.tui.app import NewStoryScreen, StoryApp, build_app
from textual.widgets import Input, Static, TextArea

from memora.embed import Embedder, load_embedder
from memora.recurrent import Premise
from memora.recurrent.storyfile import StoryFile
from memora.recurrent.types import Step, StepStats
from memora.testing import ScriptedLLM

SIZE = (80, 24)
PARAGRAPH = (
    "Mara climbed the spiral stairs of the lighthouse at dusk, as she had every evening for "
    "eleven years. The lamp hummed. On the rocks below, something glinted in the last light: "
    "a green bottle, corked and sealed with wax, lodged between two stones where the tide had "
    "left it. She carried it up to the lamp room and turned it over in her hands."
)
PLANS = [
    "Mara opens the bottle and reads the warning.",
    "A fisherman arrives asking about the bottle.",
    "The wind rises before Mara can open it.",
]
SUMMARY = "Mara, keeper of the Gull Rock lighthouse, found a sealed bottle on the rocks."


def plans_reply(tag: str) -> str:
    return json.dumps({"summary": f"{SUMMARY} ({tag})", "plans": [f"{p} ({tag})" for p in PLANS]})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def text_of(app: StoryApp, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


async def settle(app: StoryApp, pilot: object) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_new_story_pick_edit_undo_branch_and_reopen(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "s.db"
    llm = ScriptedLLM([
        PARAGRAPH, plans_reply("a"),
        PARAGRAPH.replace("dusk", "dawn"), plans_reply("b"),
        PARAGRAPH.replace("green", "blue"), plans_reply("c"),
        PARAGRAPH.replace("stairs", "steps"), plans_reply("d"),
    ])  # fmt: skip
    app = build_app(path, llm=llm, embedder=embedder)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, NewStoryScreen)
        await pilot.click("#premise")
        await pilot.press(*"A keeper finds a bottle.")
        await pilot.press("enter")
        await settle(app, pilot)
        opening = app.engine.head
        assert opening is not None and opening.chosen_by == "opening"
        assert "dusk" in text_of(app, "#paragraphs")
        assert "(a)" in text_of(app, "#plans")

        await pilot.press("2")
        await settle(app, pilot)
        second = app.engine.head
        assert second is not None and second.plan == opening.plans[1]
        assert second.chosen_by == "person" and "dawn" in text_of(app, "#paragraphs")
        assert "tok/s" in text_of(app, "#stats")

        await pilot.press("e")
        memory = app.query_one("#memory", TextArea)
        assert not memory.read_only and memory.has_focus
        memory.load_text("Edited: the bottle is from 1912.")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.engine.head is not None
        assert app.engine.head.memory == "Edited: the bottle is from 1912."
        assert memory.read_only

        await pilot.press("u")
        await pilot.pause()
        assert app.engine.head == opening and "dawn" not in text_of(app, "#paragraphs")

        await pilot.press("o")
        assert app.query_one("#prompt", Input).has_focus
        await pilot.press(*"The lamp fails.")
        await pilot.press("enter")
        await settle(app, pilot)
        third = app.engine.head
        assert third is not None and third.plan == "The lamp fails." and third.chosen_by == "own"

        await pilot.press("b")
        await pilot.press(*str(second.id), "enter")
        await pilot.pause()
        assert app.engine.head is not None and app.engine.head.id == second.id

        await pilot.press("p", "1", "enter")  # edit plan 1, then write it
        assert app.query_one("#prompt", Input).value == second.plans[0]
        await pilot.press("end", *" Quickly.", "enter")
        await settle(app, pilot)
        edited = app.engine.head
        assert edited is not None and edited.parent_id == second.id
        assert edited.chosen_by == "edited" and edited.plan == second.plans[0] + " Quickly."
        assert "1912" in str(llm.prompts[-2])  # the edited memory reached the writer

        await pilot.press("r", *str(opening.id), "enter")  # rewrite a past paragraph
        await pilot.pause()
        editor = app.screen.query_one("#edit-text", TextArea)
        assert editor.text == opening.paragraph
        editor.load_text("Mara found the bottle on a grey morning.")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.engine.file.step(opening.id).paragraph.startswith("Mara found the bottle")
        assert "grey morning" in text_of(app, "#paragraphs")
        await pilot.press("r", "9", "9", "enter")
        await pilot.pause()
        assert "RecordNotFoundError" in text_of(app, "#status")

        await pilot.press("e")  # esc drops a memory edit
        app.query_one("#memory", TextArea).load_text("not kept")
        await pilot.press("escape")
        await pilot.pause()
        assert app.engine.head is not None and app.engine.head.memory != "not kept"
        assert app.query_one("#memory", TextArea).read_only

        await pilot.press("x")
        await pilot.pause()
        exported = path.with_suffix(".md").read_text()
        assert "dawn" in exported and "grey morning" in exported
        assert "exported" in text_of(app, "#status")
    app.engine.close()

    reopened = build_app(path, llm=ScriptedLLM(["unused"]), embedder=embedder)
    async with reopened.run_test(size=SIZE) as pilot:
        assert not isinstance(reopened.screen, NewStoryScreen)
        assert reopened.engine.head == edited
        assert reopened.engine.file.step(second.id).memory == "Edited: the bottle is from 1912."
        assert "steps" in text_of(reopened, "#paragraphs")  # the edited plan's step is the head
    reopened.engine.close()


@pytest.mark.anyio
async def test_errors_show_in_the_status_line_and_leave_the_story(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "s.db"
    _new_story(path)
    app = build_app(path, llm=ScriptedLLM([PARAGRAPH, plans_reply("a")]), embedder=embedder,
                    max_retries=0)  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("m")
        await settle(app, pilot)
        head = app.engine.head
        app.engine.llm = ScriptedLLM(["too short"])
        await pilot.press("1")
        await settle(app, pilot)
        assert "StepError" in text_of(app, "#status") and "story is unchanged" in text_of(
            app, "#status"
        )
        assert app.engine.head == head and not app.busy
    app.engine.close()


def _new_story(path: Path, premise: str = "A keeper finds a bottle.") -> None:
    file = StoryFile(path)
    file.init(Premise(premise), "test")
    file.close()


def _fixed_story(path: Path) -> None:
    """A story written straight into the file, with fixed statistics (a stable snapshot)."""
    file = StoryFile(path)
    file.init(Premise("A keeper finds a bottle.", title="The Bottle", genre="mystery"), "fixed")
    stats = StepStats(prompt_tokens=612, evaluated_tokens=300, completion_tokens=90, seconds=3.0)
    parent = None
    for n, paragraph in enumerate([PARAGRAPH, PARAGRAPH.replace("dusk", "dawn")]):
        step = file.add_step(Step(
            id=0, parent_id=parent, depth=n + 1, plan=PLANS[0], chosen_by="person",
            paragraph=paragraph, memory=f"{SUMMARY} ({n})",
            plans=tuple(f"{p} ({n})" for p in PLANS), retrieved=(1,) if n else (), stats=stats,
        ))  # fmt: skip
        parent = step.id
    file.close()


def test_main_screen_snapshot(tmp_path: Path, embedder: Embedder, snap_compare: object) -> None:
    path = tmp_path / "s.db"
    _fixed_story(path)
    app = build_app(path, llm=ScriptedLLM(["unused"], name="scripted"), embedder=embedder)
    assert snap_compare(app, terminal_size=SIZE)  # type: ignore[operator]
    app.engine.close()


def test_new_story_screen_snapshot(
    tmp_path: Path, embedder: Embedder, snap_compare: object
) -> None:
    app = build_app(tmp_path / "new.db", llm=ScriptedLLM(["unused"]), embedder=embedder)

    async def settled(pilot: object) -> None:
        await pilot.pause()  # type: ignore[attr-defined]

    assert snap_compare(app, terminal_size=SIZE, run_before=settled)  # type: ignore[operator]
    app.engine.close()


@pytest.mark.slow
@pytest.mark.anyio
async def test_real_steps_on_the_bundled_model(tmp_path: Path, embedder: Embedder) -> None:
    from memora.llm.llamacpp import LlamaCppLLM

    llm = LlamaCppLLM("default", n_ctx=2048, n_threads=1, seed=0)
    _new_story(tmp_path / "real.db", "A lighthouse keeper finds a message in a bottle.")
    app = build_app(tmp_path / "real.db", llm=llm, embedder=embedder, paragraph_tokens=100)
    with llm:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("m")
            await settle(app, pilot)
            opening = app.engine.head
            assert opening is not None, text_of(app, "#status")
            await pilot.press("2")
            await settle(app, pilot)
            second = app.engine.head
            assert second is not None and second.parent_id == opening.id, text_of(app, "#status")
            assert second.plan == opening.plans[1]
            assert second.paragraph[:40] in text_of(app, "#paragraphs").replace("\\[", "[")

            await pilot.press("c")  # three steps, the model choosing; Esc while it streams
            for _ in range(600):
                if app._live:
                    break
                await pilot.pause(0.1)
            assert app._live and app.busy
            await pilot.press("escape")
            await settle(app, pilot)
            assert app.engine.head == second and not app.busy
            assert "cancelled" in text_of(app, "#status")
        app.engine.close()


def test_the_cli_command_is_registered() -> None:
    from click.testing import CliRunner

    from memora.cli import main

    result = CliRunner().invoke(main, ["tui", "--help"])
    assert result.exit_code == 0 and "STORY_FILE" in result.output

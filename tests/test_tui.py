"""The story TUI, driven through Textual's pilot: the scripted model for the flows and the
snapshot, the bundled model for a few real steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("textual")

from memora.tui.app import NewStoryScreen, StoryApp, build_app
from memora.tui.prompt import InputMode, PromptLine
from memora.tui.screens import KeysScreen
from memora.tui.tree import BranchScreen
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import Input, Label, OptionList, Static, TextArea, Tree

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


async def settle(app: StoryApp, pilot: Pilot[None]) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


async def to_step(app: StoryApp, pilot: Pilot[None], step_id: int) -> None:
    """Open the branch tree and move its cursor to ``step_id`` with the arrow keys."""
    await pilot.press("b")
    await pilot.pause()
    assert isinstance(app.screen, BranchScreen)
    tree = app.screen.query_one("#branch-tree", Tree)
    for key in ["up"] * 30 + ["down"] * 60:
        node = tree.cursor_node
        if node is not None and node.data is not None and node.data.id == step_id:
            return
        await pilot.press(key)
    raise AssertionError(f"step #{step_id} is not in the tree")


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

        await to_step(app, pilot, second.id)  # the undone step, a side branch now
        await pilot.press("enter")
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

        await to_step(app, pilot, opening.id)  # rewrite a past paragraph
        await pilot.press("r")
        await pilot.pause()
        editor = app.screen.query_one("#edit-text", TextArea)
        assert editor.text == opening.paragraph
        editor.load_text("Mara found the bottle on a grey morning.")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.engine.file.step(opening.id).paragraph.startswith("Mara found the bottle")
        assert "grey morning" in text_of(app, "#paragraphs")
        await pilot.press("r")  # on the main screen: the latest paragraph
        await pilot.pause()
        editor = app.screen.query_one("#edit-text", TextArea)
        assert editor.text == edited.paragraph
        await pilot.press("escape")  # dropped
        await pilot.pause()
        assert app.engine.file.step(edited.id).paragraph == edited.paragraph

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
        app.engine.configure(llm=ScriptedLLM(["too short"]))
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


def _fixed_story(path: Path, extra: int = 0) -> None:
    """A story written straight into the file, with fixed statistics (a stable snapshot);
    ``extra`` more paragraphs after the two."""
    file = StoryFile(path)
    file.init(Premise("A keeper finds a bottle.", title="The Bottle", genre="mystery"), "fixed")
    stats = StepStats(prompt_tokens=612, evaluated_tokens=300, completion_tokens=90, seconds=3.0)
    parent = None
    more = [PARAGRAPH.replace("dusk", f"hour {n}") for n in range(extra)]
    for n, paragraph in enumerate([PARAGRAPH, PARAGRAPH.replace("dusk", "dawn"), *more]):
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
async def test_a_real_session_on_the_bundled_model(tmp_path: Path, embedder: Embedder) -> None:
    """Create a story, pick plan 2, edit the memory, undo, switch branch, write an own plan,
    cancel a run of steps while it streams, then reopen the file: on SmolLM2 through llama.cpp."""
    from memora.llm.llamacpp import LlamaCppLLM

    path = tmp_path / "real.db"
    llm = LlamaCppLLM("default", n_ctx=2048, n_threads=1, seed=0)
    app = build_app(path, llm=llm, embedder=embedder, paragraph_tokens=100)
    with llm:
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, NewStoryScreen)
            await pilot.press(*"A lighthouse keeper finds a message in a bottle.", "enter")
            await settle(app, pilot)
            opening = app.engine.head
            assert opening is not None, text_of(app, "#status")
            await pilot.press("2")
            await settle(app, pilot)
            second = app.engine.head
            assert second is not None and second.parent_id == opening.id, text_of(app, "#status")
            assert second.plan == opening.plans[1] and second.chosen_by == "person"
            assert second.paragraph[:40] in text_of(app, "#paragraphs").replace("\\[", "[")

            await pilot.press("e")
            app.query_one("#memory", TextArea).load_text("The keeper is called Ivo.")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.engine.file.step(second.id).memory == "The keeper is called Ivo."

            await pilot.press("u")
            await pilot.pause()
            assert app.engine.head == opening
            await to_step(app, pilot, second.id)
            await pilot.press("enter")
            await pilot.pause()
            assert app.engine.head is not None and app.engine.head.id == second.id

            await pilot.press("o", *"Ivo rows out to the reef at night.", "enter")
            await settle(app, pilot)
            third = app.engine.head
            assert third is not None and third.parent_id == second.id, text_of(app, "#status")
            assert third.chosen_by == "own"

            await pilot.press("c", "enter")  # three steps, the model choosing; Esc mid-stream
            for _ in range(600):
                if app._live:
                    break
                await pilot.pause(0.1)
            assert app._live and app.busy
            await pilot.press("escape")
            await settle(app, pilot)
            assert app.engine.head == third and not app.busy
            assert "cancelled" in text_of(app, "#status")
        app.engine.close()

        reopened = build_app(path, llm=llm, embedder=embedder)
        async with reopened.run_test(size=SIZE) as pilot:
            assert not isinstance(reopened.screen, NewStoryScreen)
            assert reopened.engine.head == third
            assert [s.id for s in reopened.engine.path()] == [opening.id, second.id, third.id]
            assert reopened.engine.file.step(second.id).memory == "The keeper is called Ivo."
        reopened.engine.close()


def test_the_cli_command_is_registered() -> None:
    from click.testing import CliRunner

    from memora.cli import main

    result = CliRunner().invoke(main, ["tui", "--help"])
    assert result.exit_code == 0 and "STORY_FILE" in result.output


@pytest.mark.anyio
async def test_continue_n_steps_then_cancel_while_planning(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "s.db"
    _new_story(path)
    pick = [json.dumps({"answer": "B"})] * 3  # the model's choice: three shuffled votes
    replies = [
        PARAGRAPH, plans_reply("a"),
        *pick, PARAGRAPH.replace("dusk", "dawn"), plans_reply("b"),
        *pick, PARAGRAPH.replace("green", "blue"), plans_reply("c"),
    ]  # fmt: skip
    app = build_app(path, llm=ScriptedLLM(replies), embedder=embedder)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("m")
        await settle(app, pilot)
        opening = app.engine.head
        assert opening is not None

        await pilot.press("c")
        prompt = app.query_one("#prompt", Input)
        assert prompt.has_focus and prompt.value == "3"
        await pilot.press("backspace", "0", "enter")  # 0 is out of range: nothing runs
        await pilot.pause()
        assert "from 1 to" in text_of(app, "#status") and not app.busy
        await pilot.press("c", "backspace", "2", "enter")
        await settle(app, pilot)
        path_now = app.engine.path()
        assert len(path_now) == 3 and [s.chosen_by for s in path_now[1:]] == ["model"] * 2
        assert "(2/2)" in text_of(app, "#status")
        retrieved = text_of(app, "#retrieved")  # the long-term memory
        assert f"#{opening.id}" in retrieved and "Mara climbed" in retrieved
        assert path_now[-1].retrieved == (opening.id,)
        assert f"context {path_now[-1].stats.prompt_tokens}/8192" in text_of(app, "#stats")

        # A slow model: Esc while the summary and plans stream stops the step, unsaved.
        head = app.engine.head
        app.engine.configure(llm=ScriptedLLM([PARAGRAPH.replace("rocks", "reef"),
                                              plans_reply("z")], delay=0.02))  # fmt: skip
        await pilot.press("1")
        for _ in range(500):
            if "planning" in text_of(app, "#status"):
                break
            await pilot.pause(0.02)
        assert "planning" in text_of(app, "#status")
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.engine.head == head and not app.busy
        assert "cancelled" in text_of(app, "#status")
        assert len(app.engine.file.steps()) == 3
    app.close()


@pytest.mark.anyio
async def test_every_input_mode_opens_refuses_and_acts(tmp_path: Path, embedder: Embedder) -> None:
    """Each mode of the input line once, through the keys: the key that opens it shows its
    placeholder, esc closes it unanswered, an answer it cannot take is refused with nothing
    written, and the answer it takes acts (a new mode fails here until it is driven too)."""
    opens = {InputMode.STEPS: "c", InputMode.OWN_PLAN: "o", InputMode.WHICH_PLAN: "p",
             InputMode.AUTHOR_NOTE: "n", InputMode.SAVE_AS: "a"}  # fmt: skip
    assert {*opens, InputMode.EDITED_PLAN} == set(InputMode)  # EDITED_PLAN follows WHICH_PLAN
    path = tmp_path / "s.db"
    _fixed_story(path)
    llm = ScriptedLLM([
        *[json.dumps({"answer": "B"})] * 3, PARAGRAPH.replace("dusk", "noon"), plans_reply("m"),
        PARAGRAPH.replace("dusk", "night"), plans_reply("o"),
        PARAGRAPH.replace("dusk", "dawn"), plans_reply("e"),
    ])  # fmt: skip
    app = build_app(path, llm=llm, embedder=embedder)
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one("#prompt", PromptLine)
        for mode, key in opens.items():
            await pilot.press(key)
            assert prompt.mode is mode and prompt.has_focus and not prompt.has_class("hidden")
            assert prompt.placeholder == mode.placeholder == text_of(app, "#status")
            await pilot.press("escape")
            await pilot.pause()
            assert prompt.mode is None and prompt.has_class("hidden")
        assert len(app.engine.file.steps()) == 2 and app.engine.file.path == path

        async def answer(*typed: str) -> None:
            await pilot.press(*typed, "enter")
            await settle(app, pilot)

        await answer("c", "backspace", "x")  # STEPS
        assert "from 1 to 50" in text_of(app, "#status") and len(app.engine.file.steps()) == 2
        await answer("c", "backspace", "1")
        head = app.engine.head
        assert head is not None and head.chosen_by == "model" and "noon" in head.paragraph

        await answer("o")  # OWN_PLAN: an empty answer does nothing
        assert prompt.mode is None and app.engine.head == head and not app.busy
        await answer("o", *"A storm.")
        own = app.engine.head
        assert own is not None and own.parent_id == head.id
        assert (own.plan, own.chosen_by) == ("A storm.", "own")

        await answer("p", "4")  # WHICH_PLAN
        assert "type 1, 2 or 3" in text_of(app, "#status") and prompt.mode is None
        await answer("p", "2")
        assert prompt.mode is InputMode.EDITED_PLAN and prompt.value == own.plans[1]
        assert text_of(app, "#status") == InputMode.EDITED_PLAN.placeholder
        await answer("end", *" Fast.")  # EDITED_PLAN
        edited = app.engine.head
        assert edited is not None and edited.parent_id == own.id
        assert (edited.plan, edited.chosen_by) == (own.plans[1] + " Fast.", "edited")

        await pilot.press("n")  # AUTHOR_NOTE: over 500 characters is refused
        prompt.value = "x" * 501
        await answer()
        assert "500" in text_of(app, "#status") and app.engine.author_note == ""
        await answer("n", *"Grim.")
        assert app.engine.author_note == "Grim." and text_of(app, "#note") == "Grim."

        await answer("a")  # SAVE_AS, the name it offers
        assert app.engine.file.path == tmp_path / "s-copy.db" and app.engine.head == edited
        assert "saved a copy" in text_of(app, "#status")
    app.close()


@pytest.mark.anyio
async def test_new_open_and_save_as_inside_the_app(tmp_path: Path, embedder: Embedder) -> None:
    first = tmp_path / "first.db"
    _fixed_story(first)
    llm = ScriptedLLM([PARAGRAPH, plans_reply("n")])
    app = build_app(first, llm=llm, embedder=embedder)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, NewStoryScreen)
        assert app.screen.query_one("#new-path", Input).value == str(tmp_path / "story.db")
        assert app.screen.query_one("#new-model", Input).value == "default"
        await pilot.press("escape")  # back to the open story, nothing made
        await pilot.pause()
        assert not isinstance(app.screen, NewStoryScreen) and app.engine.file.path == first

        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press(*"A diver finds a bell.")
        await pilot.press("enter")
        await settle(app, pilot)
        second = tmp_path / "story.db"
        assert app.engine.file.path == second and app.sub_title == "story.db"
        assert app.engine.premise.premise == "A diver finds a bell."
        assert app.engine.head is not None and app.engine.head.chosen_by == "opening"

        await pilot.press("ctrl+o")
        await pilot.pause()
        listed = app.screen.query_one("#open-list", OptionList)
        names = [str(listed.get_option_at_index(i).prompt) for i in range(listed.option_count)]
        assert len(names) == 2 and names[0].startswith("first.db  The Bottle  (2 steps)")
        assert "(open now)" in names[1]
        await pilot.press("enter")  # the highlighted one: first.db
        await pilot.pause()
        assert app.engine.file.path == first and app.engine.premise.title == "The Bottle"
        assert "dawn" in text_of(app, "#paragraphs")

        await pilot.press("a")
        prompt = app.query_one("#prompt", Input)
        assert prompt.value == str(tmp_path / "first-copy.db")
        await pilot.press("enter")
        await pilot.pause()
        copy = tmp_path / "first-copy.db"
        assert app.engine.file.path == copy and "saved a copy" in text_of(app, "#status")
        assert [s.paragraph for s in app.engine.path()] == [
            s.paragraph for s in StoryFile(first).steps()
        ]
        await pilot.press("a")  # the same name again: refused, nothing overwritten
        prompt.value = str(copy)
        await pilot.press("enter")
        await pilot.pause()
        assert "exists already" in text_of(app, "#status") and app.engine.file.path == copy

        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("tab")  # to the path field: a file that is not a story
        other = tmp_path / "notes.txt"
        other.write_text("not a story")
        app.screen.query_one("#open-path", Input).value = str(other)
        await pilot.press("enter")
        await pilot.pause()
        assert "not a story file" in str(app.screen.query_one("#open-error", Label).content)
        await pilot.press("escape")
        await pilot.pause()
        assert app.engine.file.path == copy and other.read_text() == "not a story"
    app.close()


def test_a_file_that_is_not_a_story_is_left_alone(tmp_path: Path, embedder: Embedder) -> None:
    from memora.errors import ConfigError
    from memora.memory.store import MemoryStore

    path = tmp_path / "memories.db"
    with MemoryStore(path, embedder=embedder) as store:
        store.add("a memory, not a story", user_id="u")
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="not a story file"):
        build_app(path, llm=ScriptedLLM(["unused"]), embedder=embedder)
    assert path.read_bytes() == before


@pytest.mark.anyio
async def test_settings_apply_persist_and_reload_the_model(
    tmp_path: Path, embedder: Embedder
) -> None:
    from memora.tui.settings import SettingsScreen, TuiConfig, config_path

    from memora.llm.registry import model_path
    from memora.settings import load_settings

    path = tmp_path / "s.db"
    _fixed_story(path)
    app = build_app(path, llm=ScriptedLLM(["unused"]), embedder=embedder)
    saved = config_path(load_settings())
    assert app.config_file == saved and not saved.exists()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        temperature = app.screen.query_one("#set-temperature", Input)
        temperature.value = "0.3"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, SettingsScreen)
        assert app.engine.temperature == 0.3 and app.engine.llm.name == "scripted"
        assert TuiConfig.load(saved).temperature == 0.3
        assert "temperature 0.3" in text_of(app, "#stats")

        await pilot.press("s")  # a model file that does not exist: the screen says so
        await pilot.pause()
        app.screen.query_one("#set-model", Input).value = str(tmp_path / "missing.gguf")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        assert "missing.gguf" in str(app.screen.query_one("#set-error", Label).content)

        app.screen.query_one("#set-model", Input).value = "default"  # the bundled model
        app.screen.query_one("#set-ctx", Input).value = "1024"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.engine.llm.name != "scripted" and app.engine.llm.n_ctx == 1024
        assert app.owns_llm and "using" in text_of(app, "#status")
        stored = TuiConfig.load(saved)
        assert (stored.model, stored.n_ctx, stored.temperature) == ("default", 1024, 0.3)
    app.close()

    # The next start reads the saved settings (and loads that model).
    again = build_app(path, embedder=embedder)
    assert again.engine.llm.n_ctx == 1024 and again.engine.temperature == 0.3
    again.close()
    # A model for this run only (the CLI's --model) overrides the saved one, unsaved.
    gguf = str(model_path("default"))
    override = build_app(path, embedder=embedder, model=gguf)
    assert override.config.model == gguf and override.config.temperature == 0.3
    assert override.engine.llm.n_ctx == 1024 and TuiConfig.load(saved).model == "default"
    override.close()


@pytest.mark.anyio
async def test_a_model_for_this_run_only_is_never_saved(tmp_path: Path, embedder: Embedder) -> None:
    from memora.tui.settings import TuiConfig, config_path

    from memora.llm.registry import model_path
    from memora.settings import load_settings

    path = tmp_path / "s.db"
    _fixed_story(path)
    saved = config_path(load_settings())
    TuiConfig(model="default", temperature=0.8).save(saved)
    gguf = str(model_path("default"))
    app = build_app(path, llm=ScriptedLLM(["unused"]), embedder=embedder, model=gguf)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await pilot.pause()
        assert app.screen.query_one("#set-model", Input).value == gguf  # what runs now
        app.screen.query_one("#set-temperature", Input).value = "0.4"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.config.model == gguf and app.engine.temperature == 0.4
        stored = TuiConfig.load(saved)
        assert (stored.model, stored.temperature) == ("default", 0.4)
    app.close()


@pytest.mark.anyio
async def test_the_keys_panel_lists_every_action(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "s.db"
    _fixed_story(path, extra=3)
    app = build_app(path, llm=ScriptedLLM(["unused"]), embedder=embedder)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        listed = str(app.screen.query_one("#keys-list", Static).content)
        for binding in StoryApp.BINDINGS:
            assert isinstance(binding, Binding) and binding.tooltip
            assert binding.tooltip in listed
        assert "^o" in listed and "esc" in listed
        await pilot.press("space")  # any key closes it
        await pilot.pause()
        assert not isinstance(app.screen, KeysScreen)

        story = app.query_one("#story", VerticalScroll)  # the story scrolls from the keyboard
        assert story.has_focus and story.max_scroll_y > 0
        assert story.scroll_y == story.max_scroll_y  # it opens at the end
        await pilot.press("home")
        await pilot.pause()
        assert story.scroll_y == 0
        await pilot.press("pagedown")
        await pilot.pause()
        assert story.scroll_y > 0
    actions = {b.action for b in StoryApp.BINDINGS if isinstance(b, Binding)}
    for needed in ("pick(2)", "model_picks", "continue_steps", "own_plan", "edit_plan",
                   "edit_memory", "rewrite", "undo", "branches", "export", "save_as",
                   "new_story", "open_story", "settings", "cancel"):  # fmt: skip
        assert needed in actions
    app.close()


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_new_story_on_another_model_served_by_an_endpoint(
    tmp_path: Path, embedder: Embedder, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ctrl+n with the model set to the OpenAI-compatible server (its URL and key from the
    environment): the model is loaded in a worker, then the opening is written through it; the
    key from the environment is not written to the settings file."""
    from conftest import SERVER_KEY, SERVER_MODEL
    from memora.tui.settings import TuiConfig, config_path

    from memora.llm.openai import OpenAILLM
    from memora.settings import load_settings

    monkeypatch.setenv("MEMORA_OPENAI_BASE_URL", server_url)
    monkeypatch.setenv("MEMORA_OPENAI_API_KEY", SERVER_KEY)
    first = tmp_path / "first.db"
    _fixed_story(first)
    app = build_app(first, llm=ScriptedLLM(["unused"]), embedder=embedder, paragraph_tokens=60)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press(*"A diver finds a bell.")
        app.screen.query_one("#new-model", Input).value = f"openai:{SERVER_MODEL}"
        await pilot.press("enter")
        for _ in range(3):  # the model loads, then the opening is written: two workers
            await settle(app, pilot)
        assert isinstance(app.engine.llm, OpenAILLM), text_of(app, "#status")
        assert app.engine.file.path == tmp_path / "story.db"
        head = app.engine.head
        assert head is not None and head.chosen_by == "opening", text_of(app, "#status")
        assert head.paragraph[:30] in text_of(app, "#paragraphs").replace("\\[", "[")
        assert app.config.model == f"openai:{SERVER_MODEL}"
    app.close()
    saved = TuiConfig.load(config_path(load_settings()))
    assert saved.model == f"openai:{SERVER_MODEL}" and saved.openai_api_key is None
    assert SERVER_KEY not in config_path(load_settings()).read_text()


def test_the_tui_modules_stay_small_and_layered() -> None:
    """Every module of the TUI under 400 lines, every function under 60 lines with at most 10
    parameters, and nothing imports the app module back (it sits on top of the rest)."""
    import ast

    folder = Path(__file__).resolve().parent.parent / "tui"
    for path in sorted(folder.glob("*.py")):
        text = path.read_text("utf-8")
        assert len(text.splitlines()) < 400, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and path.name != "app.py":
                assert node.module != "memora.tui.app", path.name
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                count = len(args.posonlyargs + args.args + args.kwonlyargs)
                count += (args.vararg is not None) + (args.kwarg is not None)
                assert (node.end_lineno or 0) - node.lineno < 60, (path.name, node.name)
                assert count <= 10, (path.name, node.name)


@pytest.mark.parametrize("key", ["question_mark", "ctrl+o", "b"])
def test_pop_up_snapshots(
    tmp_path: Path, embedder: Embedder, snap_compare: object, key: str
) -> None:
    """The keys list, the open screen and the branch tree at 80x24 (file names are fixed: the
    snapshot must not show the temporary folder)."""
    path = tmp_path / "s.db"
    _fixed_story(path)
    app = build_app(path, llm=ScriptedLLM(["unused"], name="scripted"), embedder=embedder)

    async def open_it(pilot: Pilot[None]) -> None:
        await pilot.press(key)
        await pilot.pause()
        if key == "ctrl+o":  # the folder name varies: show a fixed one
            app.screen.query_one("#open-path", Input).value = "stories/"
            app.screen.query_one(Label).update("Open a story (enter opens, tab: type a path, esc)")
            await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_it)  # type: ignore[operator]
    app.engine.close()

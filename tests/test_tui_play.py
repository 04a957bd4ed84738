"""The story TUI's versions and world, driven through Textual's pilot with the scripted model:
swipes and flicking between them, the author's note, the lorebook screen, and the story
bible's proposals; snapshots of the screens at 80x24."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("textual")

from memora.tui.app import StoryApp, build_app
from memora.tui.lore import LoreForm, LoreScreen
from memora.tui.proposals import ProposalsScreen
from test_tui import PARAGRAPH, SIZE, _fixed_story, plans_reply, settle, text_of
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, Static

from memora.embed import Embedder, load_embedder
from memora.recurrent.storyfile import StoryFile
from memora.recurrent.types import Step, StepStats
from memora.testing import ScriptedLLM


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def _with_a_second_version(path: Path) -> None:
    """The fixed story, its latest paragraph with a second version (fixed statistics)."""
    _fixed_story(path)
    file = StoryFile(path)
    head = file.steps()[-1]
    stats = StepStats(prompt_tokens=640, evaluated_tokens=300, completion_tokens=80, seconds=2.0)
    file.add_step(Step(
        id=0, parent_id=head.parent_id, depth=head.depth, plan=head.plan, chosen_by="person",
        paragraph=PARAGRAPH.replace("dusk", "midnight"), memory=head.memory + " (v2)",
        plans=head.plans, retrieved=head.retrieved, stats=stats,
    ))  # fmt: skip
    file.close()


def message(screen: object, selector: str) -> str:
    return str(screen.query_one(selector, Label).content)  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_swipes_write_versions_and_the_brackets_flick_between_them(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "s.db"
    _fixed_story(path)
    llm = ScriptedLLM([PARAGRAPH.replace("dusk", "noon"), plans_reply("w"),
                       PARAGRAPH.replace("dusk", "night"), plans_reply("n")])  # fmt: skip
    app = build_app(path, llm=llm, embedder=embedder)
    async with app.run_test(size=SIZE) as pilot:
        first = app.engine.head
        assert first is not None
        await pilot.press("right_square_bracket")  # one version: nothing to flick to
        assert "one version" in text_of(app, "#status") and app.engine.head == first

        await pilot.press("w")
        await settle(app, pilot)
        second = app.engine.head
        assert second is not None and second.id != first.id
        assert (second.parent_id, second.plan) == (first.parent_id, first.plan)
        assert "noon" in second.paragraph and "noon" in text_of(app, "#paragraphs")
        assert "dawn" not in text_of(app, "#paragraphs")  # the other version is not shown
        assert "version 2 of 2" in text_of(app, "#status")
        assert "version 2 of 2" in text_of(app, "#stats")

        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert app.engine.head == first and "dawn" in text_of(app, "#paragraphs")
        assert "version 1 of 2" in text_of(app, "#status") + text_of(app, "#stats")
        await pilot.press("left_square_bracket")  # the first stays the first
        assert app.engine.head == first and "version 1 of 2" in text_of(app, "#status")
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert app.engine.head == second and "noon" in text_of(app, "#paragraphs")

        await pilot.press("1")  # continuing writes from the version shown
        await settle(app, pilot)
        after = app.engine.head
        assert after is not None and after.parent_id == second.id
        assert [s.id for s in app.engine.swipes(second.id)] == [first.id, second.id]
    app.close()


@pytest.mark.anyio
async def test_esc_cancels_a_swipe_and_the_head_stays(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "s.db"
    _fixed_story(path)
    llm = ScriptedLLM([PARAGRAPH.replace("dusk", "noon"), plans_reply("w")], delay=0.02)
    app = build_app(path, llm=llm, embedder=embedder)
    async with app.run_test(size=SIZE) as pilot:
        head = app.engine.head
        await pilot.press("w")
        for _ in range(500):
            if "Mara" in text_of(app, "#live"):
                break
            await pilot.pause(0.02)
        assert app.busy and "Mara" in text_of(app, "#live")
        await pilot.press("escape")
        await settle(app, pilot)
        assert "cancelled" in text_of(app, "#status") and not app.busy
        assert app.engine.head == head and len(app.engine.swipes()) == 1
    app.close()


@pytest.mark.anyio
async def test_the_authors_note_is_set_shown_refused_and_cleared(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "s.db"
    _fixed_story(path)
    app = build_app(path, llm=ScriptedLLM(["unused"]), embedder=embedder)
    async with app.run_test(size=SIZE) as pilot:
        note = app.query_one("#note", Static)
        assert not note.display  # no note: no heading, no text
        await pilot.press("n", *"Keep it grim.", "enter")
        await pilot.pause()
        assert app.engine.author_note == "Keep it grim."
        assert note.display and text_of(app, "#note") == "Keep it grim."

        await pilot.press("n")
        prompt = app.query_one("#prompt", Input)
        assert prompt.has_focus and prompt.value == "Keep it grim."  # the note, to edit
        prompt.value = "x" * 501
        await pilot.press("enter")
        await pilot.pause()
        assert "ConfigError" in text_of(app, "#status") and "500" in text_of(app, "#status")
        assert app.engine.author_note == "Keep it grim."

        await pilot.press("n", "escape")  # esc leaves it
        assert app.engine.author_note == "Keep it grim."
        await pilot.press("n")
        prompt.value = ""
        await pilot.press("enter")  # empty clears it
        await pilot.pause()
        assert app.engine.author_note == "" and not note.display
    app.close()


async def fill_form(pilot: Pilot[None], **fields: str) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, LoreForm)
    for name, value in fields.items():
        screen.query_one(f"#lore-{name}", Input).value = value
    screen.query_one("#lore-name", Input).focus()
    await pilot.press("enter")
    await pilot.pause()


@pytest.mark.anyio
async def test_the_lore_screen_adds_edits_removes_and_undoes(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "s.db"
    _fixed_story(path)
    app = build_app(path, llm=ScriptedLLM(["unused"]), embedder=embedder)
    async with app.run_test(size=SIZE) as pilot:
        book = app.engine.lore
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LoreScreen)
        assert "no entries yet" in message(app.screen, "#lore-message")

        await pilot.press("a")
        await pilot.pause()
        await fill_form(pilot, name="Gull Rock", keys="lighthouse, /gull rock/",
                        text="A lighthouse on a rock.", priority="two")  # fmt: skip
        assert "type a whole number" in message(app.screen, "#lore-form-error")
        await fill_form(pilot, priority="2", keys="/[unclosed/")
        assert "ConfigError" in message(app.screen, "#lore-form-error")
        assert book.entries() == []  # nothing stored while refused
        await fill_form(pilot, keys="lighthouse, /gull rock/", always="yes")
        assert isinstance(app.screen, LoreScreen)
        (entry,) = book.entries()
        assert (entry.name, entry.keys, entry.priority, entry.always) == (
            "Gull Rock", ("lighthouse", "/gull rock/"), 2, True,
        )  # fmt: skip
        table = app.screen.query_one("#lore-table", DataTable)
        assert table.row_count == 1 and "Gull Rock" in str(table.get_row_at(0)[0])

        await pilot.press("enter")  # edit the row under the cursor
        await pilot.pause()
        assert app.screen.query_one("#lore-priority", Input).value == "2"
        await fill_form(pilot, priority="5", always="no")
        assert (book.get(entry.id).priority, book.get(entry.id).always) == (5, False)
        assert "edited" in message(app.screen, "#lore-message")

        await pilot.press("d")
        await pilot.pause()
        assert book.entries() == [] and "removed" in message(app.screen, "#lore-message")
        await pilot.press("u")  # undo the removal
        await pilot.pause()
        assert book.get(entry.id).priority == 5 and table.row_count == 1
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, LoreScreen)
    app.close()


def _proposals_llm() -> ScriptedLLM:
    return ScriptedLLM([json.dumps({"changes": [
        {"action": "add", "name": "Mara", "text": "Mara keeps the lighthouse every evening."},
        {"action": "update", "name": "the lamp", "text": "The lamp hums when it is lit."},
    ]})])  # fmt: skip


@pytest.mark.anyio
async def test_bible_proposals_are_accepted_or_rejected_one_by_one(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "s.db"
    _fixed_story(path)
    app = build_app(path, llm=_proposals_llm(), embedder=embedder)
    lamp = app.engine.lore.add("the lamp", "A great lens.", keys=["lamp"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("L")
        await settle(app, pilot)
        assert isinstance(app.screen, ProposalsScreen)
        shown = str(app.screen.query_one("#proposal", Static).content)
        assert "add a new entry" in shown and "Mara keeps the lighthouse" in shown
        await pilot.press("y")
        await pilot.pause()
        shown = str(app.screen.query_one("#proposal", Static).content)
        assert "the lamp" in shown and "1 accepted" in message(app.screen, "#proposal-count")
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ProposalsScreen)
        assert "applied: Mara" in text_of(app, "#status")
        names = {e.name: e for e in app.engine.lore.entries()}
        assert set(names) == {"the lamp", "Mara"} and names["the lamp"] == lamp
        assert "every evening" in names["Mara"].text

        app.engine.configure(llm=_proposals_llm())  # esc drops them all
        await pilot.press("L")
        await settle(app, pilot)
        await pilot.press("y", "escape")
        await pilot.pause()
        assert "no lore changes" in text_of(app, "#status")
        assert len(app.engine.lore.entries()) == 2
    app.close()


def _snapshot_app(path: Path, embedder: Embedder, llm: ScriptedLLM | None = None) -> StoryApp:
    return build_app(path, llm=llm or ScriptedLLM(["unused"], name="scripted"), embedder=embedder)


def test_lore_screen_snapshot(tmp_path: Path, embedder: Embedder, snap_compare: object) -> None:
    path = tmp_path / "s.db"
    _fixed_story(path)
    app = _snapshot_app(path, embedder)
    app.engine.lore.add("Gull Rock", "The lighthouse Mara keeps, on a rock.", keys=["lighthouse"],
                        priority=2, always=True)  # fmt: skip
    app.engine.lore.add("the bottle", "Green glass, sealed with wax.", keys=["bottle", "/wax/"])

    async def open_it(pilot: Pilot[None]) -> None:
        await pilot.press("l")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_it)  # type: ignore[operator]
    app.engine.close()


def test_proposals_screen_snapshot(
    tmp_path: Path, embedder: Embedder, snap_compare: object
) -> None:
    path = tmp_path / "s.db"
    _fixed_story(path)
    app = _snapshot_app(path, embedder, _proposals_llm())
    app.engine.lore.add("the lamp", "A great lens.", keys=["lamp"])

    async def open_it(pilot: Pilot[None]) -> None:
        await pilot.press("L")
        await app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_it)  # type: ignore[operator]
    app.engine.close()


def test_main_screen_version_snapshot(
    tmp_path: Path, embedder: Embedder, snap_compare: object
) -> None:
    """The latest paragraph has two versions: [ shows the first, "version 1 of 2"."""
    path = tmp_path / "s.db"
    _with_a_second_version(path)
    app = _snapshot_app(path, embedder)

    async def flick(pilot: Pilot[None]) -> None:
        await pilot.press("left_square_bracket")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=flick)  # type: ignore[operator]
    app.engine.close()


@pytest.mark.anyio
async def test_the_keys_list_scrolls_to_the_new_keys(tmp_path: Path, embedder: Embedder) -> None:
    from memora.tui.screens import KeysScreen
    from textual.containers import VerticalScroll

    path = tmp_path / "s.db"
    _fixed_story(path)
    app = build_app(path, llm=ScriptedLLM(["unused"]), embedder=embedder)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        listed = str(app.screen.query_one("#keys-list", Static).content)
        for what in ("another version", "version before", "author's note", "lorebook"):
            assert what in listed
        keys = app.screen.query_one("#keys", VerticalScroll)
        assert keys.max_scroll_y > 0 and keys.scroll_y == 0
        await pilot.press("end")  # scrolls, stays open
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen) and keys.scroll_y == keys.max_scroll_y
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, KeysScreen)
    app.close()

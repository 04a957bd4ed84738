"""Playing a story: swipes (other versions of the latest paragraph), the author's note, lore in
the prompt, the story bible in autonomous mode, and cache slots on the bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memora.embed import Embedder, load_embedder
from memora.errors import ConfigError
from memora.llm.llamacpp import LlamaCppLLM
from memora.recurrent import Premise, StoryEngine
from memora.recurrent.bible import LoreChange
from memora.testing import ScriptedLLM

PREMISE = Premise("A lighthouse keeper finds a message in a bottle.", title="The Bottle")
PARAGRAPH = (
    "Mara climbed the spiral stairs of the Gull Rock lighthouse at dusk, as she had every "
    "evening for eleven years. On the rocks below, a green bottle glinted, corked and sealed "
    "with wax, lodged between two stones where the tide had left it. She carried it up to the "
    "lamp room."
)
PLANS = {
    "summary": "Mara, keeper of the lighthouse, found a sealed green bottle on the rocks.",
    "plans": [
        "Mara opens the bottle and reads the warning.",
        "A fisherman arrives asking about the bottle.",
        "The wind rises before Mara can open it.",
    ],
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def _plans(tag: str) -> str:
    return json.dumps({**PLANS, "plans": [f"{p} ({tag})" for p in PLANS["plans"]]})


def _bible(*changes: dict[str, object]) -> str:
    return json.dumps({"changes": list(changes)})


def test_swipes_keep_versions_as_siblings_and_flick_between_them(
    tmp_path: Path, embedder: Embedder
) -> None:
    second_text, other = PARAGRAPH.replace("dusk", "dawn"), PARAGRAPH.replace("green", "blue")
    llm = ScriptedLLM([PARAGRAPH, _plans("a"), second_text, _plans("b"), other, _plans("c")])
    with StoryEngine(llm, tmp_path / "s.db", embedder=embedder) as engine:
        engine.create(PREMISE)
        with pytest.raises(ConfigError, match="write a step"):
            engine.swipe()
        opening = engine.step()
        second = engine.step(opening.plans[0])
        swiped = engine.swipe()
        assert swiped.parent_id == second.parent_id == opening.id
        assert swiped.plan == second.plan and swiped.paragraph == other
        assert engine.head == swiped
        assert [s.id for s in engine.swipes()] == [second.id, swiped.id]
        assert engine.flick(-1).id == second.id and engine.head.id == second.id
        assert engine.flick(-1).id == second.id  # stops at the first
        assert engine.flick(+1).id == swiped.id
        assert [s.id for s in engine.path()] == [opening.id, swiped.id]


def test_a_failed_swipe_leaves_the_head(tmp_path: Path, embedder: Embedder) -> None:
    llm = ScriptedLLM([PARAGRAPH, _plans("a")] + ["too short"] * 8)
    with StoryEngine(llm, tmp_path / "s.db", embedder=embedder, max_retries=1) as engine:
        engine.create(PREMISE)
        opening = engine.step()
        with pytest.raises(Exception, match="no usable paragraph"):
            engine.swipe()
        assert engine.head == opening and engine.swipes() == [opening]


def test_the_authors_note_and_triggered_lore_reach_the_writer(
    tmp_path: Path, embedder: Embedder
) -> None:
    llm = ScriptedLLM([PARAGRAPH, _plans("a"), PARAGRAPH.replace("dusk", "dawn"), _plans("b")])
    with StoryEngine(llm, tmp_path / "s.db", embedder=embedder) as engine:
        engine.create(PREMISE)
        engine.lore.add("Green bottle", "The bottle holds a storm warning.", keys=("bottle",))
        engine.lore.add("Pepper", "Mara's dog is called Pepper.", keys=("dog",))
        engine.set_author_note("Keep the tone eerie.")
        assert engine.author_note == "Keep the tone eerie."
        with pytest.raises(ConfigError, match="500"):
            engine.set_author_note("x" * 600)
        opening = engine.step()
        first = llm.prompts[0][1]["content"]  # type: ignore[index]
        assert "World notes" not in first  # the opening plan names no key
        assert first.index("Author's note: Keep the tone eerie.") < first.index("Last paragraph")
        engine.set_author_note("")
        engine.step(opening.plans[0])
        second = llm.prompts[2][1]["content"]  # type: ignore[index]
        assert "World notes:\n- Green bottle: The bottle holds a storm warning." in second
        assert "Pepper" not in second  # not triggered
        assert "Author's note" not in second


def test_the_bible_applies_only_grounded_changes_in_autonomous_mode(
    tmp_path: Path, embedder: Embedder
) -> None:
    grounded = {"action": "add", "name": "Gull Rock", "text": "The lighthouse on Gull Rock."}
    invented = {"action": "add", "name": "Mara", "text": "Mara owns a golden ship and a parrot."}
    llm = ScriptedLLM([PARAGRAPH, _plans("a"), _bible(grounded, invented)])
    with StoryEngine(llm, tmp_path / "s.db", embedder=embedder, bible="auto") as engine:
        engine.create(PREMISE)
        step = engine.step()
        assert (step.stats.lore_applied, step.stats.lore_rejected) == (1, 1)
        assert [e.name for e in engine.lore.entries()] == ["Gull Rock"]
        assert all("golden" not in e.text for e in engine.lore.entries())
        (item,) = engine.lore.history()
        assert item.actor == "bible"
        engine.lore.undo(item.id)
        assert engine.lore.entries() == []
    with StoryEngine(llm, tmp_path / "s.db", embedder=embedder) as engine:
        assert engine.head is not None and engine.head.stats.lore_rejected == 1


def test_a_person_applies_the_proposals_they_accept(tmp_path: Path, embedder: Embedder) -> None:
    llm = ScriptedLLM([PARAGRAPH, _plans("a")])
    with StoryEngine(llm, tmp_path / "s.db", embedder=embedder) as engine:
        engine.create(PREMISE)
        engine.step()
        accepted = LoreChange("add", "Lamp room", ("lamp room",), "Mara keeps the bottle here.")
        engine.apply_lore([accepted])
        assert [e.name for e in engine.lore.entries()] == ["Lamp room"]
    with pytest.raises(ConfigError, match="bible"):
        StoryEngine(llm, tmp_path / "t.db", embedder=embedder, bible="sometimes")


def test_cache_slots_serve_more_of_each_step_from_the_cache(
    tmp_path: Path, embedder: Embedder, gguf_path: Path
) -> None:
    shares = {}
    for slots in (True, False):
        with LlamaCppLLM(gguf_path, n_ctx=4096, n_threads=1) as llm:
            path = tmp_path / f"{slots}.db"
            with StoryEngine(llm, path, embedder=embedder, cache_slots=slots,
                             paragraph_tokens=60, plan_tokens=160) as engine:  # fmt: skip
                engine.create(PREMISE)
                steps = []
                for _ in range(3):
                    try:
                        steps.append(engine.step())
                    except Exception:  # noqa: BLE001 - a small model may fail a step
                        continue
                later = [s.stats for s in steps[1:]]
                assert later, "the bundled model completed no step after the opening"
                shares[slots] = sum(s.cached_tokens for s in later) / sum(
                    s.prompt_tokens for s in later
                )
    assert shares[True] > shares[False] + 0.1


def test_the_continued_layout_gives_the_planner_the_writers_whole_prompt(
    tmp_path: Path, embedder: Embedder
) -> None:
    llm = ScriptedLLM([PARAGRAPH, _plans("a")])
    with StoryEngine(llm, tmp_path / "s.db", embedder=embedder, layout="continued") as engine:
        engine.create(PREMISE)
        engine.step()
    writer, planner = llm.prompts[0], llm.prompts[1]
    assert isinstance(writer, list) and isinstance(planner, list)
    assert planner[: len(writer)] == writer
    assert planner[len(writer)] == {"role": "assistant", "content": PARAGRAPH}
    assert "summary" in planner[-1]["content"]
    with pytest.raises(ConfigError, match="layout"):
        StoryEngine(llm, tmp_path / "t.db", embedder=embedder, layout="joined")

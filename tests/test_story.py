"""The story engine: prompts, persistence, editing, failure handling, and a few real steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from memora.cli import main
from memora.embed import Embedder, load_embedder
from memora.errors import ConfigError
from memora.llm.llamacpp import LlamaCppLLM
from memora.recurrent import Premise, StepError, StoryEngine
from memora.recurrent.storyfile import StoryFile
from memora.testing import ScriptedLLM

PREMISE = Premise(
    "A lighthouse keeper finds a message in a bottle that predicts storms.",
    title="The Bottle",
    genre="mystery",
    outline="1. The bottle. 2. A storm comes true. 3. The writer is found.",
)
PARAGRAPH = (
    "Mara climbed the spiral stairs of the lighthouse at dusk, as she had every evening for "
    "eleven years. The lamp hummed. On the rocks below, something glinted in the last light: "
    "a green bottle, corked and sealed with wax, lodged between two stones where the tide had "
    "left it. She carried it up to the lamp room and turned it over in her hands."
)
PLANS = {
    "summary": "Mara, keeper of the Gull Rock lighthouse, found a sealed bottle on the rocks.",
    "plans": [
        "Mara opens the bottle and reads the warning.",
        "A fisherman arrives asking about the bottle.",
        "The wind rises before Mara can open it.",
    ],
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def scripted(*replies: str) -> ScriptedLLM:
    return ScriptedLLM(replies)


def plans_reply(tag: str, summary: str = PLANS["summary"]) -> str:  # type: ignore[assignment]
    """A valid summary-and-plans answer whose plans differ by ``tag``."""
    return json.dumps({"summary": summary, "plans": [f"{p} ({tag})" for p in PLANS["plans"]]})


def test_prompts_keep_the_outline_and_go_from_stable_to_volatile(
    tmp_path: Path, embedder: Embedder
) -> None:
    with StoryEngine(scripted(PARAGRAPH), tmp_path / "s.db", embedder=embedder) as engine:
        engine.create(PREMISE)
        engine.pin("Mara is afraid of deep water.")
        messages = engine.writer_messages(engine._context(), "the memory", [], None, "the plan")
        user = messages[1]["content"]
        assert user == (
            "Title: The Bottle\nGenre: mystery\nPremise: A lighthouse keeper finds a message in a "
            "bottle that predicts storms.\nOutline: 1. The bottle. 2. A storm comes true. 3. The "
            "writer is found.\nFacts to keep: Mara is afraid of deep water.\n"
            "Story so far: the memory\n\nEarlier passages that matter now:\n(none)\n\n"
            "Last paragraph:\n(the story has not started)\n\nPlan for the next paragraph: the plan"
            "\n\nTask: write the next paragraph of the story, following the plan. Concrete and "
            "vivid, past tense, 80 to 150 words. No headings, notes or questions; do not repeat "
            "earlier sentences."
        )
        # Lore follows the story's facts; the author's note sits just before the last paragraph.
        full = engine.writer_messages(
            engine._context(),
            "the memory",
            [],
            None,
            "the plan",
            lore="- Gull Rock: a lighthouse",
            note="Keep it eerie.",
        )
        text = full[1]["content"]
        assert text.index("Facts to keep") < text.index("World notes:\n- Gull Rock")
        assert text.index("Gull Rock") < text.index("Story so far")
        assert text.index("Earlier passages") < text.index("Author's note: Keep it eerie.")
        assert text.index("Author's note") < text.index("Last paragraph")
        planner = engine.planner_messages(engine._context(), "the memory", "new text")
        shared = user[: user.index("Earlier passages")]
        assert planner[-1]["content"].startswith(shared)  # the KV prefix both calls reuse
        assert planner[0] == messages[0]


def test_steps_are_saved_and_can_be_undone_branched_and_edited(
    tmp_path: Path, embedder: Embedder
) -> None:
    dawn, blue = PARAGRAPH.replace("dusk", "dawn"), PARAGRAPH.replace("green", "blue")
    llm = scripted(PARAGRAPH, json.dumps(PLANS), dawn, plans_reply("b"), blue, plans_reply("c"))
    path = tmp_path / "s.db"
    with StoryEngine(llm, path, embedder=embedder) as engine:
        engine.create(PREMISE)
        opening = engine.step()
        assert opening.chosen_by == "opening" and opening.depth == 1
        assert opening.memory == PLANS["summary"] and list(opening.plans) == PLANS["plans"]
        second = engine.step(opening.plans[1], chosen_by="person")
        assert second.parent_id == opening.id and second.plan == opening.plans[1]
        assert engine.undo() == opening
        third = engine.step("My own plan: the lamp fails.", chosen_by="own")
        assert third.parent_id == opening.id  # a second branch from the opening
        engine.edit_paragraph(opening.id, "Mara found the bottle on a grey morning.")
        engine.edit_memory("Edited memory: the bottle is blue.")
    with StoryEngine(scripted("unused"), path, embedder=embedder) as reopened:
        assert [s.id for s in reopened.path()] == [opening.id, third.id]
        assert reopened.head is not None and reopened.head.memory.startswith("Edited memory")
        assert reopened.path()[0].paragraph == "Mara found the bottle on a grey morning."
        hits = reopened.store.search("grey morning", agent_id=reopened._scope, mode="lexical")
        assert hits and hits[0].record.metadata["step_id"] == opening.id
        assert len(reopened.file.steps()) == 3
        assert reopened.branch(second.id) == second
        markdown = reopened.export_markdown()
        assert markdown.startswith("# The Bottle\n") and "dawn" in markdown
        assert [e[1] for e in reopened.file.edits()] == ["paragraph", "memory"]


def test_unusable_output_fails_the_step_and_changes_nothing(
    tmp_path: Path, embedder: Embedder
) -> None:
    path = tmp_path / "s.db"
    with StoryEngine(scripted(PARAGRAPH, json.dumps(PLANS)), path, embedder=embedder,
                     max_retries=2) as engine:  # fmt: skip
        engine.create(PREMISE)
        opening = engine.step()
        engine.llm = scripted("too short")  # every paragraph attempt is unusable
        with pytest.raises(StepError, match="3 attempts") as info:
            engine.step(opening.plans[0])
        assert len(info.value.outputs) == 3
        bad_plans = '{"summary": "1", "plans": ["1", "1", "1"]}'  # placeholders, as small models do
        engine.llm = scripted(PARAGRAPH.replace("dusk", "midnight"), bad_plans)
        with pytest.raises(StepError, match="summary and plans"):
            engine.step(opening.plans[0])
        assert engine.head == opening and len(engine.file.steps()) == 1
        # retries are told what was wrong
        last_prompt = engine.llm.prompts[-1]
        assert isinstance(last_prompt, list) and "not usable" in last_prompt[-1]["content"]


class SeedRecorder(ScriptedLLM):
    """A scripted model that records the seed of every call."""

    seeds: list[int | None]

    def _run(self, prompt, options, schema):  # type: ignore[no-untyped-def]
        self.seeds = [*getattr(self, "seeds", []), options.seed]
        return super()._run(prompt, options, schema)


def test_a_failed_step_is_tried_again_with_other_seeds(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "s.db"
    llm = SeedRecorder(["too short"])
    with StoryEngine(llm, path, embedder=embedder, max_retries=1, seed=7) as engine:
        engine.create(PREMISE)
        with pytest.raises(StepError, match="seeds 7-8"):
            engine.step()
        with pytest.raises(StepError, match=r"seeds 1007-1008.*the next try uses other seeds"):
            engine.step()
        assert llm.seeds == [7, 8, 1007, 1008]
    llm = SeedRecorder(["too short"])  # a new run (a new CLI invocation) goes on from there
    with StoryEngine(llm, path, embedder=embedder, max_retries=1, seed=7) as engine:
        with pytest.raises(StepError, match="seeds 2007-2008"):
            engine.step()
        assert llm.seeds == [2007, 2008] and engine.head is None
        engine.configure(llm=scripted(PARAGRAPH, json.dumps(PLANS)))
        assert engine.step().paragraph == PARAGRAPH


def test_a_story_that_cannot_fit_the_context_is_never_created(
    tmp_path: Path, embedder: Embedder
) -> None:
    from memora.errors import ContextOverflowError

    path = tmp_path / "s.db"
    llm = ScriptedLLM([PARAGRAPH], n_ctx=1700)
    with StoryEngine(llm, path, embedder=embedder) as engine:
        with pytest.raises(ContextOverflowError, match="shorten the premise") as info:
            engine.create(Premise("A keeper keeps a lighthouse. " * 200))
        assert info.value.n_ctx == 1700 and not engine.file.exists
        engine.create(PREMISE)
        with pytest.raises(ContextOverflowError, match="pin fewer facts"):
            engine.pin("The bottle is green. " * 200)
        assert engine.file.pinned == []
        engine.pin("The bottle is green.")
        assert engine.file.pinned == ["The bottle is green."]


def test_a_bad_new_memory_keeps_the_old_one(tmp_path: Path, embedder: Embedder) -> None:
    with StoryEngine(scripted(PARAGRAPH, json.dumps(PLANS)), tmp_path / "s.db",
                     embedder=embedder) as engine:  # fmt: skip
        engine.create(PREMISE)
        opening = engine.step()
        engine.llm = scripted(PARAGRAPH.replace("dusk", "noon"), plans_reply("same memory"))
        second = engine.step(opening.plans[0])
        assert second.stats.memory_kept and second.memory == opening.memory


@pytest.mark.slow
def test_real_steps_on_the_bundled_model(tmp_path: Path, embedder: Embedder) -> None:
    llm = LlamaCppLLM("default", n_ctx=4096, n_threads=1, seed=0)
    with llm, StoryEngine(llm, tmp_path / "real.db", embedder=embedder,
                          paragraph_tokens=120) as engine:  # fmt: skip
        engine.create(PREMISE)
        steps = [engine.step() for _ in range(3)]
        for step in steps:
            assert len(step.paragraph.split()) >= 25
            assert step.memory.strip() and len(step.memory) <= engine.memory_chars
            assert len({p.lower() for p in step.plans}) == 3
        assert steps[1].plan in steps[0].plans and steps[1].chosen_by == "model"
        assert steps[2].stats.evaluated_tokens < steps[2].stats.prompt_tokens  # prefix reused
        assert engine.store.count(agent_id=engine._scope) == 3  # each paragraph stored once


def run_cli(args: list[str], stdin: str = "") -> str:
    result = CliRunner().invoke(main, args, input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_interactive_cli_with_scripted_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMORA_N_THREADS", "1")
    story = str(tmp_path / "cli.db")
    # opening; choose plan 2; edit plan 1; write our own; undo; branch from step 1; quit
    script = (
        "2\ne 1\nThe keeper hides the bottle in the lamp room.\n"
        "w\nA gull steals the cork.\nu\nb 1\nq\n"
    )
    output = run_cli(["write", "--story", story, "--premise", PREMISE.premise, "--steps", "6",
                      "--interactive", "--max-tokens", "90"], script)  # fmt: skip
    assert "follow a plan" in output and "undone: back at step #3" in output
    assert "branching from step #1" in output
    file = StoryFile(story)
    steps = file.steps()
    assert [s.chosen_by for s in steps] == ["opening", "person", "edited", "own"]
    assert steps[1].plan == steps[0].plans[1]
    assert steps[2].plan == "The keeper hides the bottle in the lamp room."
    assert steps[3].plan == "A gull steals the cork."
    assert file.head_id == steps[0].id
    shown = run_cli(["story", "show", story])
    assert "> #1" in shown and "(own)" in shown
    assert run_cli(["story", "undo", story]).strip() == "the story is empty again"
    run_cli(["story", "branch", story, "3"])
    exported = run_cli(["story", "export", story])
    assert exported.count("\n\n") >= 3 and steps[2].paragraph in exported


@pytest.mark.slow
def test_a_killed_run_resumes_with_every_completed_step(tmp_path: Path) -> None:
    story = tmp_path / "killed.db"
    cmd = [sys.executable, "-m", "memora.cli", "write", "--story", str(story), "--premise",
           PREMISE.premise, "--steps", "6", "--max-tokens", "80"]  # fmt: skip
    env = {"MEMORA_N_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=env)  # fmt: skip
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if line.startswith("step 2/6"):
            break
        assert line or proc.poll() is None, "".join(seen)
    time.sleep(2)  # inside step 3
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    file = StoryFile(story)
    steps = file.steps()
    assert len(steps) == 2 and file.head_id == steps[1].id
    assert all(s.paragraph and s.memory and len(s.plans) == 3 for s in steps)
    file.close()
    run_cli(["write", "--story", str(story), "--steps", "1", "--max-tokens", "80"])
    file = StoryFile(story)
    assert len(file.steps()) == 3 and file.step(3).parent_id == steps[1].id
    assert file.unindexed() == []


def test_a_neural_memory_learns_what_comes_next(tmp_path: Path, embedder: Embedder) -> None:
    dawn = (
        "A fisherman named Tomas rowed out to the rocks the next afternoon. He wanted to know "
        "who had been sending bottles, and he had brought three more that he had found in his "
        "nets over the summer, each sealed with the same dark green wax."
    )
    storm = (
        "The storm broke over Gull Rock at midnight, exactly as the letter in the bottle said. "
        "Waves climbed the tower's base and the shutters rattled in their frames. Mara kept the "
        "lamp burning through the night and counted the hours until the grey dawn came."
    )
    fresh = ["Mara sails out to find the writer.", "The coast guard calls about the storm.",
             "A second bottle washes ashore."]  # fmt: skip
    third_plans = json.dumps({"summary": PLANS["summary"], "plans": fresh})
    llm = scripted(PARAGRAPH, json.dumps(PLANS), storm, plans_reply("b"), dawn, third_plans)
    with StoryEngine(llm, tmp_path / "n.db", embedder=embedder, neural=True) as engine:
        engine.create(PREMISE)
        opening = engine.step()
        engine.step(opening.plans[0])
        third = engine.step(opening.plans[1])  # retrieval reads M(last paragraph) too
        memory = engine.store.neural_memory(agent_id=engine._scope)
        assert memory is not None and memory.writes == 3
        guess = memory.read(embedder.encode([PARAGRAPH])[0])  # what follows the opening?
        after, other = embedder.encode([storm, dawn])
        assert guess @ after > guess @ other + 0.1
        assert third.retrieved  # the opening, found for the last step


# -- a step and its memory commit together ------------------------------------------------

CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from memora.embed import load_embedder
    from memora.memory.records import SQLiteRecords
    from memora.recurrent import Premise, StoryEngine
    from memora.testing import ScriptedLLM

    path, when, paragraph, plans = sys.argv[1:5]
    engine = StoryEngine(ScriptedLLM([paragraph, plans]), path, embedder=load_embedder())
    engine.create(Premise("A keeper finds a bottle that predicts storms."))
    original = SQLiteRecords.insert

    def insert(self, items, *, actor):
        # the step and the new head are written already: die before or after the memory row
        if when == "before-memory":
            os.kill(os.getpid(), signal.SIGKILL)
        inserted = original(self, items, actor=actor)
        if when == "after-memory":
            os.kill(os.getpid(), signal.SIGKILL)
        return inserted

    SQLiteRecords.insert = insert
    engine.step()
    print("stepped", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before-memory", "after-memory", "never"])
def test_a_step_and_its_memory_commit_together(tmp_path: Path, when: str) -> None:
    path = tmp_path / "story.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(path), when, PARAGRAPH, json.dumps(PLANS)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    if when == "never":
        assert done.returncode == 0 and "stepped" in done.stdout, done.stderr[-2000:]
    else:
        assert done.returncode == -9, done.stderr[-2000:]  # SIGKILL
    with StoryEngine(ScriptedLLM(["unused"]), path, embedder=load_embedder()) as engine:
        steps = engine.file.steps()
        records = engine.store.list(agent_id=engine._scope)
        assert engine.file.unindexed() == []
        if when == "never":
            assert len(steps) == 1 and len(records) == 1
            assert engine.file.memory_id(steps[0].id) == records[0].id
            assert records[0].metadata == {"step_id": steps[0].id}
            assert engine.head == steps[0]
        else:
            assert steps == [] and records == [] and engine.head is None
        assert engine.store.verify_index().consistent


def test_user_text_with_braces_is_never_substituted(tmp_path: Path, embedder: Embedder) -> None:
    tricky = Premise("A keeper writes {plan} and {memory} on the wall.", title="{title}")
    with StoryEngine(scripted(PARAGRAPH), tmp_path / "s.db", embedder=embedder) as engine:
        engine.create(tricky)
        engine.pin("Never say {retrieved}.")
        user = engine.writer_messages(engine._context(), "MEM", [], None, "PLAN")[1]["content"]
    assert "A keeper writes {plan} and {memory} on the wall." in user
    assert "Title: {title}" in user and "Never say {retrieved}." in user
    assert user.count("PLAN") == 1 and user.count("MEM") == 1  # only the template's slots


def test_options_change_through_configure(tmp_path: Path, embedder: Embedder) -> None:
    with StoryEngine(scripted(PARAGRAPH), tmp_path / "s.db", embedder=embedder) as engine:
        other = scripted("another model")
        engine.configure(llm=other, temperature=0.3, top_k=1)
        assert engine.llm is other and engine.temperature == 0.3 and engine.top_k == 1
        with pytest.raises(ConfigError, match="temperature"):
            engine.configure(temperature=-1.0, top_k=5)
        assert engine.top_k == 1  # a refused change changes nothing


def test_options_are_one_checked_value(tmp_path: Path, embedder: Embedder) -> None:
    from memora.errors import InvalidOptionError
    from memora.recurrent import StoryOptions

    with pytest.raises(InvalidOptionError, match="top_k"):
        StoryEngine(scripted(PARAGRAPH), tmp_path / "s.db", embedder=embedder, topk=2)
    assert not (tmp_path / "s.db").exists()  # refused before the file is made
    base = StoryOptions(top_k=1, seed=7)
    with StoryEngine(scripted(PARAGRAPH), tmp_path / "s.db", embedder=embedder,
                     options=base, seed=9) as engine:  # fmt: skip
        assert (engine.top_k, engine.seed) == (1, 9)
        engine.configure(seed=engine.seed + 1000)
        assert engine.options == StoryOptions(top_k=1, seed=1009)
        with pytest.raises(AttributeError):
            engine.seed = 3  # type: ignore[misc]

"""Write the files that the migration tests open: a memory file (records, history, a neural
memory, an agent journal with a core block) and a story file, made by the memora release that
stored its memory schema version in ``PRAGMA user_version`` (2) and kept no version for the
story and journal tables.

Run it with that release installed (commit 07b3d16 of this repository); it writes
``tests/fixtures/legacy/``. Kept so the fixtures can be made again, not run by the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memora.agents.journal import Journal

from memora.embed import load_embedder
from memora.memory import NeuralConfig, Scope
from memora.memory.store import MemoryStore
from memora.recurrent import Premise, StoryEngine
from memora.testing import ScriptedLLM

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


def main(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    embedder = load_embedder()
    alice, bob = Scope(user_id="alice"), Scope(user_id="bob", agent_id="helper")
    small = NeuralConfig(hidden=8)  # a small state keeps the fixture small
    with MemoryStore(out / "memory.db", embedder=embedder, neural=small) as store:
        store.add(
            ["Alice drinks green tea every morning.", "Alice's dog is called Rex."],
            alice,
            metadata={"source": "chat"},
            cue=["What does Alice drink?", None],
        )
        moved = store.add("Alice lives in Lyon.", alice).record.id
        store.update(moved, "Alice moved from Lyon to Porto.", alice)
        gone = store.add("Alice once owned a red bicycle.", alice).record.id
        store.delete(gone, alice)
        erased = store.add("A secret that was erased.", alice).record.id
        store.delete(erased, alice, hard=True)
        store.add("Bob writes unit tests before code.", bob)  # a second neural memory
        journal = Journal(store.db)
        journal.record(alice, "I live in Lyon.", "Noted: Lyon.", claim=False)
        done = journal.record(alice, "I moved to Porto.", "Porto, then.", claim=True)
        journal.finish(done.id, "done", actions=[{"event": "UPDATE", "id": moved}])
        journal.set_core(alice, "human", "Name: Alice", 500)
    llm = ScriptedLLM(
        [
            PARAGRAPH,
            json.dumps(PLANS),
            PARAGRAPH.replace("dusk", "dawn"),
            json.dumps({**PLANS, "plans": [p + " Again." for p in PLANS["plans"]]}),
        ]
    )
    with StoryEngine(llm, out / "story.db", embedder=embedder) as engine:
        engine.create(Premise("A keeper finds a bottle that predicts storms.", title="The Bottle"))
        opening = engine.step()
        engine.step(opening.plans[0], chosen_by="person")
        engine.edit_memory("Edited: the bottle is green.")
    for index in out.glob("*.index"):
        shutil.rmtree(index)  # derived state: the tests rebuild it
    for name in ("memory.db", "story.db"):
        conn = sqlite3.connect(out / name)
        conn.execute("PRAGMA journal_mode = DELETE")  # one file, no WAL beside it
        conn.execute("VACUUM")
        conn.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/fixtures/legacy"))

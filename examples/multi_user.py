"""Several users, one memory store, one model: each user's agent sees only that user's
memories, core blocks and conversation.

    python examples/multi_user.py --store team.db
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memora.agents import MemoryAgent

from memora import load_model
from memora.memory import MemoryStore

SAID = {
    "alice": "I live in Lyon and my cat is called Miso.",
    "bob": "I live in Oslo and I keep bees on my balcony.",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="the store file (default: a temp file)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    path = Path(args.store or Path(tempfile.mkdtemp()) / "team.db")

    with (
        load_model("default", n_ctx=2048, n_threads=args.threads) as llm,
        MemoryStore(path) as store,
    ):
        agents = {user: MemoryAgent(llm, store, user_id=user, max_tokens=40) for user in SAID}
        for user, text in SAID.items():
            agents[user].core.set("human", f"Name: {user.title()}")
            agents[user].chat(text)
        for agent in agents.values():
            agent.wait()
        for user, agent in agents.items():
            hits = agent.recall("Where do I live and what animals do I have?", k=10)
            print(f"{user}: core {agent.core.get('human')!r}; {len(agent.history())} turn(s)")
            for hit in hits:
                owner = hit.record.scope.user_id
                print(f"  {owner}: {hit.record.text}")
            others = [h for h in hits if h.record.scope.user_id != user]
            print(f"  memories of other users seen by {user}: {len(others)}")
            agent.close()


if __name__ == "__main__":
    main()

"""A personal assistant that remembers across sessions: every run is a new process on the same
memory store file. Tell it something in one run and ask in the next:

    python examples/assistant.py --store me.db "I live in Lyon and I work as a nurse."
    python examples/assistant.py --store me.db "Where do I live?"

Each run answers (streaming), shows the memories it used, then waits for the fact extraction of
the turn and prints what it stored (or why it failed: the turn is kept and retried next run).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memora.agents import ExtractionError, MemoryAgent

from memora import load_model
from memora.memory import MemoryStore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("message")
    parser.add_argument("--store", default="assistant.db", help="the memory store file")
    parser.add_argument("--user", default="me")
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=80)
    args = parser.parse_args()

    with (
        load_model(args.model, n_ctx=2048, n_threads=args.threads) as llm,
        MemoryStore(args.store) as store,
        MemoryAgent(llm, store, user_id=args.user, max_tokens=args.max_tokens) as agent,
    ):
        retried = agent.retry_failed()  # turns whose extraction failed in an earlier run
        if retried:
            print(f"[retrying the extraction of {len(retried)} earlier turn(s)]")
        print(f"[{len(agent.history())} earlier turns of {args.user!r} in {args.store}]")
        stream = agent.stream(args.message)
        print("assistant: ", end="", flush=True)
        for piece in stream:
            print(piece, end="", flush=True)
        print()
        reply = stream.reply
        print("memories used:")
        for hit in reply.memories:
            print(f"  - {hit.record.text}")
        try:
            for extraction in agent.wait():
                for action in extraction.actions:
                    print(f"  [{action.kind}] {action.text}")
        except ExtractionError as exc:
            print(f"extraction failed, turn {exc.turn_id} kept for a retry: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

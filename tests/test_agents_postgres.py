"""Memory agents on several hosts against one Postgres memory: separate processes, each with
its own connections and embedder, share the journal, the core blocks and the memories (a real
PostgreSQL server with pgvector; scripted answers, since which process extracts is the point)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from memora.agents import MemoryAgent

from memora.memory.store import MemoryStore
from memora.testing import ScriptedLLM

pytestmark = pytest.mark.slow

HOST = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from memora.agents import MemoryAgent
    from memora.memory import MemoryStore
    from memora.testing import ScriptedLLM
    dsn, mode, gate = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    with MemoryStore(dsn) as store:
        store.embed(["warm up"])  # the embedder loads before the race starts
        print("ready", flush=True)
        while not gate.exists():
            time.sleep(0.01)
        llm = ScriptedLLM(["ok"])
        if mode == "drain":
            extractor = ScriptedLLM(['{"facts": []}'], delay=0.02)
            agent = MemoryAgent(llm, store, user_id="u", extractor_llm=extractor)
            done = agent.wait()
            print(json.dumps(sorted(t.turn_id for t in done)), flush=True)
        elif mode == "tell":
            agent = MemoryAgent(llm, store, user_id="u", extract=False)
            agent.chat("My locker code at the gym is 4417.")
        else:
            agent = MemoryAgent(llm, store, user_id="u", extract=False)
            agent.chat("What is my locker code at the gym?")
            print(json.dumps({"seen": "4417" in str(llm.prompts[0])}), flush=True)
        agent.close()
""")


def host(dsn: str, mode: str, gate: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOST, dsn, mode, str(gate)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **__import__("os").environ},
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out.strip()


def test_two_hosts_never_extract_the_same_turn_and_see_each_others_memories(
    pg_dsn: str, tmp_path: Path
) -> None:
    with MemoryStore(pg_dsn) as store:
        writer = MemoryAgent(ScriptedLLM(["ok"]), store, user_id="u", extract=False,
                             store_messages=False)  # fmt: skip
        for i in range(12):
            writer.chat(f"Note {i}: the user keeps box {i} in the attic.")
        writer.close()
        pending = [t.id for t in writer.history()]
        assert len(pending) == 12 and {t.status for t in writer.history()} == {"pending"}

    gate = tmp_path / "go"
    hosts = [host(pg_dsn, "drain", gate) for _ in range(2)]
    gate.touch()  # both hosts start claiming at once
    claimed = [json.loads(finish(p)) for p in hosts]
    assert set(claimed[0]).isdisjoint(claimed[1])  # no turn extracted twice
    assert sorted(claimed[0] + claimed[1]) == sorted(pending)  # and none left out

    with MemoryStore(pg_dsn) as store:
        turns = MemoryAgent(ScriptedLLM(["ok"]), store, user_id="u", extract=False).history()
        assert {t.status for t in turns} == {"done"} and {t.attempts for t in turns} == {1}

    gate2 = tmp_path / "go2"
    gate2.touch()
    finish(host(pg_dsn, "tell", gate2))  # one host is told a fact ...
    time.sleep(0.1)
    assert json.loads(finish(host(pg_dsn, "ask", gate2))) == {"seen": True}  # ... the other uses it

"""How long `memora memory list` takes on a 10,000-record store (the embedder must not load).

Builds the store once with seeded synthetic unit vectors under the bundled embedder's name and
dimension (all-MiniLM-L6-v2, 384), so the CLI opens it as its own; then times, in fresh
processes, alternating, ``--runs`` times each:

- ``python -c "import memora"``: the floor of any command (interpreter + package import);
- ``memora memory list --db STORE --all-scopes`` on this tree;
- with ``--compare-with DIR``, the same command on another checkout of memora (say, the commit
  before lazy loading: ``git archive HEAD~1 | tar -x -C DIR``).

    python bench/memory_list.py [--records 10000] [--runs 5] [--compare-with DIR]

Writes bench/results/memory_list.json (medians, every run, and the ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "bench" / "results" / "memory_list.json"


class SeededEmbedder:
    """Unit vectors from a seeded generator, under the bundled embedder's name and size."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._rng.normal(size=(len(texts), self.dim)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build(path: Path, records: int) -> float:
    """A store of ``records`` texts over 20 users; seconds it took."""
    sys.path.insert(0, str(ROOT))
    from memora.memory.store import MemoryStore

    start = time.perf_counter()
    with MemoryStore(path, embedder=SeededEmbedder()) as store:
        for first in range(0, records, 1000):
            texts = [f"Memory {i}: a fact worth keeping." for i in range(first, first + 1000)]
            for user in range(20):
                part = texts[user::20]
                if part:
                    store.add_many(part, user_id=f"user-{user}")
    return time.perf_counter() - start


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds ``argv`` takes, run in ``cwd`` (not a checkout: ``-m`` puts the working folder
    first on the import path, ahead of PYTHONPATH)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare-with", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="memora-list-"))
    db = folder / "m.db"
    built = build(db, args.records)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    paths = {"this": str(ROOT)} | (
        {"compare": str(args.compare_with.resolve())} if args.compare_with else {}
    )
    cases = {"import memora": ([sys.executable, "-c", "import memora"], paths["this"])}
    for name, where in paths.items():
        argv = [sys.executable, "-m", "memora.cli", "memory", "list", "--db", str(db),
                "--all-scopes"]  # fmt: skip
        cases[f"memory list ({name})"] = (argv, where)
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, (argv, where) in cases.items():
            runs[name].append(timed(argv, {**env, "PYTHONPATH": where}, folder))
    medians = {name: statistics.median(times) for name, times in runs.items()}
    floor = medians["import memora"]
    result: dict[str, Any] = {
        "records": args.records,
        "runs": args.runs,
        "build_seconds": round(built, 2),
        "median_seconds": {k: round(v, 3) for k, v in medians.items()},
        "ratio_to_import": {k: round(v / floor, 2) for k, v in medians.items()},
        "all_runs": {k: [round(t, 3) for t in v] for k, v in runs.items()},
        "target_seconds": 1.5,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    if "memory list (compare)" in medians:
        result["speedup_vs_compare"] = round(
            medians["memory list (compare)"] / medians["memory list (this)"], 2
        )
    RESULT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["median_seconds"], indent=2))


if __name__ == "__main__":
    main()

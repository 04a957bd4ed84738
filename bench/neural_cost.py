"""What the neural memory costs a write: ``MemoryStore.add`` with the memory on against off.

Four stores take the same texts one ``add`` at a time, in alternating rounds (so that load
on the machine hits all of them alike):

- ``plain``: no neural memory;
- ``neural``: the memory on, as shipped (its write log appended per add, the whole state
  checkpointed every ``CHECKPOINT_EVERY`` writes);
- ``neural, state per add``: the same memory checkpointing its whole state at every add (what
  every add did before the write log and checkpoints);
- ``neural, window 8``: the memory with the windowed update (``NeuralConfig(window=8)``), the
  design that search's ``neural_latest_weight`` needs.

The embeddings are computed once before the timing (the bundled MiniLM), so the main figures
are the store's own cost; a second, shorter measurement (``--live-adds``) embeds in every add,
as a user's add does. After the timing, the memory rebuilt from scratch from its log, and the
memory a fresh process loads (latest checkpoint plus the later writes), are compared with the
one in the writing process, byte for byte.

    python bench/neural_cost.py [--adds 1200] [--rounds 12] [--live-adds 120]

Writes bench/results/neural_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from research_data import needle_stream  # noqa: E402

from memora.embed import load_embedder  # noqa: E402
from memora.memory.neural import NeuralConfig  # noqa: E402
from memora.memory.neural_bank import CHECKPOINT_EVERY  # noqa: E402
from memora.memory.store import MemoryStore  # noqa: E402

RESULTS = HERE / "results" / "neural_cost.json"
CONFIGS = ("plain", "neural", "neural, state per add", "neural, window 8")


class Precomputed:
    """The bundled MiniLM's vectors of a fixed set of texts, computed once up front
    (``live``: embed at every call instead, as a user's add does)."""

    def __init__(self, texts: Sequence[str], *, live: bool = False) -> None:
        self.inner = load_embedder()
        self.name, self.dim, self.live = self.inner.name, self.inner.dim, live
        self.vectors = {} if live else dict(zip(texts, self.inner.encode(list(texts)), strict=True))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.live:
            return np.asarray(self.inner.encode(list(texts)), dtype=np.float32)
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


def open_store(path: Path, config: str, embedder: Precomputed) -> MemoryStore:
    neural = NeuralConfig(window=8) if config == "neural, window 8" else config != "plain"
    store = MemoryStore(path, embedder=embedder, neural=neural)
    if config == "neural, state per add":
        assert store.neural is not None
        store.neural.checkpoint_every = 1
    return store


def timed_rounds(stores: dict[str, MemoryStore], texts: list[str], rounds: int,
                 ) -> dict[str, list[float]]:  # fmt: skip
    """ms per add of each store, one figure per round; the stores take turns each round, in an
    order rotated every round (each follows each other as often), with the file system's
    writes flushed before each turn (so that no store pays for the writeback of another's,
    the state-per-add store writes a megabyte per add)."""
    per_round = len(texts) // rounds
    ms: dict[str, list[float]] = {name: [] for name in stores}
    names = list(stores)
    for r in range(rounds):
        part = texts[r * per_round : (r + 1) * per_round]
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            os.sync()
            start = time.perf_counter()
            for text in part:
                stores[name].add(text, user_id="u")
            ms[name].append((time.perf_counter() - start) * 1000 / len(part))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {ms[n][-1]:.3f} ms" for n in ms),
              flush=True)  # fmt: skip
    return ms


def replay_checks(path: Path, embedder: Precomputed, live: bytes) -> dict[str, bool]:
    with MemoryStore(path, embedder=embedder, neural=True) as store:
        loaded = store.neural_memory(user_id="u")
        replayed = store.replay_neural(user_id="u")
        return {
            "fresh_process_equals_writer": loaded is not None and loaded.state_bytes() == live,
            "replay_from_log_equals_writer": replayed.state_bytes() == live,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adds", type=int, default=1200, help="adds per store")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument(
        "--live-adds", type=int, default=120, help="adds per store, embedding in each (0: skip)"
    )
    args = parser.parse_args()
    texts, _ = needle_stream(args.adds, 0, seed=7)
    result = measure(Precomputed(texts), texts, args.rounds)
    if args.live_adds:
        live = measure(Precomputed([], live=True), texts[: args.live_adds], 2)
        result["with_embedding"] = {k: live[k] for k in (
            "adds_per_store", "ms_per_add_median", "ms_per_add_rounds", "neural_over_plain",
            "neural_over_plain_paired_median", "state_per_add_over_plain",
            "window_8_over_plain")}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "ms_per_add_rounds"}, indent=1))


def measure(embedder: Precomputed, texts: list[str], rounds: int) -> dict[str, Any]:
    """The stores over ``texts``, ``rounds`` alternating rounds; the figures and checks."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / f"{i}.db" for i, name in enumerate(CONFIGS)}
        stores = {name: open_store(paths[name], name, embedder) for name in CONFIGS}
        ms = timed_rounds(stores, texts, rounds)
        memory = stores["neural"].neural_memory(user_id="u")
        assert memory is not None
        live = memory.state_bytes()
        for store in stores.values():
            store.close()
        checks = replay_checks(paths["neural"], embedder, live)
        sizes = {name: p.stat().st_size for name, p in paths.items()}
    median = {name: statistics.median(v) for name, v in ms.items()}
    paired = [n / p for n, p in zip(ms["neural"], ms["plain"], strict=True)]
    result: dict[str, Any] = {
        "benchmark": "neural_cost",
        "adds_per_store": len(texts),
        "rounds": rounds,
        "checkpoint_every": CHECKPOINT_EVERY,
        "state_bytes": len(live),
        "ms_per_add_median": {n: round(v, 3) for n, v in median.items()},
        "ms_per_add_rounds": {n: [round(x, 3) for x in v] for n, v in ms.items()},
        "neural_over_plain": round(median["neural"] / median["plain"], 2),
        "neural_over_plain_paired_median": round(statistics.median(paired), 2),
        "state_per_add_over_plain": round(median["neural, state per add"] / median["plain"], 2),
        "window_8_over_plain": round(median["neural, window 8"] / median["plain"], 2),
        "file_bytes": sizes,
        **checks,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }
    return result


if __name__ == "__main__":
    main()

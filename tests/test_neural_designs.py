"""The neural memory's design options (windowed update, Huber loss, two timescales): each learns,
round-trips through its state, replays deterministically, validates its config, and the default
config is today's memory bit for bit. Random unit vectors stand in for embeddings (no model)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from memora.errors import ConfigError
from memora.memory.neural import NeuralConfig, NeuralMemory

DIM = 64
DESIGNS = {
    "window": {"window": 8, "window_decay": 0.8},
    "huber": {"loss": "huber", "huber_delta": 0.5},
    "two timescales": {"slow_lr": 0.002, "forget_half_life_steps": 200.0},
    "all three": {"window": 4, "loss": "huber", "slow_lr": 0.001},
}


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


KEYS, VALUES = unit(6, 1), unit(6, 2)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def trained(overrides: dict[str, object], rounds: int = 30, *, lr: float = 0.01) -> NeuralMemory:
    """One pair per write (as a chat writes), the six pairs over and over."""
    memory = NeuralMemory(DIM, NeuralConfig(lr=lr, **overrides))  # type: ignore[arg-type]
    for r in range(rounds):
        for i in range(len(KEYS)):
            memory.write(KEYS[i], VALUES[i], at=float(r * 10 + i))
    return memory


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_each_design_learns_cue_to_content(name: str) -> None:
    memory = trained(DESIGNS[name])
    reads = memory.read(KEYS)
    sims = np.array([[cosine(r, v) for v in VALUES] for r in reads])
    assert (sims.argmax(axis=1) == np.arange(len(KEYS))).all(), sims.round(2)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_each_design_round_trips_its_state(name: str) -> None:
    memory = trained(DESIGNS[name], rounds=3)
    again = NeuralMemory.from_bytes(memory.state_bytes())
    assert again.config == memory.config and again.step == memory.step
    for n, w in memory.weights().items():
        assert np.array_equal(w, again.weights()[n])
    # the restored memory goes on exactly like the original (ring buffer and slow weights too)
    memory.write(KEYS[0], VALUES[1], at=1e6)
    again.write(KEYS[0], VALUES[1], at=1e6)
    for n, w in memory.weights().items():
        assert np.array_equal(w, again.weights()[n])
    assert memory.state_bytes() == again.state_bytes()


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_each_design_replays_to_the_same_weights(name: str) -> None:
    one, two = trained(DESIGNS[name], rounds=4), trained(DESIGNS[name], rounds=4)
    assert one.state_bytes() == two.state_bytes()


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_a_copy_of_each_design_learns_apart(name: str) -> None:
    memory = trained(DESIGNS[name], rounds=2)
    before = memory.state_bytes()
    other = memory.copy()
    other.write(KEYS[:3], VALUES[3:], at=5e5)
    assert memory.state_bytes() == before
    memory.write(KEYS[:3], VALUES[3:], at=5e5)
    assert memory.state_bytes() == other.state_bytes()


def test_the_state_holds_what_each_design_adds() -> None:
    plain = trained({}, rounds=1)
    window = trained({"window": 8}, rounds=2)
    slow = trained({"slow_lr": 0.001}, rounds=1)
    names = {m: set(np.load(io.BytesIO(m.state_bytes())).files) for m in (plain, window, slow)}
    assert not any(n.startswith(("slow_", "ring_")) for n in names[plain])
    assert {"ring_keys", "ring_values"} <= names[window]
    assert window._state.ring is not None and len(window._state.ring[0]) == 7
    assert {"slow_w1", "slow_b3"} <= names[slow]
    assert settled(window) == settled(plain) + 2 * 7 * DIM * 4
    assert settled(slow) == settled(plain) * 3 // 2


def settled(memory: NeuralMemory) -> int:
    """The memory's state bytes without the factors of its latest writes (their number
    depends on the rows each write learned from, :mod:`memora.memory.neural_factored`)."""
    mats = memory._state.mats.values()
    return memory.nbytes - sum(m.nbytes - m.dense.nbytes - m.mom.nbytes for m in mats)


def test_a_state_saved_before_the_designs_loads() -> None:
    """A blob without the new config keys or arrays (as the previous release wrote it) loads,
    with the designs off."""
    memory = trained({}, rounds=1)
    with np.load(io.BytesIO(memory.state_bytes())) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    for key in ("window", "window_decay", "loss", "huber_delta", "slow_lr", "slow_half_life_steps"):
        del meta["config"][key]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    old = NeuralMemory.from_bytes(buffer.getvalue())
    assert old.config == NeuralConfig(lr=0.01)
    for n, w in memory.weights().items():
        assert np.array_equal(w, old.weights()[n])


def test_the_window_weights_the_recent_pairs() -> None:
    """A windowed memory that saw a pair once, a few writes ago, holds it better than one that
    did not rehearse it."""
    losses = {}
    for window in (1, 8):
        memory = NeuralMemory(DIM, NeuralConfig(lr=0.01, window=window))
        memory.write(KEYS[0], VALUES[0], at=0.0)
        for i in range(1, 5):
            memory.write(KEYS[i], VALUES[i], at=float(i))
        losses[window] = memory.surprise(KEYS[0], VALUES[0])[0].loss
    assert losses[8] < losses[1]


def test_huber_bounds_the_pull_of_an_outlier() -> None:
    """The step taken on a pair far from the memory's prediction is smaller under Huber (with
    clipping out of the way: a clipped step has the clip's length whatever the loss)."""
    steps = {}
    for loss in ("l2", "huber"):
        config = NeuralConfig(lr=0.01, loss=loss, huber_delta=0.25, max_grad_norm=1e6)
        memory = NeuralMemory(DIM, config)
        before = memory.weights()
        memory.write(KEYS[0], 3.0 * VALUES[0], at=0.0)
        after = memory.weights()
        steps[loss] = sum(float(np.abs(after[n] - before[n]).sum()) for n in before)
    assert steps["huber"] < 0.5 * steps["l2"]


def test_slow_weights_outlast_fast_forgetting() -> None:
    """With a short fast half-life the slow weights keep an association the fast ones lost."""
    noise_k, noise_v = unit(60, 3), unit(60, 4)
    losses = {}
    for slow in (0.0, 0.004):
        memory = NeuralMemory(
            DIM, NeuralConfig(lr=0.004, forget_half_life_steps=20.0, slow_lr=slow)
        )
        for t in range(20):
            memory.write(KEYS[0], VALUES[0], at=float(t))
        for i in range(60):  # three fast half-lives of other pairs
            memory.write(noise_k[i], noise_v[i], at=100.0 + i)
        losses[slow] = memory.surprise(KEYS[0], VALUES[0])[0].loss
    assert losses[0.004] < 0.85 * losses[0.0]


@pytest.mark.parametrize(
    ("overrides", "fix"),
    [
        ({"window": 0}, "window an integer >= 1"),
        ({"window": 2.5}, "window an integer >= 1"),
        ({"window_decay": 0.0}, "0 < window_decay <= 1"),
        ({"loss": "l1"}, "loss one of 'l2', 'huber'"),
        ({"huber_delta": 0.0}, "huber_delta > 0"),
        ({"slow_lr": -0.1}, "slow_lr >= 0"),
        ({"slow_half_life_steps": 0.0}, "slow_half_life_steps > 0"),
    ],
)
def test_config_errors_name_the_fix(overrides: dict[str, object], fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        NeuralConfig(**overrides)  # type: ignore[arg-type]


def test_the_default_config_is_the_plain_memory() -> None:
    """The defaults leave every design off: no slow weights, no ring buffer, and the update is
    the plain one (checked against the update written out by hand)."""
    config = NeuralConfig()
    assert (config.window, config.loss, config.slow_lr) == (1, "l2", 0.0)
    memory = NeuralMemory(DIM)
    for i in range(5):
        memory.write(KEYS[i], VALUES[i], at=float(i))
    assert memory._state.slow == {} and memory._state.ring is None
    # the same writes through the plain path, bypassing the designs: identical weights
    twin = NeuralMemory(DIM)
    twin._design_grads = None  # type: ignore[assignment,method-assign]
    for i in range(5):
        twin.write(KEYS[i], VALUES[i], at=float(i))
    assert twin.state_bytes() == memory.state_bytes()


class HashEmbedder:
    """Deterministic unit vectors per text (no model)."""

    name, dim = "hash-32", DIM

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = [
            np.random.default_rng(int.from_bytes(t.encode()[:8].ljust(8, b"\0"), "little") + len(t))
            .standard_normal(DIM)
            .astype(np.float32)
            for t in texts
        ]
        out = np.stack(rows)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_a_store_keeps_and_replays_a_design_memory(tmp_path: Path) -> None:
    """Through the memory store: the designs' state survives a reopen, and replaying the write
    log gives the stored memory back."""
    from memora.memory.store import MemoryStore

    config = NeuralConfig(window=4, loss="huber", huber_delta=0.1, slow_lr=0.001)
    texts = [f"note number {i} about topic {i % 7}" for i in range(150)]
    with MemoryStore(tmp_path / "m.db", embedder=HashEmbedder(), neural=config) as store:
        for i, text in enumerate(texts):
            store.add(text, user_id="u", cue=f"question {i}" if i % 3 == 0 else None)
        memory = store.neural_memory(user_id="u")
        assert memory is not None and memory.step == 150
        replayed = store.replay_neural(user_id="u")
        assert replayed.state_bytes() == memory.state_bytes()
        before = memory.state_bytes()
    with MemoryStore(tmp_path / "m.db", embedder=HashEmbedder(), neural=config) as store:
        reopened = store.neural_memory(user_id="u")
        assert reopened is not None and reopened.state_bytes() == before
        assert reopened._state.ring is not None and reopened._state.slow

"""The factored weight matrices of the neural memory (memora.memory.neural_factored): the same
update as the dense recurrence, across folds, persisted bit for bit, never changed in place."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_info

from memora.memory.neural_factored import FOLD_ROWS, ONE_BLAS_THREAD, Factored

SHAPE = (12, 7)
BASE = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


def dense_reference(steps: list[tuple[np.ndarray, np.ndarray, float, float, float]]) -> tuple:
    """``momentum' = eta momentum - c x.T g``; ``delta' = keep delta + momentum'`` in
    float64, as the memory wrote it before the factored form."""
    delta, momentum = np.zeros(SHAPE), np.zeros(SHAPE)
    for x, g, c, eta, keep in steps:
        momentum = eta * momentum - c * (x.astype(np.float64).T @ g.astype(np.float64))
        delta = keep * delta + momentum
    return delta, momentum


def random_steps(seed: int, count: int, max_rows: int = 3) -> list:
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(count):
        rows = int(rng.integers(1, max_rows + 1))
        x = rng.standard_normal((rows, SHAPE[0])).astype(np.float32)
        g = rng.standard_normal((rows, SHAPE[1])).astype(np.float32)
        steps.append((x, g, float(rng.uniform(1e-4, 1e-2)), float(rng.uniform(0, 0.95)),
                      float(rng.uniform(0.99, 1.0))))  # fmt: skip
    return steps


def run(steps: list) -> Factored:
    matrix = Factored.zeros(BASE)
    for x, g, c, eta, keep in steps:
        matrix = matrix.step(x, g, c, eta, keep)
    return matrix


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(1, 3 * FOLD_ROWS))
def test_the_factored_update_is_the_dense_one(seed: int, count: int) -> None:
    steps = random_steps(seed, count)
    matrix = run(steps)
    delta, momentum = dense_reference(steps)
    scale = max(1.0, float(np.abs(delta).max()))
    assert np.allclose(matrix.delta(), delta, atol=2e-5 * scale)
    assert np.allclose(matrix.momentum(), momentum, atol=2e-5 * scale)
    assert matrix.rows < FOLD_ROWS  # folded once the factors reach the limit


def test_products_use_the_parts_without_forming_the_matrix() -> None:
    matrix = run(random_steps(3, FOLD_ROWS + 5))  # dense parts and pending factors both
    assert matrix.rows > 0 and matrix.dm != 0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, SHAPE[0])).astype(np.float32)
    g = rng.standard_normal((4, SHAPE[1])).astype(np.float32)
    weights = BASE + matrix.delta()
    assert np.array_equal(matrix.base, BASE)
    assert np.allclose(matrix.times(x), x @ weights, atol=1e-5)
    assert np.allclose(matrix.times_t(g), g @ weights.T, atol=1e-5)
    folded = matrix.folded()
    assert folded.rows == 0
    assert np.allclose(folded.delta(), matrix.delta(), atol=1e-6)
    assert np.allclose(folded.momentum(), matrix.momentum(), atol=1e-6)


def test_a_step_changes_nothing_it_was_given() -> None:
    matrix = run(random_steps(5, 10))
    before = {k: v.copy() for k, v in matrix.arrays("w").items()}
    for x, g, c, eta, keep in random_steps(6, FOLD_ROWS):
        matrix.step(x, g, c, eta, keep)
    after = matrix.arrays("w")
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("count", [0, 7, FOLD_ROWS])
def test_the_parts_persist_bit_for_bit(count: int) -> None:
    matrix = run(random_steps(9, count))
    buffer = io.BytesIO()
    np.savez(buffer, **matrix.arrays("w2"))
    with np.load(io.BytesIO(buffer.getvalue())) as data:
        loaded = Factored.load(data, "w2", BASE)
    assert loaded.rows == matrix.rows
    assert loaded.arrays("w2").keys() == matrix.arrays("w2").keys()
    for key, value in matrix.arrays("w2").items():
        assert np.array_equal(loaded.arrays("w2")[key], value)
    x, g, c, eta, keep = random_steps(10, 1)[0]
    nxt, nxt_loaded = matrix.step(x, g, c, eta, keep), loaded.step(x, g, c, eta, keep)
    assert np.array_equal(nxt.delta(), nxt_loaded.delta())


def test_a_state_saved_as_dense_arrays_loads_as_such() -> None:
    rng = np.random.default_rng(1)
    old = {"delta_w1": rng.standard_normal(SHAPE).astype(np.float32),
           "momentum_w1": rng.standard_normal(SHAPE).astype(np.float32)}  # fmt: skip
    loaded = Factored.load(old, "w1", BASE)
    assert loaded.rows == 0
    assert np.array_equal(loaded.delta(), old["delta_w1"])
    assert np.array_equal(loaded.momentum(), old["momentum_w1"])


def blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_the_memory_runs_its_products_on_one_blas_thread_and_restores_the_setting() -> None:
    from memora.memory.neural import NeuralConfig, NeuralMemory

    before = blas_threads()
    seen: list[list[int]] = []
    memory = NeuralMemory(16, NeuralConfig(hidden=8, window=4))
    original = Factored.times

    def spying(self: Factored, x: np.ndarray) -> np.ndarray:
        seen.append(blas_threads())
        return original(self, x)

    rng = np.random.default_rng(0)
    pairs = rng.standard_normal((6, 16)).astype(np.float32)
    Factored.times = spying  # type: ignore[method-assign]
    try:
        memory.write(pairs[:2], pairs[2:4])  # a windowed write of two pairs
        with ONE_BLAS_THREAD:  # nested and overlapping uses restore once, at the last exit
            memory.write(pairs[4], pairs[5])
            assert all(n == 1 for n in blas_threads())
    finally:
        Factored.times = original  # type: ignore[method-assign]
    assert seen and all(n == 1 for threads in seen for n in threads)
    assert blas_threads() == before

"""The neural weight search applies by default (SearchOptions.neural_latest_weight): only to a
query that asks for the current state, only in a scope whose neural memory has the windowed
update and was written mostly with question keys; the bundled MiniLM and real SQLite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memora.errors import ConfigError
from memora.memory import MemoryStore, SearchOptions
from memora.memory.neural import NeuralConfig, NeuralMemory
from memora.memory.neural_bank import LATEST_MIN_CUED, LATEST_MIN_WINDOW, earns_latest

FACTS = [
    ("Where does Ana live?", "Ana lives in Lisbon."),
    ("What does Ana do for work?", "Ana works as a nurse at the city hospital."),
    ("Where does Ana live?", "Ana moved to Porto last spring."),
    ("What is Ana's dog called?", "Ana's dog is called Pimenta."),
    ("What does Ana do for work?", "Ana now teaches biology at a school."),
    ("Where does Ana live?", "Ana lives in Braga these days."),
]
LATEST = "Where does Ana live now?"
PLAIN = "Where did Ana live?"


def filled(path: Path, config: NeuralConfig, *, cues: bool) -> MemoryStore:
    store = MemoryStore(path, neural=config)
    for question, text in FACTS:
        store.add(text, user_id="ana", cue=question if cues else None)
    return store


def ranking(store: MemoryStore, query: str, **options: object) -> list[tuple[str, float]]:
    return [(h.record.text, round(h.score, 6)) for h in store.search(query, user_id="ana",
                                                                    **options)]  # fmt: skip


def test_a_latest_query_gets_the_weight_where_the_memory_earned_it(tmp_path: Path) -> None:
    with filled(tmp_path / "m.db", NeuralConfig(window=8), cues=True) as store:
        memory = store.neural_memory(user_id="ana")
        assert memory is not None and memory.cued == len(FACTS) and earns_latest(memory)
        default = ranking(store, LATEST)
        assert default == ranking(store, LATEST, neural_weight=0.25)
        assert default != ranking(store, LATEST, neural_latest_weight=0)  # the weight acts
        assert ranking(store, LATEST, neural_latest_weight=0.5) == ranking(
            store, LATEST, neural_weight=0.5
        )
        # never for a query that does not ask for the current state, nor with latest off
        assert ranking(store, PLAIN) == ranking(store, PLAIN, neural_latest_weight=0)
        assert ranking(store, LATEST, latest=False) == ranking(
            store, LATEST, latest=False, neural_latest_weight=0
        )


@pytest.mark.parametrize(
    ("config", "cues"),
    [(NeuralConfig(window=8), False), (NeuralConfig(), True)],
    ids=["no question keys", "no windowed update"],
)
def test_no_weight_where_the_memory_did_not_earn_it(
    tmp_path: Path, config: NeuralConfig, cues: bool
) -> None:
    with filled(tmp_path / "m.db", config, cues=cues) as store:
        memory = store.neural_memory(user_id="ana")
        assert memory is not None and not earns_latest(memory)
        assert ranking(store, LATEST) == ranking(store, LATEST, neural_latest_weight=0)


def test_the_rule_and_its_thresholds() -> None:
    dim = 8
    for window, cued, expected in [
        (LATEST_MIN_WINDOW, 1.0, True),
        (LATEST_MIN_WINDOW - 1, 1.0, False),
        (LATEST_MIN_WINDOW, LATEST_MIN_CUED, True),
        (LATEST_MIN_WINDOW, LATEST_MIN_CUED - 0.25, False),
    ]:
        memory = NeuralMemory(dim, NeuralConfig(hidden=4, window=window))
        rng = np.random.default_rng(0)
        for i in range(8):
            value = rng.standard_normal(dim).astype(np.float32)
            key = rng.standard_normal(dim).astype(np.float32) if i < cued * 8 else value
            memory.write(key, value, at=float(i))
        assert memory.writes == 8 and memory.cued == round(cued * 8)
        assert earns_latest(memory) is expected
    assert not earns_latest(NeuralMemory(dim, NeuralConfig(hidden=4, window=8)))  # nothing yet


def test_the_count_of_keyed_writes_persists_and_replays(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with filled(path, NeuralConfig(window=8), cues=True) as store:
        store.add("Ana likes figs.", user_id="ana")  # its own key
    with MemoryStore(path, neural=NeuralConfig(window=8)) as store:
        memory = store.neural_memory(user_id="ana")
        assert memory is not None and (memory.writes, memory.cued) == (7, 6)
        replayed = store.replay_neural(user_id="ana")
        assert (replayed.writes, replayed.cued) == (7, 6)
        assert replayed.state_bytes() == memory.state_bytes()


def test_the_option_is_checked_and_ignored_without_a_neural_memory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neural_latest_weight"):
        SearchOptions(neural_latest_weight=-1)
    with pytest.raises(ConfigError, match="neural_latest_weight"):
        SearchOptions(neural_latest_weight=float("nan"))
    with MemoryStore(tmp_path / "plain.db") as store:
        store.add("Ana lives in Braga these days.", user_id="ana")
        assert ranking(store, LATEST) == ranking(store, LATEST, neural_latest_weight=0.5)

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from memora import ConfigError, ModelNotFoundError
from memora.embed import Embedder, load_embedder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def test_bundled_minilm_loads_offline(embedder: Embedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.name == "all-MiniLM-L6-v2"
    assert embedder.dim == 384
    assert load_embedder() is embedder


def test_vectors_are_normalized_float32(embedder: Embedder) -> None:
    vectors = embedder.encode(["one", "two words", "three short words"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_paraphrases_score_higher_than_unrelated_sentences(embedder: Embedder) -> None:
    pairs = [
        ("The cat sat on the mat.", "A cat was sitting on the rug.", "Interest rates rose again."),
        (
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            "The volcano erupted overnight.",
        ),
        (
            "She plays the violin beautifully.",
            "Her violin playing is lovely.",
            "Bake the bread for forty minutes.",
        ),
    ]
    flat = [s for triple in pairs for s in triple]
    v = embedder.encode(flat).reshape(len(pairs), 3, -1)
    for anchor, para, other in v:
        assert anchor @ para > anchor @ other + 0.3


def test_batches_give_the_same_vectors_as_single_calls(embedder: Embedder) -> None:
    texts = [f"sentence number {i} about memory" for i in range(10)]
    batched = embedder.encode(texts)
    single = np.vstack([embedder.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_bad_input(embedder: Embedder) -> None:
    with pytest.raises(ConfigError, match="list of texts"):
        embedder.encode("not a list")  # type: ignore[arg-type]
    with pytest.raises(ModelNotFoundError, match="bundled"):
        load_embedder("no-such-embedder")


def test_loading_shows_no_progress_bar_when_stderr_is_not_a_terminal() -> None:
    """A fresh process with stderr piped: no "Loading weights" bar, and the setting is back."""
    script = (
        "from transformers.utils import logging\n"
        "from memora.embed import SentenceTransformerEmbedder\n"
        "SentenceTransformerEmbedder()\n"
        "print(logging.is_progress_bar_enabled())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )  # fmt: skip
    assert "Loading weights" not in done.stderr and "it/s" not in done.stderr, done.stderr
    assert done.stdout.strip() == "True"  # restored for code that shows its own bars

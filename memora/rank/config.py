"""What one batch ranking run is asked to do, as one value: the files, the strategy and model,
and how to run. ``memora rank`` builds it from its options (the field names are the options'
names) and hands it to :func:`memora.rank.batch.run_ranking`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memora.rank.inputs import BatchInput, OnError, load_inputs
from memora.rank.running import Executor
from memora.rank.spec import RerankerSpec, choose_passage_words

__all__ = ["RankConfig"]


@dataclass(frozen=True)
class RankConfig:
    """A batch ranking run.

    Args:
        queries_path: JSONL ``{"qid", "text"}``.
        docs_path: JSONL ``{"docid", "text"}``.
        output: the TREC run to write (diagnostics go to ``<output>.diagnostics.jsonl``).
        candidates_path: a TREC run or JSONL ``{"qid", "docid"|"docids"}``; None: every doc is
            a candidate of every query, pre-selected to ``top_k`` by the bi-encoder.
        strategy: a name of :data:`memora.rank.STRATEGIES`, or ``auto``
            (:meth:`chosen_strategy`).
        model_spec: a model name, ``.gguf`` path or ``openai:<model>``.
        top_k: candidates reranked per query (the first of each query's list).
        executor: ``local`` or ``ray``.
        workers: Ray actors, each with its own model.
        address: the Ray cluster's address (None: a local cluster).
        resume: continue ``output``, skipping the queries it has.
        on_error: on a malformed input line, ``skip`` it (with a warning) or ``fail``.
        threads: CPU threads per llama.cpp model.
        n_ctx: the model's context size.
        passage_words: split docs into passages of this many words (0: never; None: only
            when some candidate is longer than the strategy's per-passage budget).
        max_calls: the most model calls one query may need, estimated before the run starts
            (:func:`memora.rank.batch.check_cost`); a run over it is refused.
    """

    queries_path: Path
    docs_path: Path
    output: Path
    candidates_path: Path | None = None
    strategy: str = "auto"
    model_spec: str = "default"
    top_k: int = 100
    executor: Executor = "local"
    workers: int = 1
    address: str | None = None
    resume: bool = False
    on_error: OnError = "fail"
    threads: int = 1
    n_ctx: int = 2048
    passage_words: int | None = None
    max_calls: int = 500

    def chosen_strategy(self, model: str) -> tuple[str, str]:
        """The strategy to run and why: ``auto`` is ``pointwise`` on a local model (it has
        next-token logits; listwise ``full`` returns the input order on small models such as
        the bundled one) and ``full`` on an OpenAI-compatible endpoint (no logits)."""
        if self.strategy != "auto":
            return self.strategy, "asked for"
        if model.startswith("openai:"):
            return "full", "auto: an endpoint model has no logits for pointwise scoring"
        return "pointwise", "auto: a local model scores each candidate; --strategy to change"

    def load_inputs(self) -> BatchInput:
        """The queries and their candidates (see :func:`memora.rank.inputs.load_inputs`)."""
        return load_inputs(
            self.queries_path,
            docs=self.docs_path,
            candidates=self.candidates_path,
            top_k=self.top_k,
            on_error=self.on_error,
        )

    def reranker_spec(
        self, inputs: BatchInput, model: str, model_options: Mapping[str, Any]
    ) -> RerankerSpec:
        """The reranker to build for ``inputs`` on ``model``: passages of
        :attr:`passage_words` words, or of the strategy's length when some candidate to rerank
        is longer (see :func:`memora.rank.spec.choose_passage_words`)."""
        strategy = self.chosen_strategy(model)[0]
        reranked = [d for docs in inputs.candidates.values() for d in docs[: self.top_k]]
        words = choose_passage_words(strategy, reranked, self.passage_words)
        return RerankerSpec(strategy, model, model_options, passage_words=words)

"""Batch ranking: queries and candidates from files, a TREC run out, resumable per query.

The parts, each in its module (their names are importable from here too):

- :mod:`memora.rank.inputs`: reading queries, docs and candidates (``file:line`` errors, or
  skipped lines with ``on_error="skip"``);
- :mod:`memora.rank.spec`: building a reranker from plain data (:class:`RerankerSpec`) and
  closing it;
- :mod:`memora.rank.running`: the local and Ray executors;
- :mod:`memora.rank.output`: the TREC run and its diagnostics, written per query;
- :mod:`memora.rank.evaluation`: metrics of a run against qrels;
- :mod:`memora.rank.config`: one run's settings (:class:`RankConfig`), as ``memora rank``
  builds them.

:func:`run_batch` writes each query as soon as it is ranked: its lines of the TREC run, then
one JSON line in ``<output>.diagnostics.jsonl``, each flushed and fsynced. The diagnostics line
is the record that the query is done, so ``resume=True`` skips the queries it lists and drops run
lines of any query without one (a write cut short by a kill): a resumed run neither redoes nor
duplicates a query. The work runs in this process (``executor="local"``) or on a Ray actor pool
(``executor="ray"``) whose actors each build their own reranker from a picklable
:class:`RerankerSpec`; the driver writes, so both executors write the same lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from memora.errors import BatchInputError, ConfigError, InvalidOptionError, OutputExistsError
from memora.rank.config import RankConfig
from memora.rank.evaluation import evaluate
from memora.rank.inputs import (
    BatchInput,
    OnError,
    Query,
    load_inputs,
    preselect,
    read_candidates,
    read_docs,
    read_queries,
)
from memora.rank.output import diagnostics_path, prepare_output, run_lines, write_query
from memora.rank.running import Executor, Factory, Work, run_local, run_ray
from memora.rank.spec import PASSAGE_WORDS, RerankerSpec, choose_passage_words, close_reranker
from memora.rank.types import Doc, Ranking

__all__ = [
    "PASSAGE_WORDS",
    "BatchInput",
    "BatchInputError",
    "BatchReport",
    "Executor",
    "Factory",
    "OnError",
    "OutputExistsError",
    "Query",
    "RankConfig",
    "RerankerSpec",
    "Work",
    "choose_passage_words",
    "close_reranker",
    "diagnostics_path",
    "evaluate",
    "load_inputs",
    "preselect",
    "read_candidates",
    "read_docs",
    "read_queries",
    "run_batch",
    "run_lines",
    "run_ranking",
]


@dataclass
class BatchReport:
    """What a :func:`run_batch` call did: queries ranked now, already done before, in all."""

    ranked: int
    resumed: int
    total: int
    run_path: Path
    diagnostics_path: Path


def run_batch(
    queries: Sequence[Query],
    candidates: Mapping[str, Sequence[Doc]],
    reranker_factory: Factory,
    output: str | Path,
    *,
    top_k: int = 100,
    resume: bool = False,
    executor: Executor = "local",
    workers: int = 1,
    address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BatchReport:
    """Rank each query's first ``top_k`` candidates and write the run (see the module docs).

    ``reranker_factory`` is a :class:`RerankerSpec` or a picklable zero-argument callable
    returning a reranker. ``progress(done, total)`` is called at the start and after each
    query (``done`` counts queries finished by earlier, resumed runs too). A
    ``KeyboardInterrupt`` stops the run; every query finished before it stays written."""
    if top_k < 1:
        raise InvalidOptionError(f"top_k must be >= 1, got {top_k}")
    if workers < 1:
        raise InvalidOptionError(f"workers must be >= 1, got {workers}")
    if executor not in ("local", "ray"):
        raise InvalidOptionError(f"executor must be 'local' or 'ray', got {executor!r}")
    missing = [q.qid for q in queries if not candidates.get(q.qid)]
    if missing:
        raise ConfigError(f"qid {missing[0]!r} has no candidates; drop it or give it some")
    run_path = Path(output)
    diag_path = diagnostics_path(run_path)
    done = prepare_output(run_path, diag_path, resume)
    todo: list[Work] = [
        (q.qid, q.text, list(candidates[q.qid])[:top_k]) for q in queries if q.qid not in done
    ]
    total, resumed = len(queries), len(queries) - len(todo)
    if progress is not None:
        progress(resumed, total)
    if executor == "local":
        results = run_local(reranker_factory, todo)
    else:
        results = run_ray(reranker_factory, todo, workers, address)

    def report(finished: int) -> None:
        if progress is not None:
            progress(resumed + finished, total)

    finished = _write_all(results, run_path, diag_path, report)
    return BatchReport(finished, resumed, total, run_path, diag_path)


def _write_all(
    results: Iterator[tuple[str, Ranking]],
    run_path: Path,
    diag_path: Path,
    report: Callable[[int], None],
) -> int:
    """Append each ranked query to the run as it comes; the number written."""
    finished = 0
    with run_path.open("a", encoding="utf-8") as run_fh, diag_path.open("a", encoding="utf-8") as d:
        for qid, ranking in results:
            write_query(run_fh, d, qid, ranking)
            finished += 1
            report(finished)
    return finished


def run_ranking(
    config: RankConfig,
    inputs: BatchInput,
    spec: RerankerSpec,
    progress: Callable[[int, int], None] | None = None,
) -> BatchReport:
    """:func:`run_batch` of ``inputs`` with ``spec`` (see :meth:`RankConfig.reranker_spec`),
    written and run as ``config`` says."""
    return run_batch(
        inputs.queries,
        inputs.candidates,
        spec,
        config.output,
        top_k=config.top_k,
        resume=config.resume,
        executor=config.executor,
        workers=config.workers,
        address=config.address,
        progress=progress,
    )

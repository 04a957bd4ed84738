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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from memora.errors import (
    BatchInputError,
    ConfigError,
    InvalidOptionError,
    InvalidRecordError,
    OutputExistsError,
)
from memora.rank.config import RankConfig
from memora.rank.evaluation import evaluate
from memora.rank.inputs import (
    BatchInput,
    OnError,
    Query,
    check_id,
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
    "check_cost",
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
    """What a :func:`run_batch` call did: queries ranked now, already done before, in all;
    and of those ranked now, how many had a listwise answer that needed repairing
    (``repaired``) and how many came back in their input order (``fallback``: with more than
    one candidate, the sign of a model that did not rank)."""

    ranked: int
    resumed: int
    total: int
    run_path: Path
    diagnostics_path: Path
    repaired: int = 0
    fallback: int = 0


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
    query (``done`` counts queries finished by earlier, resumed runs too); when ``progress``
    also has a ``within(done, total)`` method, it is called after each model call inside a
    query (local executor). A ``KeyboardInterrupt`` stops the run; every query finished
    before it stays written. The files are created with the first finished query, so a run
    that fails before it leaves none behind."""
    _check_arguments(queries, candidates, top_k, executor, workers)
    run_path = Path(output)
    diag_path = diagnostics_path(run_path)
    fingerprint = {**_fingerprint(reranker_factory), "top_k": top_k}
    done = prepare_output(run_path, diag_path, resume, fingerprint)
    todo: list[Work] = [
        (q.qid, q.text, list(candidates[q.qid])[:top_k]) for q in queries if q.qid not in done
    ]
    total, resumed = len(queries), len(queries) - len(todo)
    if progress is not None:
        progress(resumed, total)
    if executor == "local":
        results = run_local(reranker_factory, todo, getattr(progress, "within", None))
    else:
        results = run_ray(reranker_factory, todo, workers, address)

    def report(finished: int) -> None:
        if progress is not None:
            progress(resumed + finished, total)

    given = {qid: tuple(d.id for d in docs) for qid, _, docs in todo}
    writer = _Writer(run_path, diag_path, fingerprint)
    with writer:
        for qid, ranking in results:
            writer.write(qid, ranking, given[qid])
            report(writer.finished)
    return BatchReport(
        writer.finished, resumed, total, run_path, diag_path, writer.repaired, writer.fallback
    )


def _check_arguments(
    queries: Sequence[Query],
    candidates: Mapping[str, Sequence[Doc]],
    top_k: int,
    executor: Executor,
    workers: int,
) -> None:
    if top_k < 1:
        raise InvalidOptionError(f"top_k must be >= 1, got {top_k}")
    if workers < 1:
        raise InvalidOptionError(f"workers must be >= 1, got {workers}")
    if executor not in ("local", "ray"):
        raise InvalidOptionError(f"executor must be 'local' or 'ray', got {executor!r}")
    missing = [q.qid for q in queries if not candidates.get(q.qid)]
    if missing:
        raise ConfigError(f"qid {missing[0]!r} has no candidates; drop it or give it some")
    bad = next((q.qid for q in queries if check_id(q.qid) is not None), None)
    if bad is not None:
        raise InvalidRecordError(f"qid {bad!r} {check_id(bad)}")


def _fingerprint(factory: Factory) -> dict[str, Any]:
    if isinstance(factory, RerankerSpec):
        return factory.fingerprint()
    return {"factory": getattr(factory, "__qualname__", type(factory).__qualname__)}


class _Writer:
    """Appends each ranked query to the run as it comes; the files are opened (created) at
    the first query, the diagnostics file first, so that it always marks the run memora's."""

    def __init__(self, run_path: Path, diag_path: Path, fingerprint: Mapping[str, Any]) -> None:
        self.run_path, self.diag_path, self.fingerprint = run_path, diag_path, fingerprint
        self.files: tuple[IO[str], IO[str]] | None = None
        self.finished = self.repaired = self.fallback = 0

    def write(self, qid: str, ranking: Ranking, given: tuple[str, ...]) -> None:
        if self.files is None:
            diag = self.diag_path.open("a", encoding="utf-8")
            self.files = (self.run_path.open("a", encoding="utf-8"), diag)
        write_query(*self.files, qid, ranking, self.fingerprint)
        self.finished += 1
        parse = ranking.diagnostics.parse
        parsed = parse.ok + parse.wrong_format + parse.repetition + parse.missing
        parsed += parse.out_of_range
        self.repaired += parse.ok < parsed
        self.fallback += len(given) > 1 and ranking.ids == given

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        for fh in self.files or ():
            fh.close()


def run_ranking(
    config: RankConfig,
    inputs: BatchInput,
    spec: RerankerSpec,
    progress: Callable[[int, int], None] | None = None,
) -> BatchReport:
    """:func:`run_batch` of ``inputs`` with ``spec`` (see :meth:`RankConfig.reranker_spec`),
    written and run as ``config`` says, after checking that no query would need more than
    ``config.max_calls`` model calls (:class:`InvalidOptionError` naming the fix)."""
    check_cost(inputs, spec, config.top_k, config.max_calls)
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


def check_cost(inputs: BatchInput, spec: RerankerSpec, top_k: int, max_calls: int) -> int:
    """The most model calls one query of ``inputs`` will need (estimated from the options,
    before any model loads); above ``max_calls``, :class:`InvalidOptionError`."""
    worst, qid = 0, ""
    for query in inputs.queries:
        calls = spec.estimate_calls(inputs.candidates[query.qid][:top_k])
        if calls > worst:
            worst, qid = calls, query.qid
    if worst > max_calls:
        n = len(inputs.candidates[qid][:top_k])
        raise InvalidOptionError(
            f"strategy {spec.strategy!r} would make about {worst:,} model calls for query "
            f"{qid!r} ({n:,} candidates), over --max-calls {max_calls:,}. Fix: fewer "
            f"candidates (--top-k), a cheaper strategy ('full' makes one call, 'biencoder' "
            f"none), or --max-calls {worst} to accept the cost"
        )
    return worst

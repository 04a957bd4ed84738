"""Batch ranking: queries and candidates from files, a TREC run out, resumable per query.

Inputs (UTF-8, one record a line; blank lines are ignored):

- queries: JSONL ``{"qid", "text"}`` (``"query"`` is accepted for ``"text"``);
- docs: JSONL ``{"docid", "text"}``;
- candidates: a TREC run (``qid Q0 docid rank score tag``) or JSONL ``{"qid", "docid"}`` /
  ``{"qid", "docids": [...]}``; a query's candidates keep the order the file gives them (its
  rank column for a TREC run), and the first ``top_k`` are reranked.

A malformed line raises :class:`BatchInputError` naming ``file:line``; with ``on_error="skip"``
it is left out and reported in :attr:`BatchInput.warnings` instead.

:func:`run_batch` writes each query as soon as it is ranked: its lines of the TREC run, then
one JSON line in ``<output>.diagnostics.jsonl``, each flushed and fsynced. The diagnostics line
is the record that the query is done, so ``resume=True`` skips the queries it lists and drops run
lines of any query without one (a write cut short by a kill): a resumed run neither redoes nor
duplicates a query. The work runs in this process (``executor="local"``) or on a Ray actor pool
(``executor="ray"``) whose actors each build their own reranker from a picklable
:class:`RerankerSpec`; the driver writes, so both executors write the same lines.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from memora.errors import (
    BatchInputError,
    ConfigError,
    InvalidOptionError,
    OutputExistsError,
    missing_extra,
)
from memora.rank.types import Doc, Ranking

if TYPE_CHECKING:
    from memora.embed import Embedder
    from memora.rank.rerankers import Reranker

__all__ = [
    "BatchInput",
    "BatchInputError",
    "BatchReport",
    "OutputExistsError",
    "Query",
    "RerankerSpec",
    "choose_passage_words",
    "diagnostics_path",
    "evaluate",
    "load_inputs",
    "preselect",
    "read_candidates",
    "read_docs",
    "read_queries",
    "run_batch",
]

OnError = Literal["skip", "fail"]
Executor = Literal["local", "ray"]
#: Words per passage that fit each strategy's default per-passage token budget (~1.3 tokens a
#: word): 100 tokens for the listwise and setwise prompts, 200 for pointwise, 256 word pieces for
#: the bundled MiniLM.
PASSAGE_WORDS = {
    "full": 75,
    "sliding": 75,
    "psc": 75,
    "setwise": 75,
    "pointwise": 150,
    "biencoder": 190,
}


@dataclass(frozen=True)
class Query:
    qid: str
    text: str


@dataclass
class BatchInput:
    """What :func:`load_inputs` read: queries, each query's candidates, and the lines skipped."""

    queries: list[Query]
    candidates: dict[str, list[Doc]]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RerankerSpec:
    """How to build a reranker, as plain data, so that Ray actors can build their own.

    ``model_options`` go to :func:`memora.llm.load_model`, ``options`` to the strategy;
    ``passage_words`` (None: no splitting) wraps it in a
    :class:`~memora.rank.longdoc.PassageReranker` (MaxP, stride 2/3 of a passage)."""

    strategy: str
    model: str = "default"
    model_options: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    passage_words: int | None = None

    def build(self) -> Reranker:
        """The reranker (its model loaded here); close it with :func:`close_reranker`."""
        from memora.rank.longdoc import PassageReranker
        from memora.rank.rerankers import STRATEGIES, load_reranker

        if self.strategy not in STRATEGIES:
            raise InvalidOptionError(
                f"unknown strategy {self.strategy!r}; strategies: {', '.join(STRATEGIES)}"
            )
        llm = None
        if self.strategy != "biencoder":
            from memora.llm.registry import load_model

            llm = load_model(self.model, **dict(self.model_options))
        reranker = load_reranker(self.strategy, llm, **dict(self.options))
        if self.passage_words is not None:
            stride = max(1, self.passage_words * 2 // 3)
            reranker = PassageReranker(reranker, passage_words=self.passage_words, stride=stride)
        return reranker


def close_reranker(reranker: Reranker) -> None:
    """Free the model a reranker built by :meth:`RerankerSpec.build` holds."""
    inner = getattr(reranker, "inner", reranker)
    llm = getattr(inner, "llm", None)
    if llm is not None:
        llm.close()


def choose_passage_words(
    strategy: str, docs: Sequence[Doc], requested: int | None = None
) -> int | None:
    """``requested`` when given (0: never split); else the strategy's passage length in words
    when some doc is longer than it, else None (rank whole docs)."""
    if requested is not None:
        if requested < 0:
            raise InvalidOptionError(f"passage_words must be >= 0, got {requested}")
        return requested or None
    budget = PASSAGE_WORDS.get(strategy, 75)
    longest = max((len(d.text.split()) for d in docs), default=0)
    return budget if longest > budget else None


# ---------------------------------------------------------------------------------------------
# Readers


class _Reader:
    """Lines of one file, with the skip-or-fail policy."""

    def __init__(self, path: str | Path, on_error: OnError, warnings: list[str]) -> None:
        if on_error not in ("skip", "fail"):
            raise InvalidOptionError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
        self.path = Path(path)
        self.on_error = on_error
        self.warnings = warnings
        if not self.path.is_file():
            raise BatchInputError("no such file; check the path", path=self.path)

    def lines(self) -> Iterator[tuple[int, str]]:
        with self.path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    yield number, line

    def bad(self, number: int, message: str) -> None:
        error = BatchInputError(message, path=self.path, line=number)
        if self.on_error == "fail":
            raise error
        self.warnings.append(f"{error} (skipped)")

    def json_lines(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, line in self.lines():
            try:
                record = json.loads(line.strip())
            except json.JSONDecodeError as exc:
                self.bad(number, f"not JSON ({exc})")
                continue
            if not isinstance(record, dict):
                self.bad(number, f"expected a JSON object, got {type(record).__name__}")
                continue
            yield number, record

    def field(self, number: int, record: dict[str, Any], *names: str) -> str | None:
        """The first of ``names`` in ``record`` as a non-empty string, or report the line."""
        for name in names:
            value = record.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, str | int):
                self.bad(number, f'"{name}" must be a string, got {type(value).__name__}')
                return None
            text = str(value)
            if not text.strip():
                self.bad(number, f'"{name}" is empty')
                return None
            return text
        self.bad(number, f'missing "{names[0]}"')
        return None


def _keyed(path: str | Path, on_error: OnError, warnings: list[str] | None, key: str,
           texts: tuple[str, ...]) -> dict[str, str]:  # fmt: skip
    """``key`` -> text of each JSONL record (text from the first of ``texts`` present); a
    repeated key is a malformed line."""
    reader = _Reader(path, on_error, warnings if warnings is not None else [])
    out: dict[str, str] = {}
    for number, record in reader.json_lines():
        ident = reader.field(number, record, key)
        text = None if ident is None else reader.field(number, record, *texts)
        if ident is None or text is None:
            continue
        if ident in out:
            reader.bad(number, f"{key} {ident!r} appears twice; {key}s must be unique")
            continue
        out[ident] = text
    return out


def read_queries(
    path: str | Path, *, on_error: OnError = "fail", warnings: list[str] | None = None
) -> list[Query]:
    """Queries from JSONL ``{"qid", "text"}`` (or ``"query"``); a repeated qid is malformed."""
    records = _keyed(path, on_error, warnings, "qid", ("text", "query"))
    return [Query(qid, text) for qid, text in records.items()]


def read_docs(
    path: str | Path, *, on_error: OnError = "fail", warnings: list[str] | None = None
) -> dict[str, Doc]:
    """Docs from JSONL ``{"docid", "text"}``, by docid; a repeated docid is malformed."""
    records = _keyed(path, on_error, warnings, "docid", ("text",))
    return {docid: Doc(docid, text) for docid, text in records.items()}


def read_candidates(
    path: str | Path,
    docs: Mapping[str, Doc],
    *,
    on_error: OnError = "fail",
    warnings: list[str] | None = None,
) -> dict[str, list[Doc]]:
    """Each qid's candidates, in the file's order (a TREC run's rank column), from a TREC run
    or JSONL (told apart by the first character of the first line). A docid not in ``docs``,
    or one given twice for a qid, is a malformed line."""
    reader = _Reader(path, on_error, warnings if warnings is not None else [])
    ranked: dict[str, list[tuple[float, int, str, int]]] = {}  # qid -> (rank, seq, docid, line)
    seq = 0
    first = next(reader.lines(), None)
    is_json = first is not None and first[1].lstrip().startswith("{")
    if is_json:
        for number, record in reader.json_lines():
            qid = reader.field(number, record, "qid")
            if qid is None:
                continue
            if "docids" in record:
                ids = record["docids"]
                if not isinstance(ids, list) or not all(isinstance(d, str | int) for d in ids):
                    reader.bad(number, '"docids" must be a list of strings')
                    continue
                docids = [str(d) for d in ids]
            else:
                docid = reader.field(number, record, "docid")
                if docid is None:
                    continue
                docids = [docid]
            for docid in docids:
                ranked.setdefault(qid, []).append((float(seq), seq, docid, number))
                seq += 1
    else:
        for number, line in reader.lines():
            parts = line.split()
            if len(parts) != 6:
                reader.bad(number, f"expected 6 fields 'qid Q0 docid rank score tag', got {parts}")
                continue
            try:
                rank = float(parts[3])
            except ValueError:
                reader.bad(number, f"rank {parts[3]!r} is not a number")
                continue
            ranked.setdefault(parts[0], []).append((rank, seq, parts[2], number))
            seq += 1
    out: dict[str, list[Doc]] = {}
    for qid, rows in ranked.items():
        seen: set[str] = set()
        for _, _, docid, number in sorted(rows):
            if docid not in docs:
                reader.bad(number, f"docid {docid!r} (qid {qid!r}) is not in the docs file")
            elif docid in seen:
                reader.bad(number, f"docid {docid!r} is a candidate of qid {qid!r} twice")
            else:
                seen.add(docid)
                out.setdefault(qid, []).append(docs[docid])
    return out


def preselect(
    queries: Sequence[Query],
    docs: Sequence[Doc],
    k: int,
    *,
    embedder: Embedder | None = None,
) -> dict[str, list[Doc]]:
    """Every doc is a candidate of every query; with more than ``k`` docs, each query keeps its
    ``k`` best by bi-encoder cosine (docs are embedded once)."""
    if k < 1:
        raise InvalidOptionError(f"top_k must be >= 1, got {k}")
    docs = list(docs)
    if len(docs) <= k:
        return {q.qid: docs for q in queries}
    import numpy as np

    from memora.embed import load_embedder

    model = embedder if embedder is not None else load_embedder()
    doc_vectors = model.encode([d.text for d in docs])
    query_vectors = model.encode([q.text for q in queries])
    out: dict[str, list[Doc]] = {}
    for query, vector in zip(queries, query_vectors, strict=True):
        scores = doc_vectors @ vector
        best = np.argsort(-scores, kind="stable")[:k]
        out[query.qid] = [docs[int(i)] for i in best]
    return out


def load_inputs(
    queries: str | Path,
    *,
    docs: str | Path,
    candidates: str | Path | None = None,
    top_k: int = 100,
    on_error: OnError = "fail",
) -> BatchInput:
    """Read the files of a batch run. Without ``candidates`` every doc is a candidate of every
    query (pre-selected to ``top_k`` by the bi-encoder, see :func:`preselect`). Queries without
    candidates are left out with a warning."""
    warnings: list[str] = []
    query_list = read_queries(queries, on_error=on_error, warnings=warnings)
    doc_map = read_docs(docs, on_error=on_error, warnings=warnings)
    if not doc_map:
        raise BatchInputError("holds no docs", path=docs)
    if candidates is None:
        cands = preselect(query_list, list(doc_map.values()), top_k)
    else:
        cands = read_candidates(candidates, doc_map, on_error=on_error, warnings=warnings)
        known = {q.qid for q in query_list}
        unknown = sorted(set(cands) - known)
        if unknown:
            warnings.append(
                f"{candidates}: {len(unknown)} qids with candidates are not in {queries} "
                f"(e.g. {unknown[0]!r}); ignored"
            )
    kept = []
    for query in query_list:
        if cands.get(query.qid):
            kept.append(query)
        else:
            warnings.append(f"qid {query.qid!r} has no candidates; skipped")
    return BatchInput(kept, {q.qid: cands[q.qid] for q in kept}, warnings)


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class BatchReport:
    """What a :func:`run_batch` call did: queries ranked now, already done before, in all."""

    ranked: int
    resumed: int
    total: int
    run_path: Path
    diagnostics_path: Path


def diagnostics_path(output: str | Path) -> Path:
    return Path(str(output) + ".diagnostics.jsonl")


def run_lines(qid: str, ranking: Ranking, tag: str) -> tuple[list[str], bool]:
    """The TREC lines of one query, and whether they carry the model's scores. Scores must
    fall strictly with rank (trec_eval sorts by score, breaking ties by docid); when they do
    not, or a strategy has none, the score is ``n - rank``."""
    n = len(ranking.ids)
    scores = ranking.scores
    model_scores = scores is not None and all(math.isfinite(s) for s in scores)
    if scores is not None and model_scores:
        model_scores = all(a > b for a, b in itertools.pairwise(scores))
    written = [repr(float(s)) for s in scores] if scores is not None and model_scores else None
    lines = []
    for r, docid in enumerate(ranking.ids, 1):
        score = written[r - 1] if written is not None else str(n - r + 1)
        lines.append(f"{qid} Q0 {docid} {r} {score} {tag}\n")
    return lines, model_scores


def _prepare_output(run_path: Path, diag_path: Path, resume: bool) -> set[str]:
    """The qids already done (resume), after dropping any partial write; or check that there
    is no output yet."""
    if not resume:
        existing = [p for p in (run_path, diag_path) if p.exists()]
        if existing:
            raise OutputExistsError(
                f"{existing[0]} exists; pass --resume (resume=True) to continue that run, or "
                "remove it (and its .diagnostics.jsonl) to start over"
            )
        return set()
    done: set[str] = set()
    if diag_path.exists():
        kept: list[str] = []
        with diag_path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut short by a kill: the query is not done
                if not line.endswith("\n") or not isinstance(record, dict) or "qid" not in record:
                    break
                done.add(str(record["qid"]))
                kept.append(line)
        _rewrite(diag_path, kept)
    if run_path.exists():
        with run_path.open(encoding="utf-8") as fh:
            lines = [line for line in fh if line.endswith("\n") and line.split(" ", 1)[0] in done]
        _rewrite(run_path, lines)
    return done


def _rewrite(path: Path, lines: Sequence[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.writelines(lines)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write(fh: Any, lines: Sequence[str]) -> None:
    fh.writelines(lines)
    fh.flush()
    os.fsync(fh.fileno())


Factory = RerankerSpec | Callable[[], "Reranker"]
Work = tuple[str, str, list[Doc]]  # qid, query text, candidates


def _build(factory: Factory) -> Reranker:
    return factory.build() if isinstance(factory, RerankerSpec) else factory()


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
    done = _prepare_output(run_path, diag_path, resume)
    total = len(queries)
    todo: list[Work] = [
        (q.qid, q.text, list(candidates[q.qid])[:top_k]) for q in queries if q.qid not in done
    ]
    resumed = total - len(todo)
    finished = 0
    if progress is not None:
        progress(resumed, total)
    if executor == "local":
        results = _local(reranker_factory, todo)
    else:
        results = _ray(reranker_factory, todo, workers, address)
    with run_path.open("a", encoding="utf-8") as run_fh, diag_path.open("a", encoding="utf-8") as d:
        for qid, ranking in results:
            tag = "memora-" + ranking.diagnostics.strategy.replace(" ", "_")
            lines, model_scores = run_lines(qid, ranking, tag)
            _write(run_fh, lines)
            record = {
                "qid": qid,
                "candidates": len(ranking.ids),
                "scores": "model" if model_scores else "n-rank",
                **ranking.diagnostics.to_dict(),
            }
            _write(d, [json.dumps(record, ensure_ascii=False) + "\n"])
            finished += 1
            if progress is not None:
                progress(resumed + finished, total)
    return BatchReport(finished, resumed, total, run_path, diag_path)


def _local(factory: Factory, todo: list[Work]) -> Iterator[tuple[str, Ranking]]:
    if not todo:
        return
    reranker = _build(factory)
    try:
        for qid, text, docs in todo:
            yield qid, reranker.rank(text, docs)
    finally:
        if isinstance(factory, RerankerSpec):  # a callable's caller owns its model
            close_reranker(reranker)


class _Worker:
    """A Ray actor's state: its own reranker, built where it runs."""

    def __init__(self, factory: Factory) -> None:
        self.reranker = _build(factory)

    def rank(self, qid: str, text: str, docs: list[Doc]) -> tuple[str, Ranking]:
        return qid, self.reranker.rank(text, docs)


def _ray(
    factory: Factory, todo: list[Work], workers: int, address: str | None
) -> Iterator[tuple[str, Ranking]]:
    if not todo:
        return
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise missing_extra("ray", "ray") from exc

    owned = not ray.is_initialized()
    if owned:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    remote: Any = ray.remote(num_cpus=1)(_Worker)
    actors = [remote.remote(factory) for _ in range(min(workers, len(todo)))]
    try:
        pool = ActorPool(actors)
        results = pool.map_unordered(lambda actor, work: actor.rank.remote(*work), todo)
        while True:
            try:
                result = next(results)
            except StopIteration:
                return
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
                    raise cause from exc
                raise
            yield result
    finally:
        for actor in actors:
            ray.kill(actor)
        if owned:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------
# Evaluation


def evaluate(run: str | Path, qrels: str | Path, metrics: Sequence[str]) -> dict[str, float]:
    """Aggregate ``metrics`` (ir_measures names such as ``nDCG@10``) of a TREC run."""
    try:
        import ir_measures
    except ImportError as exc:
        raise missing_extra("ir_measures", "rank") from exc

    measures = []
    for name in metrics:
        try:
            measures.append(ir_measures.parse_measure(name))
        except (NameError, ValueError, SyntaxError) as exc:
            raise InvalidOptionError(
                f"unknown metric {name!r} ({exc}); use ir_measures names such as nDCG@10, "
                "P@5, R@100, RR, AP"
            ) from exc
    if not measures:
        raise InvalidOptionError("no metrics; pass e.g. --metrics nDCG@10")
    run_docs = _read_trec(ir_measures.read_trec_run, run, 6, "qid Q0 docid rank score tag")
    qrel_docs = _read_trec(ir_measures.read_trec_qrels, qrels, 4, "qid 0 docid relevance")
    values = ir_measures.calc_aggregate(measures, qrel_docs, run_docs)
    return {str(m): float(values[m]) for m in measures}


def _read_trec(read: Callable[[str], Any], path: str | Path, fields: int, form: str) -> list[Any]:
    if not Path(path).is_file():
        raise BatchInputError("no such file; check the path", path=path)
    try:
        return list(read(str(path)))
    except ValueError as exc:
        with Path(path).open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip() and len(line.split()) != fields:
                    raise BatchInputError(
                        f"expected {fields} fields '{form}'", path=path, line=number
                    ) from exc
        raise BatchInputError(f"not a TREC file '{form}' ({exc})", path=path) from exc

"""Evaluating a TREC run against qrels with ir_measures (the ``rank`` extra)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from memora.errors import BatchInputError, InvalidOptionError, missing_extra

__all__ = ["evaluate"]


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
    """The records of a TREC file, after checking that each line is UTF-8 text with ``fields``
    fields (errors name ``file:line``) and that there is at least one."""
    from memora.rank.inputs import text_lines

    path = Path(path)
    if not path.is_file():
        raise BatchInputError("no such file; check the path", path=path)
    count = 0
    for number, line in text_lines(path):
        if len(line.split()) != fields:
            raise BatchInputError(f"expected {fields} fields '{form}'", path=path, line=number)
        count += 1
    if not count:
        raise BatchInputError(f"holds no lines '{form}'; check the path", path=path)
    try:
        return list(read(str(path)))
    except ValueError as exc:
        raise BatchInputError(f"not a TREC file '{form}' ({exc})", path=path) from exc

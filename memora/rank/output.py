"""The output of a batch run: a TREC run and ``<output>.diagnostics.jsonl``, written one query
at a time.

Each query's lines of the TREC run come first, then its JSON line of diagnostics, each flushed
and fsynced. The diagnostics line is the record that the query is done, so resuming keeps the
queries it lists and drops run lines of any query without one (a write cut short by a kill).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from memora.errors import OutputExistsError
from memora.rank.types import Ranking

__all__ = ["diagnostics_path", "prepare_output", "run_lines", "write_query"]


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


def prepare_output(run_path: Path, diag_path: Path, resume: bool) -> set[str]:
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


def write_query(run: IO[str], diagnostics: IO[str], qid: str, ranking: Ranking) -> None:
    """One query's run lines, then its diagnostics line (the record that it is done)."""
    tag = "memora-" + ranking.diagnostics.strategy.replace(" ", "_")
    lines, model_scores = run_lines(qid, ranking, tag)
    _write(run, lines)
    record = {
        "qid": qid,
        "candidates": len(ranking.ids),
        "scores": "model" if model_scores else "n-rank",
        **ranking.diagnostics.to_dict(),
    }
    _write(diagnostics, [json.dumps(record, ensure_ascii=False) + "\n"])


def _rewrite(path: Path, lines: Sequence[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.writelines(lines)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write(fh: IO[str], lines: Sequence[str]) -> None:
    fh.writelines(lines)
    fh.flush()
    os.fsync(fh.fileno())

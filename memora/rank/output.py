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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from memora.errors import NotResumableError, OutputExistsError
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


def prepare_output(
    run_path: Path, diag_path: Path, resume: bool, fingerprint: Mapping[str, Any]
) -> set[str]:
    """The qids already done (resume), after dropping any partial write; or check that there
    is no output yet. Resuming checks first, changing nothing when it refuses, that memora
    wrote the output (its diagnostics file) with the same ``fingerprint`` (strategy, model,
    parameters): otherwise :class:`NotResumableError`."""
    if not resume:
        existing = [p for p in (run_path, diag_path) if p.exists()]
        if existing:
            raise OutputExistsError(
                f"{existing[0]} exists; pass --resume (resume=True) to continue that run, or "
                "remove it (and its .diagnostics.jsonl) to start over"
            )
        return set()
    if not diag_path.exists():
        if run_path.exists() and _read_text(run_path, diag_path).strip():
            raise NotResumableError(
                f"{run_path} has no {diag_path.name}, so memora did not write it (another "
                "tool's run, or an input file?) and --resume would overwrite it. Fix: choose "
                "another --output"
            )
        return set()
    records = _done_records(diag_path, fingerprint)
    kept_run, counts = _run_lines_of(run_path, diag_path, set(records))
    done = {qid for qid, record in records.items() if counts.get(qid) == record[1]}
    _rewrite(diag_path, [line for qid, (line, _) in records.items() if qid in done])
    if run_path.exists():
        _rewrite(run_path, [line for line in kept_run if line.split()[0] in done])
    return done


def _read_text(path: Path, diag_path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotResumableError(
            f"{path} is not UTF-8 text, so memora did not write it (next to {diag_path.name}); "
            "--resume would overwrite it. Fix: choose another --output"
        ) from exc


def _done_records(diag_path: Path, fingerprint: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """qid -> (diagnostics line, candidates) of each query the diagnostics file records as
    done, up to a line cut short by a kill; refuses another tool's file or another run's."""
    text = _read_text(diag_path, diag_path)
    records: dict[str, tuple[str, int]] = {}
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        is_record = (
            isinstance(record, dict)
            and isinstance(record.get("qid"), str)
            and type(record.get("candidates")) is int
        )
        if not line.endswith("\n") or (not is_record and number == len(lines)):
            break  # the last line, cut short by a kill: that query is not done
        if not is_record:
            raise NotResumableError(
                f"{diag_path}:{number} is not a memora diagnostics line, so --resume cannot "
                "tell which queries are done. Fix: choose another --output"
            )
        assert isinstance(record, dict)
        _check_fingerprint(diag_path, record, fingerprint)
        records[record["qid"]] = (line, record["candidates"])
    return records


def _check_fingerprint(
    diag_path: Path, record: Mapping[str, Any], fingerprint: Mapping[str, Any]
) -> None:
    stored = record.get("run")
    if not isinstance(stored, dict):  # written before runs had a fingerprint: the strategy
        stored = {"strategy": str(record.get("strategy", "")).split("+")[0]}
    wanted = json.loads(json.dumps(dict(fingerprint), default=str))
    differ = [k for k in stored if stored.get(k) != wanted.get(k)]
    if differ:
        was = ", ".join(f"{k} {stored.get(k)!r}" for k in differ)
        now = ", ".join(f"{k} {wanted.get(k)!r}" for k in differ)
        raise NotResumableError(
            f"{diag_path.name} is a run started with {was}; this run asks for {now}, and one "
            "run must not mix them. Fix: resume with the options it was started with, or "
            "choose another --output"
        )


def _run_lines_of(
    run_path: Path, diag_path: Path, done: set[str]
) -> tuple[list[str], dict[str, int]]:
    """The complete lines of the run of queries in ``done`` and their count per qid; refuses
    a run where such a line is not one memora writes."""
    if not run_path.exists():
        return [], {}
    kept: list[str] = []
    counts: dict[str, int] = {}
    for number, line in enumerate(_read_text(run_path, diag_path).splitlines(True), 1):
        if not line.endswith("\n"):
            break  # cut short by a kill
        parts = line.split()
        if not parts or parts[0] not in done:
            continue  # a query without its diagnostics line: a write cut short, redone
        if len(parts) != 6 or not parts[5].startswith("memora-"):
            raise NotResumableError(
                f"{run_path}:{number} is not a line memora writes ('qid Q0 docid rank score "
                "memora-<strategy>'), so --resume would drop it. Fix: choose another --output"
            )
        kept.append(line)
        counts[parts[0]] = counts.get(parts[0], 0) + 1
    return kept, counts


def write_query(
    run: IO[str],
    diagnostics: IO[str],
    qid: str,
    ranking: Ranking,
    fingerprint: Mapping[str, Any] | None = None,
) -> None:
    """One query's run lines, then its diagnostics line (the record that it is done, with the
    run's ``fingerprint`` under ``"run"``, which resuming checks)."""
    tag = "memora-" + ranking.diagnostics.strategy.replace(" ", "_")
    lines, model_scores = run_lines(qid, ranking, tag)
    _write(run, lines)
    record = {
        "qid": qid,
        "candidates": len(ranking.ids),
        "scores": "model" if model_scores else "n-rank",
        **ranking.diagnostics.to_dict(),
        "run": dict(fingerprint) if fingerprint is not None else None,
    }
    _write(diagnostics, [json.dumps(record, ensure_ascii=False, default=str) + "\n"])


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

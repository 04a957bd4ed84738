"""The inputs of a batch run, read from files (UTF-8, one record a line; blank lines are
ignored):

- queries: JSONL ``{"qid", "text"}`` (``"query"`` is accepted for ``"text"``);
- docs: JSONL ``{"docid", "text"}``;
- candidates: a TREC run (``qid Q0 docid rank score tag``) or JSONL ``{"qid", "docid"}`` /
  ``{"qid", "docids": [...]}``; a query's candidates keep the order the file gives them (its
  rank column for a TREC run).

A malformed line raises :class:`BatchInputError` naming ``file:line``; with ``on_error="skip"``
it is left out and reported in :attr:`BatchInput.warnings` instead. Qids and docids must be
TREC ids (not empty, no whitespace), since the run is written as TREC lines. A file that is not
UTF-8 text (a line that does not decode, or a NUL byte) is refused at its first such line
whatever ``on_error`` says: the file is the wrong one, not a line of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from memora.errors import BatchInputError, InvalidOptionError
from memora.rank.types import Doc

if TYPE_CHECKING:
    from memora.embed import Embedder

__all__ = [
    "BatchInput",
    "OnError",
    "Query",
    "check_id",
    "load_inputs",
    "preselect",
    "read_candidates",
    "read_docs",
    "read_queries",
    "text_lines",
]

OnError = Literal["skip", "fail"]
_Row = tuple[float, int, str, int]  # a candidate: rank, sequence number, docid, line


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
        """The non-blank lines, numbered; a line that is not UTF-8 text stops the read (the
        file is the wrong one, whatever ``on_error`` says)."""
        yield from text_lines(self.path)

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

    def ident(self, number: int, record: dict[str, Any], name: str) -> str | None:
        """``record[name]`` as a TREC id (non-empty, no whitespace), or report the line."""
        value = self.field(number, record, name)
        if value is None or check_id(value) is None:
            return value
        self.bad(number, f'"{name}" {check_id(value)}')
        return None

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


def check_id(value: str) -> str | None:
    """Why ``value`` cannot be a qid or docid of a TREC file (None when it can): TREC lines
    are split on whitespace, so an id with a space would shift every field after it."""
    if not value:
        return "is empty"
    if any(ch.isspace() for ch in value):
        return f"{value!r} contains whitespace, which TREC files cannot hold; remove it"
    return None


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file, numbered from 1; a line that is not UTF-8
    (or holds a NUL byte: a binary file) raises :class:`BatchInputError` at its number."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BatchInputError(
                    f"not UTF-8 text ({exc.reason} at byte {exc.start}); give a UTF-8 text "
                    "file (convert it with iconv -t UTF-8)",
                    path=path,
                    line=number,
                ) from exc
            if "\x00" in line:
                raise BatchInputError(
                    "a NUL byte: this is a binary file, not UTF-8 text; check the path",
                    path=path,
                    line=number,
                )
            if line.strip():
                yield number, line.replace("\r\n", "\n")


def _keyed(path: str | Path, on_error: OnError, warnings: list[str] | None, key: str,
           texts: tuple[str, ...]) -> dict[str, str]:  # fmt: skip
    """``key`` -> text of each JSONL record (text from the first of ``texts`` present); a
    repeated key is a malformed line."""
    reader = _Reader(path, on_error, warnings if warnings is not None else [])
    out: dict[str, str] = {}
    for number, record in reader.json_lines():
        ident = reader.ident(number, record, key)
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


def _json_rows(reader: _Reader) -> dict[str, list[_Row]]:
    """Candidates of JSONL lines ``{"qid", "docid"}`` or ``{"qid", "docids"}``, in file order."""
    ranked: dict[str, list[_Row]] = {}
    seq = 0
    for number, record in reader.json_lines():
        qid = reader.ident(number, record, "qid")
        if qid is None:
            continue
        if "docids" in record:
            ids = record["docids"]
            if not isinstance(ids, list) or not all(isinstance(d, str | int) for d in ids):
                reader.bad(number, '"docids" must be a list of strings')
                continue
            docids = [str(d) for d in ids]
            wrong = next((d for d in docids if check_id(d) is not None), None)
            if wrong is not None:
                reader.bad(number, f'"docids" holds {wrong!r}, which {check_id(wrong)}')
                continue
        else:
            docid = reader.ident(number, record, "docid")
            if docid is None:
                continue
            docids = [docid]
        for docid in docids:
            ranked.setdefault(qid, []).append((float(seq), seq, docid, number))
            seq += 1
    return ranked


def _trec_rows(reader: _Reader) -> dict[str, list[_Row]]:
    """Candidates of TREC run lines ``qid Q0 docid rank score tag``, with their rank."""
    ranked: dict[str, list[_Row]] = {}
    seq = 0
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
    return ranked


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
    first = next(reader.lines(), None)
    is_json = first is not None and first[1].lstrip().startswith("{")
    ranked = _json_rows(reader) if is_json else _trec_rows(reader)
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
    if not query_list:
        raise BatchInputError('holds no queries; give JSONL lines {"qid", "text"}', path=queries)
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
    if not kept:
        raise BatchInputError(
            f"no query of {queries} has a candidate here; check that the qids match",
            path=candidates or docs,
        )
    return BatchInput(kept, {q.qid: cands[q.qid] for q in kept}, warnings)

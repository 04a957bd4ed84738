"""What rerankers take and give: documents, rankings, and per-query diagnostics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from memora.errors import InvalidRecordError

__all__ = ["Diagnostics", "Doc", "ParseStats", "Ranking", "as_docs"]


@dataclass(frozen=True)
class Doc:
    """A candidate: its id (unique within one query's candidates) and its text. ``vector``: an
    embedding of the text already made by ``embedder`` (a memory store's), which a bi-encoder
    of the same embedder uses instead of encoding the text again."""

    id: str
    text: str
    vector: Any = field(default=None, compare=False, repr=False)
    embedder: str | None = None


def as_docs(docs: Sequence[Doc | tuple[str, str] | Mapping[str, Any] | str | Any]) -> list[Doc]:
    """Docs from ``Doc``s, ``(id, text)`` pairs, ``{"docid"|"id", "text"}`` mappings, bare
    strings (ids ``"0"``, ``"1"``, ...), or anything with an ``id`` and a ``text`` (a memory
    record) or a ``record`` that has them (a memory store's search hit). Ids must be unique and
    texts non-empty."""
    if isinstance(docs, str):
        raise InvalidRecordError("docs must be a list; wrap a single text in a list")
    out: list[Doc] = []
    for i, doc in enumerate(docs):
        if isinstance(doc, Doc):
            out.append(doc)
        elif isinstance(doc, str):
            out.append(Doc(str(i), doc))
        elif isinstance(doc, tuple) and len(doc) == 2:
            out.append(Doc(str(doc[0]), str(doc[1])))
        elif isinstance(doc, Mapping) and "text" in doc and ("docid" in doc or "id" in doc):
            out.append(Doc(str(doc.get("docid", doc.get("id"))), str(doc["text"])))
        elif _has_id_and_text(item := getattr(doc, "record", doc)):
            vector, embedder = getattr(item, "vector", None), getattr(item, "embedder", None)
            out.append(Doc(str(getattr(item, "id")), getattr(item, "text"), vector, embedder))  # noqa: B009
        else:
            raise InvalidRecordError(
                f"doc {i} is {type(doc).__name__}; pass Doc, (id, text), {{'docid', 'text'}}, "
                "a string, or anything with an id and a text (a memory record or search hit)"
            )
    if not out:
        raise InvalidRecordError("no candidates to rank")
    if any(not d.text.strip() for d in out):
        raise InvalidRecordError("a candidate's text is empty; drop it or give it text")
    if len({d.id for d in out}) != len(out):
        raise InvalidRecordError("candidate ids must be unique within a query")
    return out


@dataclass
class ParseStats:
    """How the model's permutations parsed, summed over a query's calls.

    ``ok``: calls whose answer named every candidate once; ``wrong_format``: calls with no
    usable id at all; ``repetition``: calls that named an id twice; ``missing``: calls that left
    ids out (appended in input order); ``out_of_range``: calls naming ids that do not exist."""

    ok: int = 0
    wrong_format: int = 0
    repetition: int = 0
    missing: int = 0
    out_of_range: int = 0

    def add(self, other: ParseStats) -> None:
        for name in ("ok", "wrong_format", "repetition", "missing", "out_of_range"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _has_id_and_text(item: Any) -> bool:
    return isinstance(getattr(item, "id", None), str | int) and isinstance(
        getattr(item, "text", None), str
    )


@dataclass
class Diagnostics:
    """What ranking one query cost and how it went."""

    strategy: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    parse: ParseStats = field(default_factory=ParseStats)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Ranking:
    """The candidates' ids, best first: always a permutation of the input ids. ``scores`` (same
    order, higher is better) when the strategy has scores."""

    ids: tuple[str, ...]
    scores: tuple[float, ...] | None
    diagnostics: Diagnostics

    def to_dict(self) -> dict[str, Any]:
        return {
            "ids": list(self.ids),
            "scores": None if self.scores is None else list(self.scores),
            "diagnostics": self.diagnostics.to_dict(),
        }

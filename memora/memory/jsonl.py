"""The JSON lines format of memory export and import: one record per line, with its history and
its vector (base64 float32). Pure encoding and parsing; the store writes and reads through its
own public methods (:meth:`MemoryStore.export`, :meth:`MemoryStore.import_`)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from memora.errors import InvalidRecordError, ScopeError
from memora.memory.contract import NewRecord
from memora.memory.types import Event, HistoryEntry, MemoryRecord, content_hash

__all__ = ["Imported", "encode", "parse", "to_new_records"]

History = tuple[tuple[Event, str | None, str | None, str, float], ...]


@dataclass(frozen=True)
class Imported:
    """One parsed line: the record, its vector (None: re-embed it) and its history."""

    record: MemoryRecord
    vector: bytes | None
    entries: tuple[dict[str, Any], ...]

    def history(self, actor: str) -> History:
        """The history to store; a line without one gets an ADD by ``actor``."""
        if not self.entries:
            return (("ADD", None, self.record.text, actor, self.record.created_at),)
        return tuple(
            (h["event"], h.get("old_text"), h.get("new_text"), h.get("actor", actor), h["at"])
            for h in self.entries
        )


def to_new_records(
    parsed: Sequence[Imported],
    space: str,
    dim: int,
    embed: Callable[[list[str]], np.ndarray],
    actor: str,
) -> list[NewRecord]:
    """The parsed lines as records of embedding space ``space``: their vectors reused when they
    are of that space and size, else ``embed``-ded again (in one batch)."""
    need = [
        i for i, p in enumerate(parsed)
        if p.record.embedder != space or p.vector is None or len(p.vector) != 4 * dim
    ]  # fmt: skip
    fresh = dict(zip(need, embed([parsed[i].record.text for i in need]), strict=True))
    return [
        NewRecord(
            replace(p.record, embedder=space, dim=dim, content_hash=content_hash(p.record.text)),
            fresh[i] if i in fresh else np.frombuffer(p.vector or b"", dtype=np.float32),
            history=p.history(actor),
        )
        for i, p in enumerate(parsed)
    ]


def encode(record: MemoryRecord, vector: bytes, history: Sequence[HistoryEntry]) -> str:
    data = record.to_dict()
    data["vector"] = base64.b64encode(vector).decode("ascii")
    data["history"] = [h.to_dict() for h in history]
    return json.dumps(data, ensure_ascii=False)


def parse(lines: Iterable[str]) -> list[Imported]:
    """Every line of an export (blank lines skipped); a bad line raises
    :class:`InvalidRecordError` (or :class:`ScopeError`) naming its number, before anything is
    written."""
    parsed = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            record = MemoryRecord.from_dict(data)
            vector = base64.b64decode(data["vector"], validate=True) if data.get("vector") else None
            entries = tuple(_entry(h) for h in data.get("history") or ())
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise InvalidRecordError(f"line {number} is not an exported memory: {exc}") from exc
        if record.scope.empty:
            raise ScopeError(f"line {number}: the record has no scope")
        if vector is not None and len(vector) != 4 * record.dim:
            vector = None  # another dimension or a damaged vector: embed the text again
        parsed.append(Imported(record, vector, entries))
    return parsed


def _entry(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("event") not in ("ADD", "UPDATE", "DELETE"):
        raise ValueError(f"a history entry must be an ADD, UPDATE or DELETE object: {data!r}")
    float(data["at"])
    return data

"""The JSON lines format of memory export and import: one record per line, with its history and
its vector (base64 float32). Pure encoding and parsing; the store writes and reads through its
own public methods (:meth:`MemoryStore.export`, :meth:`MemoryStore.import_`).

:func:`parse` checks every field of every line before the store writes anything: a bad line
raises :class:`~memora.errors.BatchInputError` (``file:line: what is wrong; fix``) with the
line's real number in the file, so a damaged export never leaves a half-written or unopenable
store behind.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from memora.errors import BatchInputError, StoreError
from memora.memory.contract import NewRecord
from memora.memory.rows import check_metadata
from memora.memory.types import Event, HistoryEntry, MemoryRecord, Occurrence, Scope, content_hash

__all__ = ["Imported", "decode_file", "encode", "parse", "to_new_records"]

History = tuple[tuple[Event, str | None, str | None, str, float], ...]
Again = tuple[tuple[float, dict[str, Any], str], ...]

_FIX = "fix or remove the line, or export the store again with `memora memory export`"
_KEYS = frozenset(
    ("id", "scope", "text", "metadata", "created_at", "updated_at", "embedder", "dim",
     "content_hash", "expires_at", "deleted_at", "surprise", "salient", "vector", "history",
     "occurrences", "dedup", "occurred_at", "key_of")
)  # fmt: skip
_HISTORY_KEYS = frozenset(("memory_id", "event", "old_text", "new_text", "actor", "at"))


class LineError(ValueError):
    """What is wrong with one line (turned into a BatchInputError with the file and line)."""


@dataclass(frozen=True)
class Imported:
    """One parsed line: the record, its vector (None: re-embed it) and its history."""

    record: MemoryRecord
    vector: np.ndarray | None
    entries: History
    occurrences: Again = ()

    def history(self, actor: str) -> History:
        """The history to store; a line without one gets an ADD by ``actor``."""
        if not self.entries:
            return (("ADD", None, self.record.text, actor, self.record.created_at),)
        return self.entries


def to_new_records(
    parsed: Sequence[Imported], space: str, dim: int, embed: Callable[[list[str]], np.ndarray],
    actor: str,
) -> list[NewRecord]:  # fmt: skip
    """The parsed lines as records of embedding space ``space``: their vectors reused when they
    are of that space (checked by :func:`parse`), else ``embed``-ded again (in one batch)."""
    need = [i for i, p in enumerate(parsed) if p.vector is None or p.record.embedder != space]
    fresh = dict(zip(need, embed([parsed[i].record.text for i in need]), strict=True))
    return [
        NewRecord(
            replace(p.record, embedder=space, dim=dim, content_hash=content_hash(p.record.text)),
            fresh[i] if i in fresh else np.asarray(p.vector, dtype=np.float32),
            history=p.history(actor),
            occurrences=p.occurrences,
        )
        for i, p in enumerate(parsed)
    ]


def encode(record: MemoryRecord, vector: bytes, history: Sequence[HistoryEntry],
           occurrences: Sequence[Occurrence] = ()) -> str:  # fmt: skip
    data = record.to_dict()
    data["vector"] = base64.b64encode(vector).decode("ascii")
    data["history"] = [h.to_dict() for h in history]
    if occurrences:
        data["occurrences"] = [o.to_dict() for o in occurrences]
    return json.dumps(data, ensure_ascii=False)


def decode_file(data: bytes, source: str | Path) -> list[str]:
    """The lines of an import file's bytes; a file that is not UTF-8 text raises
    :class:`BatchInputError` naming the line of the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BatchInputError(
            f"not UTF-8 text (byte {exc.start}); give a JSON lines file written by "
            "`memora memory export`",
            path=source,
            line=line,
        ) from exc
    return text.split("\n")


def parse(
    lines: Iterable[str], *, space: str, dim: int, source: str | Path = "<input>",
    first_line: int = 1, max_chars: int | None = None,
) -> list[Imported]:  # fmt: skip
    """Every line of an export (blank lines skipped), checked field by field against a store
    of embedding space ``space`` and dimension ``dim``; a bad line raises
    :class:`BatchInputError` naming ``source`` and its line number, before anything is
    written. ``max_chars``: longer texts are refused."""
    parsed = []
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            item = _line(line, space, dim)
            if max_chars is not None and len(item.record.text) > max_chars:
                raise LineError(
                    f"the text has {len(item.record.text)} characters, over the store's limit "
                    f"of {max_chars} (max_text_chars); split it into smaller memories"
                )
            parsed.append(item)
        except (LineError, StoreError) as exc:
            raise BatchInputError(f"{exc}; {_FIX}", path=source, line=number) from exc
    return parsed


def _line(line: str, space: str, dim: int) -> Imported:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise LineError(f"not an exported memory (not JSON: {exc})") from exc
    if not isinstance(data, dict):
        raise LineError(f"not an exported memory (a JSON {type(data).__name__}, not an object)")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise LineError(f"unknown fields {unknown}; an exported memory has {sorted(_KEYS)}")
    record = _record(data)
    vector = _vector(data.get("vector"), record, space, dim)
    return Imported(record, vector, _history(data, record), _occurrences(data))


def _record(data: Mapping[str, Any]) -> MemoryRecord:
    for name in ("id", "text"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise LineError(f"'{name}' must be a non-empty string, got {data.get(name)!r}")
    scope = data.get("scope")
    if not isinstance(scope, dict):
        raise LineError(f"'scope' must be an object with user_id, agent_id, session_id: {scope!r}")
    where = Scope.coerce(scope)
    if where.empty:
        raise LineError("the record has no scope (user_id, agent_id or session_id)")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise LineError(f"'metadata' must be an object, got {type(metadata).__name__}")
    metadata = check_metadata(metadata)  # NaN and Infinity are not JSON
    embedder = data.get("embedder", "")
    if not isinstance(embedder, str):
        raise LineError(f"'embedder' must be a string, got {embedder!r}")
    record_dim = data.get("dim", 0)
    if isinstance(record_dim, bool) or not isinstance(record_dim, int) or record_dim < 0:
        raise LineError(f"'dim' must be an integer >= 0, got {record_dim!r}")
    salient, dedup = data.get("salient", False), data.get("dedup", True)
    if not isinstance(salient, bool) or not isinstance(dedup, bool):
        raise LineError(f"'salient' and 'dedup' must be true or false: {salient!r}, {dedup!r}")
    key_of = data.get("key_of")
    if key_of is not None and (not isinstance(key_of, str) or not key_of.strip()):
        raise LineError(f"'key_of' must be a record id or null, got {key_of!r}")
    return MemoryRecord(
        id=data["id"], scope=where, text=data["text"], metadata=metadata,
        created_at=_number(data, "created_at"), updated_at=_number(data, "updated_at"),
        embedder=embedder, dim=record_dim, content_hash=content_hash(data["text"]),
        expires_at=_number(data, "expires_at", optional=True),
        deleted_at=_number(data, "deleted_at", optional=True),
        surprise=_number(data, "surprise", optional=True), salient=salient, dedup=dedup,
        occurred_at=_number(data, "occurred_at", optional=True), key_of=key_of,
    )  # fmt: skip


def _number(data: Mapping[str, Any], name: str, *, optional: bool = False) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        what = "a finite number or null" if optional else "a finite number (seconds since 1970)"
        raise LineError(f"'{name}' must be {what}, got {value!r}")
    return float(value)


def _vector(value: Any, record: MemoryRecord, space: str, dim: int) -> np.ndarray | None:
    """The line's vector, checked; None when it has none (the text is embedded again)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise LineError(f"'vector' must be a base64 string, got {type(value).__name__}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LineError(f"'vector' is not valid base64 ({exc})") from exc
    if len(raw) != 4 * record.dim:
        raise LineError(
            f"'vector' holds {len(raw)} bytes, not {record.dim} float32 values ('dim' is "
            f"{record.dim})"
        )
    if record.embedder == space and record.dim != dim:
        raise LineError(
            f"the record is of embedder {space!r} with dimension {record.dim}, but this store's "
            f"{space!r} vectors have dimension {dim}; remove 'vector' to embed the text again"
        )
    vector = np.frombuffer(raw, dtype=np.float32)
    if not np.isfinite(vector).all():
        raise LineError("'vector' holds NaN or infinite values; remove it to embed the text again")
    return vector


def _history(data: Mapping[str, Any], record: MemoryRecord) -> History:
    entries = data.get("history")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise LineError(f"'history' must be a list of events, got {type(entries).__name__}")
    return tuple(_entry(h, record.id) for h in entries)


def _occurrences(data: Mapping[str, Any]) -> Again:
    items = data.get("occurrences") or []
    if not isinstance(items, list):
        raise LineError(f"'occurrences' must be a list, got {type(items).__name__}")
    out = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"at", "metadata", "actor"}:
            raise LineError(f"an occurrence is an object with at, metadata and actor: {item!r}")
        actor = item.get("actor", "import")
        if not isinstance(actor, str) or not actor:
            raise LineError(f"an occurrence's actor must be a non-empty string, got {actor!r}")
        out.append((_number(item, "at"), check_metadata(item.get("metadata")), actor))
    return tuple(out)


def _entry(data: Any, record_id: str) -> tuple[Event, str | None, str | None, str, float]:
    if not isinstance(data, dict) or data.get("event") not in ("ADD", "UPDATE", "DELETE"):
        raise LineError(f"a history entry must be an ADD, UPDATE or DELETE object: {data!r}")
    unknown = sorted(set(data) - _HISTORY_KEYS)
    if unknown:
        raise LineError(f"a history entry has unknown fields {unknown}")
    if data.get("memory_id", record_id) != record_id:
        raise LineError(f"a history entry is of memory {data['memory_id']!r}, not {record_id!r}")
    texts = [data.get("old_text"), data.get("new_text")]
    if any(t is not None and not isinstance(t, str) for t in texts):
        raise LineError("a history entry's old_text and new_text must be strings or null")
    actor = data.get("actor", "import")
    if not isinstance(actor, str) or not actor:
        raise LineError(f"a history entry's actor must be a non-empty string, got {actor!r}")
    return (data["event"], texts[0], texts[1], actor, _number(data, "at"))

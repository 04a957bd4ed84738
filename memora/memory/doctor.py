"""Checking and repairing a memory store file (``memora memory doctor``).

:func:`examine` reads only: SQLite's own integrity check, every stored vector (whole float32
values, as many as the record's ``dim``, all finite) and the vector index against the records.
:func:`repair` never deletes silently: it first writes each damaged record, with its history and
its raw vector, to a JSON lines file next to the store (fsynced), then removes those records
in one transaction and rebuilds the index. A quarantined line is an export line: remove its
``vector`` field and ``memora memory import`` embeds the text again.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from memora.errors import ConfigError
from memora.memory import jsonl
from memora.memory.records import SQLiteRecords
from memora.memory.types import IndexStatus

if TYPE_CHECKING:
    from memora.memory.store import MemoryStore

__all__ = ["Damaged", "DoctorReport", "examine", "repair"]


@dataclass(frozen=True)
class Damaged:
    """A record whose stored vector cannot be used, and why."""

    key: int
    id: str
    why: str


@dataclass(frozen=True)
class DoctorReport:
    """What :func:`examine` found and what :func:`repair` did."""

    integrity: list[str]  # SQLite's complaints (empty: the file is sound)
    damaged: list[Damaged]
    index: IndexStatus
    quarantine: Path | None = None  # where the damaged records were written
    rebuilt: int | None = None  # vectors in the rebuilt index
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.integrity and not self.damaged and self.index.consistent

    def lines(self) -> list[str]:
        """The report, one finding or action per line."""
        out = [f"integrity: {'ok' if not self.integrity else 'FAILED'}"]
        out += [f"  sqlite: {line}" for line in self.integrity[:20]]
        out.append(f"vectors: {len(self.damaged)} damaged")
        out += [f"  {d.id}: {d.why}" for d in self.damaged[:50]]
        status = self.index
        state = "consistent" if status.consistent else "INCONSISTENT"
        out.append(
            f"index: {state} ({status.index_count} indexed of {status.db_count} records, "
            f"{status.missing} missing, {status.extra} extra, {status.kind})"
        )
        if self.quarantine is not None:
            out.append(f"quarantined {len(self.damaged)} records to {self.quarantine}")
        if self.rebuilt is not None:
            out.append(f"rebuilt the index: {self.rebuilt} vectors")
        return out + self.notes


def _records(store: MemoryStore) -> SQLiteRecords:
    if not isinstance(store.records, SQLiteRecords):
        raise ConfigError("memora memory doctor checks stores on SQLite only")
    return store.records


def damaged_vectors(records: SQLiteRecords) -> list[Damaged]:
    """Every record (live or deleted) whose vector is not ``dim`` finite float32 values."""
    found = []
    for key, record_id, dim, blob in records.db.query(
        "SELECT rowid, id, dim, vector FROM memories ORDER BY rowid"
    ):
        blob = bytes(blob) if blob is not None else b""
        if len(blob) != 4 * int(dim):
            found.append(Damaged(key, record_id, f"{len(blob)} bytes, not {dim} float32 values"))
        elif not np.isfinite(np.frombuffer(blob, dtype=np.float32)).all():
            found.append(Damaged(key, record_id, "NaN or infinite values"))
    return found


def examine(store: MemoryStore) -> DoctorReport:
    """Check the file, the vectors and the index; changes nothing."""
    records = _records(store)
    rows = records.db.query("PRAGMA integrity_check")
    integrity = [str(r[0]) for r in rows if str(r[0]) != "ok"]
    with warnings.catch_warnings():  # the report says it, with the records' ids
        warnings.simplefilter("ignore")
        status = store.verify_index()
    return DoctorReport(integrity, damaged_vectors(records), status)


def repair(store: MemoryStore) -> DoctorReport:
    """Quarantine the damaged records to a file next to the store, remove them, rebuild the
    index; returns the report of what was found and done."""
    found = examine(store)
    records = _records(store)
    if found.integrity:
        note = (
            "SQLite reports damage it cannot repair in place: restore a backup, or export what "
            "is readable (`memora memory export`) and import it into a new file"
        )
        return DoctorReport(found.integrity, found.damaged, found.index, notes=[note])
    quarantine = None
    if found.damaged:
        quarantine = _quarantine(records, found.damaged)
        with records.transaction():
            for item in found.damaged:
                records.hard_delete(item.id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rebuilt = store.rebuild_index()
        status = store.verify_index()
    return DoctorReport([], found.damaged, status, quarantine=quarantine, rebuilt=rebuilt)


def _quarantine(records: SQLiteRecords, damaged: list[Damaged]) -> Path:
    """Write the damaged records as export lines to a new file beside the store (fsynced)."""
    stem = f"{records.location or 'memory'}.quarantine-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = Path(f"{stem}.jsonl"), 1
    while path.exists():  # never overwrite an earlier quarantine
        path, n = Path(f"{stem}-{n}.jsonl"), n + 1
    with path.open("x", encoding="utf-8") as out:
        for item in damaged:
            record = records.get(item.id, None)
            row = records.db.one("SELECT vector FROM memories WHERE rowid = ?", (item.key,))
            if record is None or row is None:
                continue
            blob = bytes(row[0]) if row[0] is not None else b""
            out.write(jsonl.encode(record, blob, records.history(item.id)) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return path

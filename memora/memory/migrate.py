"""Moving a memory store to another store of record: SQLite to PostgreSQL and back.

:func:`migrate` copies every record (deleted ones included, with their ids, scopes, metadata,
times, surprise and salience, and their vectors as stored: nothing is embedded again), every
history row, and the neural memory (state and write log) of every scope. It works on the
:class:`~memora.memory.contract.RecordStore` protocol only, so any two implementations can be
paired.

Records move in batches; a batch (its records with their history) is one transaction of the
destination, and each neural scope is another, so an interrupted migration keeps every batch
it finished and nothing of the one in progress. Running it again resumes: a record whose id is
already in the destination is skipped, and so is a neural scope already there at the same
step. A destination bound to another embedding space refuses the records with
:class:`~memora.errors.EmbedderMismatchError` (the PostgreSQL store checks it on insert).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memora.errors import ConfigError, ReadOnlyError
from memora.memory.contract import NeuralLog, NewRecord, RecordStore
from memora.memory.types import MemoryRecord

__all__ = [
    "BATCH",
    "Counts",
    "MigrateReport",
    "Progress",
    "migrate",
    "migrate_between",
    "open_records",
]

#: Records per batch (one transaction of the destination each).
BATCH = 500


@dataclass
class Counts:
    """How many things moved, were already in the destination, or were left out."""

    moved: int = 0
    present: int = 0
    skipped: int = 0  # records: the same text live in its scope under another id;
    # neural scopes: the destination's memory of that scope is at another step

    def __str__(self) -> str:
        text = f"{self.moved} moved, {self.present} already there"
        return text + (f", {self.skipped} left out" if self.skipped else "")


@dataclass
class MigrateReport:
    """What :func:`migrate` did (so far, while it runs)."""

    records: Counts = field(default_factory=Counts)
    history: Counts = field(default_factory=Counts)
    neural: Counts = field(default_factory=Counts)
    notes: list[str] = field(default_factory=list)  # why things were left out

    @property
    def changed(self) -> bool:
        """Whether anything was written to the destination."""
        return bool(self.records.moved or self.history.moved or self.neural.moved)

    def lines(self) -> list[str]:
        return [
            f"records: {self.records}",
            f"history rows: {self.history}",
            f"neural scopes: {self.neural}",
        ]


#: Called after every committed batch (``"records"``) and neural scope (``"neural"``).
Progress = Callable[[str, MigrateReport], None]


def open_records(location: str | Path, *, readonly: bool = False) -> RecordStore:
    """The store of record at ``location``: a SQLite file, or a ``postgresql://`` DSN."""
    from memora.memory.postgres import is_postgres_url, postgres_records

    if is_postgres_url(location):
        records: RecordStore = postgres_records(str(location), readonly=readonly)
        return records
    from memora.memory.records import SQLiteRecords

    return SQLiteRecords(location, readonly=readonly)


def migrate_between(
    source: str | Path, target: str | Path, *, batch: int = BATCH, progress: Progress | None = None
) -> MigrateReport:
    """:func:`migrate` from the store at ``source`` (opened read-only) to the one at ``target``
    (made when missing), a SQLite file or a DSN each. In the main thread SIGTERM interrupts it
    as Ctrl-C does (``KeyboardInterrupt``): the batch in progress rolls back."""
    if source == target or (
        isinstance(source, Path)
        and isinstance(target, Path)
        and source.resolve() == target.resolve()
    ):
        raise ConfigError("the source and the target are the same store")
    with (
        _sigterm_interrupts(),
        contextlib.closing(open_records(source, readonly=True)) as src,
        contextlib.closing(open_records(target)) as dst,
    ):
        return migrate(src, dst, batch=batch, progress=progress)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def migrate(
    src: RecordStore,
    dst: RecordStore,
    *,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> MigrateReport:
    """Copy every record, history row and neural memory of ``src`` into ``dst`` (see the
    module's description); returns the counts. Safe to run again after an interruption."""
    if batch < 1:
        raise ConfigError("batch must be >= 1")
    report = MigrateReport()
    say = progress or (lambda _what, _report: None)
    scopes: set[str] = set()
    for chunk in _chunks(src.export(include_deleted=True), batch):
        scopes.update(record.scope.key() for record, _ in chunk)
        _move_records(src, dst, chunk, report)
        say("records", report)
    source = _neural_log(src)
    if source is not None:
        for name in _neural_names(source, scopes):
            state = source.state(name)
            if state is not None:  # the destination's tables are made only for a state
                _move_neural(source, state, dst, name, report)
                say("neural", report)
    return report


def _chunks(
    rows: Iterator[tuple[MemoryRecord, bytes]], size: int
) -> Iterator[list[tuple[MemoryRecord, bytes]]]:
    chunk: list[tuple[MemoryRecord, bytes]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _move_records(
    src: RecordStore,
    dst: RecordStore,
    chunk: Sequence[tuple[MemoryRecord, bytes]],
    report: MigrateReport,
) -> None:
    """One batch: the records not in ``dst`` yet, with their history, in one transaction."""
    absent: list[NewRecord] = []
    for record, vector in chunk:
        history = src.history(record.id)
        if dst.get(record.id, None) is not None or (record.key_of is not None and any(
                key.id == record.id for key in dst.keys_of(record.key_of))):  # fmt: skip
            report.records.present += 1
            report.history.present += len(history)
            continue
        past = tuple((h.event, h.old_text, h.new_text, h.actor, h.at) for h in history)
        again = tuple((o.at, o.metadata, o.actor) for o in src.occurrences(record.id))
        absent.append(NewRecord(record, np.frombuffer(vector, dtype=np.float32), past, again))
    if not absent:
        return
    inserted = dst.insert(absent, actor="migrate")  # one transaction: all of them or none
    for item, ok in zip(absent, inserted, strict=True):
        if ok:
            report.records.moved += 1
            report.history.moved += len(item.history)
        elif dst.get(item.record.id, None) is not None:  # written meanwhile by someone else
            report.records.present += 1
            report.history.present += len(item.history)
        else:
            report.records.skipped += 1
            report.notes.append(
                f"record {item.record.id} left out: its text is already stored in its scope "
                "under another id"
            )


def _neural_log(src: RecordStore) -> NeuralLog | None:
    """The neural log of ``src``; None when a read-only source has no neural tables."""
    try:
        return src.neural()
    except ReadOnlyError:
        return None


def _neural_names(log: NeuralLog, scopes: set[str]) -> list[str]:
    """The scopes with a neural memory (those the log lists, and the records' scopes)."""
    return sorted(set(scopes) | set(log.names()))


def _move_neural(
    src: NeuralLog,
    state: tuple[int, bytes, str],
    records: RecordStore,
    name: str,
    report: MigrateReport,
) -> None:
    """One scope's neural memory (``state`` and its write log), in one transaction."""
    step, blob, embedder = state
    dst = records.neural()
    there, head = dst.head(name), src.head(name)
    if there is not None:
        if there == head:
            report.neural.present += 1
        else:
            report.neural.skipped += 1
            report.notes.append(
                f"neural memory of {name} left out: the destination's is at step {there}, "
                f"the source's at {head}"
            )
        return
    log = src.log(name)

    def write() -> None:
        for group in _writes(log):
            dst.append(name, group[0][0], group[0][1], [(row[2], row[3]) for row in group])
        at = log[-1][1] if log else time.time()
        dst.put(name, embedder, step, blob, at, [])  # the checkpoint as stored, at its step

    records.atomic(write)
    report.neural.moved += 1


def _writes(log: Sequence[tuple[int, float, bytes, bytes]]) -> list[list[Any]]:
    """The log's rows grouped by write (consecutive rows of one step)."""
    out: list[list[Any]] = []
    for row in log:
        if out and out[-1][0][0] == row[0]:
            out[-1].append(row)
        else:
            out.append([row])
    return out

"""Export and import of a memory store as JSON lines (:mod:`memora.memory.jsonl`): every
record with its vector, history and occurrences."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from memora.errors import InvalidRecordError
from memora.memory import jsonl
from memora.memory.contract import RecordStore

__all__ = ["StoreSide", "Transfer"]


class StoreSide:
    """What :class:`~memora.memory.store.MemoryStore` provides to the parts mixed into it
    (:class:`Transfer`, :class:`~memora.memory.retrieval.Retrieval`): declared here, defined by
    :class:`~memora.memory.parts.DerivedParts`, which comes first in the store's bases."""

    records: RecordStore
    max_text_chars: int

    @property
    def space(self) -> str:
        raise NotImplementedError

    @property
    def embedder(self) -> Any:
        raise NotImplementedError

    @property
    def vectors(self) -> Any:
        raise NotImplementedError

    def _open(self, *, write: bool = False) -> None:
        raise NotImplementedError

    def _sync_view(self) -> None:
        raise NotImplementedError

    def embed(self, texts: builtins.list[str]) -> np.ndarray:
        raise NotImplementedError


class Transfer(StoreSide):
    """Export and import, mixed into :class:`~memora.memory.store.MemoryStore`."""

    def export(self, out: IO[str], *, include_deleted: bool = False) -> int:
        """Write every record (all scopes) as JSON lines, with its history, occurrences and
        vector."""
        self._open()
        count = 0
        for record, vector in self.records.export(include_deleted):
            history, again = self.records.history(record.id), self.records.occurrences(record.id)
            out.write(jsonl.encode(record, vector, history, again) + "\n")
            count += 1
        return count

    def parse_import(self, lines: Iterable[str], *, source: str | Path = "<input>",
                     first_line: int = 1) -> builtins.list[jsonl.Imported]:  # fmt: skip
        """Check every line of an export against this store (fields, types, vector length and
        values, text length) without writing anything; a bad line raises
        :class:`~memora.errors.BatchInputError` naming ``source`` and its line number."""
        self._open()
        parsed = jsonl.parse(lines, space=self.space, dim=self.embedder.dim, source=source,
                             first_line=first_line, max_chars=self.max_text_chars)  # fmt: skip
        return parsed

    def import_(self, lines: Iterable[str] | Sequence[jsonl.Imported], *,
                actor: str = "import") -> tuple[int, int]:  # fmt: skip
        """Read records written by :meth:`export` (lines, or what :meth:`parse_import` made of
        them); returns (imported, skipped). Every line is checked before anything is written.
        A record whose id or text is already in its scope is skipped. Vectors of this store's
        embedder are reused, others re-embedded. Everything commits in one transaction."""
        self._open(write=True)
        items = list(lines)
        parsed = [i for i in items if isinstance(i, jsonl.Imported)]
        if len(parsed) != len(items):
            lines = [i for i in items if isinstance(i, str)]
            if len(lines) != len(items):
                raise InvalidRecordError(
                    "import_ takes the lines of an export (strings), or what parse_import "
                    "returned, not a mix or other values"
                )
            parsed = self.parse_import(lines)
        new = jsonl.to_new_records(parsed, self.space, self.embedder.dim, self.embed, actor)
        self.vectors.sync()  # opened before the write, saved on close

        def write() -> int:
            records = [i for i in new if i.record.key_of is None]
            imported = sum(self.records.insert(records, actor=actor))
            keys = [i for i in new if i.record.key_of is not None  # a key needs its record
                    and self.records.get(i.record.key_of, None) is not None]  # fmt: skip
            imported += sum(self.records.insert(keys, actor=actor))
            self.records.after_commit(self._sync_view)
            return imported

        imported = int(self.records.atomic(write))
        return imported, len(new) - imported

"""Export and import of the memory store as JSON lines (records, history, vectors)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import IO

import numpy as np

from memora.errors import InvalidRecordError, ScopeError
from memora.memory.rows import COLUMNS, check_text, to_record
from memora.memory.store import MemoryStore
from memora.memory.types import MemoryRecord
from memora.memory.types import content_hash as _hash

__all__ = ["export_jsonl", "import_jsonl"]


def export_jsonl(store: MemoryStore, out: IO[str], *, include_deleted: bool = False) -> int:
    """Write every record (all scopes) as JSON lines, with its history and vector."""
    with store.db.lock:
        rows = store.db.conn.execute(
            f"SELECT {COLUMNS}, vector FROM memories "
            + ("" if include_deleted else "WHERE deleted_at IS NULL ")
            + "ORDER BY rowid"
        ).fetchall()
    count = 0
    for row in rows:
        record = to_record(row[:-1])
        data = record.to_dict()
        data["vector"] = base64.b64encode(row[-1]).decode("ascii")
        data["history"] = [h.to_dict() for h in store.history(record.id, all_scopes=True)]
        out.write(json.dumps(data, ensure_ascii=False) + "\n")
        count += 1
    return count


def import_jsonl(
    store: MemoryStore, lines: Iterable[str], *, actor: str = "import"
) -> tuple[int, int]:
    """Read records written by :meth:`export`; returns (imported, skipped). A record whose
    id or text is already in its scope is skipped. Vectors of this store's embedder are
    reused, others re-embedded. Everything commits in one transaction."""
    parsed = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            record = MemoryRecord.from_dict(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidRecordError(f"line {number} is not an exported memory: {exc}") from exc
        if record.scope.empty:
            raise ScopeError(f"line {number}: the record has no scope")
        check_text(record.text, store.max_text_chars)
        parsed.append((record, data))
    reuse = [
        np.frombuffer(base64.b64decode(d["vector"]), dtype=np.float32)
        if r.embedder == store.space and d.get("vector")
        else None
        for r, d in parsed
    ]
    need = [i for i, v in enumerate(reuse) if v is None]
    for i, vector in zip(need, store._embed([parsed[i][0].text for i in need]), strict=True):
        reuse[i] = vector
    imported = 0
    with store.db.write() as conn:
        seq = store.db.next_seq()
        for (record, data), vector in zip(parsed, reuse, strict=True):
            assert vector is not None
            cursor = conn.execute(
                "INSERT INTO memories (id, user_id, agent_id, session_id, scope_key, text, "
                "metadata, content_hash, embedder, dim, vector, created_at, updated_at, "
                "expires_at, deleted_at, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT DO NOTHING",
                (
                    record.id, record.scope.user_id, record.scope.agent_id,
                    record.scope.session_id, record.scope.key(), record.text,
                    json.dumps(record.metadata), _hash(record.text), store.space,
                    store.embedder.dim, vector.astype(np.float32).tobytes(),
                    record.created_at, record.updated_at, record.expires_at,
                    record.deleted_at, seq,
                ),
            )  # fmt: skip
            if cursor.rowcount == 0:
                continue
            imported += 1
            entries = data.get("history") or [
                {"event": "ADD", "old_text": None, "new_text": record.text, "actor": actor,
                 "at": record.created_at}
            ]  # fmt: skip
            conn.executemany(
                "INSERT INTO history (memory_id, event, old_text, new_text, actor, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (record.id, h["event"], h.get("old_text"), h.get("new_text"),
                     h.get("actor", actor), h["at"])
                    for h in entries
                ],
            )  # fmt: skip
    store._sync()
    return imported, len(parsed) - imported

"""Which files memora opens: its own, or nothing is written."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from memora._sqlite import Database
from memora.errors import DamagedFileError, NotMemoraFileError, ReadOnlyError
from memora.memory.records import MEMORY


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def other_app(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
    conn.close()
    return path


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize(
    "make",
    [
        other_app,
        lambda p: p.write_text("just some notes\n") and p,
        lambda p: p.write_bytes(bytes(range(256)) * 8) and p,
    ],
    ids=["other-app", "text", "binary"],
)
def test_a_file_that_is_not_memoras_is_refused_unchanged(
    tmp_path: Path, make: object, readonly: bool
) -> None:
    path = tmp_path / "x.db"
    make(path)  # type: ignore[operator]
    before = digest(path)
    with pytest.raises(NotMemoraFileError, match="left as it was"):
        Database(path, readonly=readonly)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]  # no -wal, no -shm


def test_a_damaged_sqlite_file_is_named_damaged_and_left_unchanged(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    db = Database(good)
    db.ensure(MEMORY)
    db.close()
    data = good.read_bytes()
    for name, damaged in (("header-and-junk", b"SQLite format 3\x00" + b"\x07" * 200),
                          ("zeroed-schema", data[:100] + bytes(len(data) - 100))):  # fmt: skip
        path = tmp_path / f"{name}.db"
        path.write_bytes(damaged)
        with pytest.raises(DamagedFileError) as caught:
            Database(path).ensure(MEMORY)
        assert "left as it was" in str(caught.value) or "damaged" in str(caught.value), name
        assert path.read_bytes() == damaged, name


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotMemoraFileError, match="folder"):
        Database(tmp_path)


def test_read_only_opens_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(ReadOnlyError, match="does not exist"):
        Database(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(ReadOnlyError, match="has no memory tables"):
        Database(empty, readonly=True).ensure(MEMORY)
    writer = Database(tmp_path / "m.db")
    writer.ensure(MEMORY)
    writer.close()
    reader = Database(tmp_path / "m.db", readonly=True)
    reader.ensure(MEMORY)  # current: nothing to write
    assert reader.version_of("memory") == MEMORY.version
    with pytest.raises(sqlite3.OperationalError, match="readonly"), reader.write() as conn:
        conn.execute("DELETE FROM memories")
    reader.close()

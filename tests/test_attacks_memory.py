"""Attacks on `memora memory ...`: bad input files, damaged or foreign stores, paths in the way.

Each row runs the real command in a subprocess (tests/attack.py): one `error:` line naming the
class, no traceback, the named files byte-for-byte unchanged, and the store still opening with
all its records.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from attack import Case, run_case, unwritable

from memora.memory.store import MemoryStore
from memora.memory.types import Scope

pytestmark = pytest.mark.slow

_BASE: list[Path] = []
TEXTS = ["Alice likes green tea.", "Alice has a dog named Rex.", "Bob drinks coffee."]


def base_dir() -> Path:
    """A store with three records and its export, made once per test session."""
    if not _BASE:
        folder = Path(tempfile.mkdtemp(prefix="memora-attack-"))
        with MemoryStore(folder / "m.db") as store:
            store.add_many(TEXTS[:2], user_id="alice")
            store.add(TEXTS[2], user_id="bob")
            with (folder / "good.jsonl").open("w", encoding="utf-8") as out:
                store.export(out)
        _BASE.append(folder)
    return _BASE[0]


def store(tmp: Path) -> None:
    shutil.copy(base_dir() / "m.db", tmp / "m.db")


def good_line(i: int = 0) -> dict[str, Any]:
    line = (base_dir() / "good.jsonl").read_text(encoding="utf-8").splitlines()[i]
    data: dict[str, Any] = json.loads(line)
    data["id"], data["text"] = f"new-{i}", f"A new memory number {i}."
    data["history"] = []
    return data


def import_file(*lines: str | dict[str, Any], good: int = 1) -> Callable[[Path], None]:
    """Setup: the store, and bad.jsonl with ``good`` valid lines, then ``lines``."""

    def setup(tmp: Path) -> None:
        store(tmp)
        rows = [json.dumps({**good_line(), "id": f"ok-{n}", "text": f"Fine memory {n}."})
                for n in range(good)]  # fmt: skip
        rows += [x if isinstance(x, str) else json.dumps(x) for x in lines]
        (tmp / "bad.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")

    return setup


def changed(**fields: Any) -> dict[str, Any]:
    """A valid line with ``fields`` replaced (a value of ... removes the field)."""
    data = good_line()
    for key, value in fields.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def floats(*values: float) -> str:
    return base64.b64encode(np.array(values, dtype=np.float32).tobytes()).decode()


def still_three(tmp: Path) -> None:
    with MemoryStore(tmp / "m.db", readonly=True) as opened:
        assert sorted(r.text for r in opened.list(all_scopes=True)) == sorted(TEXTS)
        assert opened.search("green tea", user_id="alice")[0].record.text == TEXTS[0]


def good_ones_searchable(tmp: Path) -> None:
    """A store with a damaged row: it opens, and its good records are all there and found."""
    with MemoryStore(tmp / "m.db", readonly=True) as opened:
        assert set(TEXTS) <= {r.text for r in opened.list(all_scopes=True)}
        assert opened.search("green tea", user_id="alice")[0].record.text == TEXTS[0]


def write_bytes(name: str, data: bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        store(tmp)
        (tmp / name).write_bytes(data)

    return setup


def foreign_db(tmp: Path) -> None:
    with sqlite3.connect(tmp / "o.db") as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")


def truncated(tmp: Path) -> None:
    (tmp / "cut.db").write_bytes((base_dir() / "m.db").read_bytes()[:8192])


def index_path_is_a_file(tmp: Path) -> None:
    store(tmp)
    shutil.rmtree(tmp / "m.db.index", ignore_errors=True)
    (tmp / "m.db.index").write_text("my notes\n")


def index_file_is_a_folder(tmp: Path) -> None:
    store(tmp)
    index = tmp / "m.db.index"
    shutil.rmtree(index, ignore_errors=True)
    (index / "all-MiniLM-L6-v2.faiss").mkdir(parents=True)
    (index / "all-MiniLM-L6-v2.faiss" / "keep.txt").write_text("mine\n")


def bricked(tmp: Path) -> None:
    """The store plus a row whose vector has 3 values, as imports before the checks wrote."""
    store(tmp)
    with sqlite3.connect(tmp / "m.db") as conn:
        seq = int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0]) + 1
        conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (str(seq),))
        conn.execute(
            "INSERT INTO memories (id, user_id, scope_key, text, content_hash, embedder, dim, "
            "vector, created_at, updated_at, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            ("broken", "alice", '["alice", null, null]', "Alice likes tea, damaged.", "h",
             "all-MiniLM-L6-v2", 384, np.ones(3, dtype=np.float32).tobytes(), 1.0, 1.0, seq),
        )  # fmt: skip


IMPORT = ["memory", "import", "{tmp}/bad.jsonl", "--db", "{tmp}/m.db"]
LIST = ["memory", "list", "--all-scopes", "--db"]
BAD = "BatchInputError"


def bad_import(case_id: str, setup: Callable[[Path], None], says: str) -> Case:
    return Case(case_id, IMPORT, setup=setup, error=BAD, says=says,
                unchanged=("m.db", "bad.jsonl"), after=still_three)  # fmt: skip


# fmt: off
CASES = [
    bad_import("import-not-json", import_file("{not json"), "bad.jsonl:2: not an exported"),
    bad_import("import-json-array", import_file("[1, 2]"), "bad.jsonl:2: not an exported"),
    bad_import("import-real-line-number", import_file("{", good=300), "bad.jsonl:301:"),
    bad_import("import-short-vector", import_file(changed(vector=floats(1, 2, 3))), "12 bytes"),
    Case("import-bad-file-into-a-new-store",
         ["memory", "import", "{tmp}/bad.jsonl", "--db", "{tmp}/new.db"],
         setup=import_file(changed(vector=floats(1, 2, 3))), error=BAD, says="12 bytes",
         unchanged=("bad.jsonl", "new.db", "new.db.index")),  # nothing created
    bad_import("import-vector-other-dim",
               import_file(changed(dim=3, vector=floats(1, 0, 0))), "dimension 384"),
    bad_import("import-nan-vector", import_file(changed(vector=floats(*[np.nan] * 384))), "NaN"),
    bad_import("import-bad-base64", import_file(changed(vector="***")), "base64"),
    bad_import("import-vector-number", import_file(changed(vector=12)), "'vector'"),
    bad_import("import-embedder-number", import_file(changed(embedder=5)), "'embedder'"),
    bad_import("import-dim-bool", import_file(changed(dim=True)), "'dim'"),
    bad_import("import-no-text", import_file(changed(text=...)), "'text'"),
    bad_import("import-text-number", import_file(changed(text=42)), "'text'"),
    bad_import("import-no-scope", import_file(changed(scope=...)), "'scope'"),
    bad_import("import-empty-scope", import_file(changed(scope={})), "no scope"),
    bad_import("import-scope-list", import_file(changed(scope=["alice"])), "'scope'"),
    bad_import("import-scope-number", import_file(changed(scope={"user_id": 5})), "user_id"),
    bad_import("import-scope-unknown", import_file(changed(scope={"team": "x"})), "team"),
    bad_import("import-created-text", import_file(changed(created_at="today")), "created_at"),
    bad_import("import-metadata-list", import_file(changed(metadata=[1])), "'metadata'"),
    bad_import("import-metadata-nan", import_file(changed(metadata={"x": float("nan")})),
               "metadata must be JSON"),
    bad_import("import-unknown-field", import_file(changed(colour="red")), "colour"),
    bad_import("import-salient-text", import_file(changed(salient="yes")), "'salient'"),
    bad_import("import-history-dict", import_file(changed(history={"a": 1})), "'history'"),
    bad_import("import-history-event", import_file(changed(history=[{"event": "X", "at": 1}])),
               "history entry"),
    bad_import("import-history-at", import_file(changed(history=[{"event": "ADD", "at": "x"}])),
               "'at'"),
    bad_import("import-history-other-id", import_file(changed(
        history=[{"event": "ADD", "at": 1.0, "memory_id": "zzz"}])), "zzz"),
    bad_import("import-not-utf8", write_bytes("bad.jsonl", b'{"id": "x"}\n\xff\xfe\n'),
               "bad.jsonl:2: not UTF-8"),
    bad_import("import-binary", write_bytes("bad.jsonl", bytes(range(256)) * 4), "not UTF-8"),
    Case("import-too-long", [*IMPORT, "--max-text-chars", "5"], setup=import_file(), error=BAD,
         says="--max-text-chars", unchanged=("m.db",), after=still_three),
    Case("list-missing-file", [*LIST, "{tmp}/nope.db"], error="ReadOnlyError",
         unchanged=("nope.db",)),
    Case("list-text-file", [*LIST, "{tmp}/notes.txt"], setup=write_bytes("notes.txt", b"hi\n"),
         error="NotMemoraFileError", unchanged=("notes.txt",)),
    Case("list-garbage", [*LIST, "{tmp}/g.db"], setup=write_bytes("g.db", os.urandom(9000)),
         error="NotMemoraFileError", unchanged=("g.db",)),
    Case("list-truncated", [*LIST, "{tmp}/cut.db"], setup=truncated, error="DamagedFileError",
         says="Restore it from a copy", unchanged=("cut.db",)),
    Case("search-foreign-db", ["memory", "search", "x", "--all-scopes", "--db", "{tmp}/o.db"],
         setup=foreign_db, error="NotMemoraFileError", unchanged=("o.db",)),
    Case("export-foreign-db", ["memory", "export", "--db", "{tmp}/o.db"], setup=foreign_db,
         error="NotMemoraFileError", unchanged=("o.db",)),
    Case("history-missing-file", ["memory", "history", "x", "--all-scopes", "--db", "{tmp}/n.db"],
         error="ReadOnlyError", unchanged=("n.db",)),
    Case("add-index-path-a-file", ["memory", "add", "x", "--user", "u", "--db", "{tmp}/m.db"],
         setup=index_path_is_a_file, error="NotMemoraFileError", says="m.db.index",
         unchanged=("m.db", "m.db.index"), after=still_three),
    Case("add-index-file-a-folder", ["memory", "add", "x", "--user", "u", "--db", "{tmp}/m.db"],
         setup=index_file_is_a_folder, error="NotMemoraFileError", says="faiss is a folder",
         unchanged=("m.db", "m.db.index/all-MiniLM-L6-v2.faiss"), after=still_three),
    Case("search-no-scope", ["memory", "search", "tea", "--db", "{tmp}/m.db"], setup=store,
         error="ScopeError", says="--all-scopes", unchanged=("m.db",)),
    Case("list-folder", [*LIST, "{tmp}/dir.db"], setup=lambda tmp: (tmp / "dir.db").mkdir(),
         error="NotMemoraFileError", says="is a folder", unchanged=("dir.db",)),
    Case("doctor-foreign-db", ["memory", "doctor", "--db", "{tmp}/o.db"], setup=foreign_db,
         error="NotMemoraFileError", unchanged=("o.db",)),
    Case("delete-foreign-db", ["memory", "delete", "x", "--all-scopes", "--db", "{tmp}/o.db"],
         setup=foreign_db, error="NotMemoraFileError", unchanged=("o.db",)),
    Case("doctor-repairs-a-bricked-store", ["memory", "doctor", "--repair", "--db", "{tmp}/m.db"],
         setup=bricked, error=None, after=still_three),
    Case("list-bricked", [*LIST, "{tmp}/m.db"], setup=bricked, error=None,
         unchanged=("m.db",)),
    Case("rebuild-bricked", ["memory", "rebuild", "--db", "{tmp}/m.db"], setup=bricked,
         error=None, after=good_ones_searchable),
    Case("search-garbage", ["memory", "search", "x", "--user", "u", "--db", "{tmp}/g.db"],
         setup=write_bytes("g.db", os.urandom(9000)), error="NotMemoraFileError",
         unchanged=("g.db",)),
    Case("add-text-file", ["memory", "add", "x", "--user", "u", "--db", "{tmp}/notes.txt"],
         setup=write_bytes("notes.txt", b"hi\n"), error="NotMemoraFileError",
         unchanged=("notes.txt",)),
    Case("import-into-truncated", ["memory", "import", "{tmp}/bad.jsonl", "--db", "{tmp}/cut.db"],
         setup=lambda tmp: (import_file(good_line())(tmp), truncated(tmp)),
         error="DamagedFileError", unchanged=("cut.db", "bad.jsonl")),
    Case("doctor-truncated", ["memory", "doctor", "--repair", "--db", "{tmp}/cut.db"],
         setup=truncated, error="DamagedFileError", unchanged=("cut.db",)),
    Case("list-all-users-alone", ["memory", "list", "--all-users", "--db", "{tmp}/m.db"],
         setup=store, error="ScopeError", says="--all-users", unchanged=("m.db",)),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=str)
def test_attack(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)


def test_read_commands_write_nothing(tmp_path: Path) -> None:
    """list, get, history, search and export leave the store's files as they were."""
    store(tmp_path)
    rid = MemoryStore(tmp_path / "m.db", readonly=True).list(all_scopes=True)[0].id
    names = sorted(p.name for p in tmp_path.iterdir())
    reads = [
        ["memory", "list", "--all-scopes", "--db", "{tmp}/m.db"],
        ["memory", "get", rid, "--all-scopes", "--db", "{tmp}/m.db"],
        ["memory", "history", rid, "--user", "alice", "--db", "{tmp}/m.db"],
        ["memory", "search", "tea", "--user", "alice", "--db", "{tmp}/m.db"],
        ["memory", "export", "--db", "{tmp}/m.db"],
    ]
    for argv in reads:
        run_case(Case(argv[1], argv, unchanged=("m.db",)), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".memora-data") == names


def test_a_bricked_store_still_searches_and_names_the_repair(tmp_path: Path) -> None:
    argv = ["memory", "search", "tea", "--user", "alice", "--json", "--db", "{tmp}/m.db"]
    done = run_case(Case("search-bricked", argv, setup=bricked, unchanged=("m.db",)), tmp_path)
    hits = [json.loads(line)["id"] for line in done.stdout.splitlines()]
    assert hits and "broken" not in hits
    warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "memora memory doctor --db" in warning[0], done.stderr


def test_a_read_only_file_is_read_and_never_written(tmp_path: Path) -> None:
    store(tmp_path)
    with unwritable(tmp_path / "m.db"):
        run_case(Case("list", [*LIST, "{tmp}/m.db"], unchanged=("m.db",)), tmp_path)
        add = ["memory", "add", "x", "--user", "u", "--db", "{tmp}/m.db"]
        case = Case("add", add, error="ReadOnlyError", says="chmod", unchanged=("m.db",))
        run_case(case, tmp_path)


def test_another_embedders_records_are_re_embedded_and_said(tmp_path: Path) -> None:
    other = changed(embedder="some-other-model", dim=3, vector=floats(1, 2, 3))
    done = run_case(Case("import-other-embedder", IMPORT, setup=import_file(other)), tmp_path)
    assert "re-embedding 1 memories" in done.stderr and "some-other-model" in done.stderr
    with MemoryStore(tmp_path / "m.db", readonly=True) as opened:
        record = opened.get("new-0", all_scopes=True)
        assert record.embedder == opened.space and record.dim == opened.embedder.dim
        assert opened.search(record.text, all_scopes=True, k=1)[0].record.id == "new-0"


def test_scope_reads_fail_closed_from_the_cli(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "s.db") as opened:
        opened.add("The bot's own note.", agent_id="bot")
        opened.add("Alice told the bot a secret.", agent_id="bot", user_id="alice")
    argv = ["memory", "list", "--agent", "bot", "--db", "{tmp}/s.db"]
    done = run_case(Case("agent-only", argv), tmp_path)
    assert "own note" in done.stdout and "secret" not in done.stdout
    done = run_case(Case("all-users", [*argv, "--all-users"]), tmp_path)
    assert "own note" in done.stdout and "secret" in done.stdout
    assert Scope(agent_id="bot").user_id is None
    search = ["memory", "search", "what secret did alice tell", "--agent", "bot", "--json",
              "--db", "{tmp}/s.db"]  # fmt: skip
    done = run_case(Case("search-agent-only", search), tmp_path)
    assert "own note" in done.stdout and "secret" not in done.stdout
    done = run_case(Case("search-all-users", [*search, "--all-users"]), tmp_path)
    assert "secret" in done.stdout

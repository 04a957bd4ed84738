"""`memora memory ...` end to end, in process, on a real store file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from memora.cli import main

pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["memory", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_memory_command(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    out = run("add", "Alice likes green tea.", "Alice has a dog named Rex.", "--db", db,
              "--user", "alice", "--metadata", '{"src": "cli"}')  # fmt: skip
    assert out.count("added") == 2
    assert "exists" in run("add", "alice likes green tea.", "--db", db, "--user", "alice")
    run("add", "Bob likes coffee.", "--db", db, "--user", "bob")

    hits = [json.loads(line) for line in run(
        "search", "what does alice drink", "--db", db, "--user", "alice", "--json"
    ).splitlines()]  # fmt: skip
    assert hits[0]["text"] == "Alice likes green tea."
    assert {h["scope"]["user_id"] for h in hits} == {"alice"}
    tea_id = hits[0]["id"]

    listed = run("list", "--db", db, "--user", "alice").splitlines()
    assert len(listed) == 2 and all("\t" in line for line in listed)

    run("delete", tea_id, "--db", db, "--user", "alice")
    assert "DELETE" in run("history", tea_id, "--db", db, "--user", "alice")
    assert len(run("list", "--db", db, "--user", "alice").splitlines()) == 1
    assert len(run("list", "--db", db, "--all-scopes").splitlines()) == 2

    dump = tmp_path / "dump.jsonl"
    run("export", "--db", db, "-o", str(dump))
    assert len(dump.read_text().splitlines()) == 2
    copy = str(tmp_path / "copy.db")
    assert "imported 2, skipped 0" in run("import", str(dump), "--db", copy)
    assert "imported 0, skipped 2" in run("import", str(dump), "--db", copy)
    assert "consistent" in run("rebuild", "--db", copy)
    assert "healthy" in run("doctor", "--db", copy)


def test_get_and_update(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    rid = run("add", "Alice likes green tea.", "--db", db, "--user", "alice").split("\t")[1]
    assert (
        run("get", rid, "--db", db, "--user", "alice").strip() == f"{rid}\tAlice likes green tea."
    )
    out = run("update", rid, "Alice prefers black coffee.", "--db", db, "--user", "alice",
              "--metadata", '{"src": "fix"}')  # fmt: skip
    assert out.startswith("updated")
    record = json.loads(run("get", rid, "--db", db, "--user", "alice", "--json"))
    assert record["text"] == "Alice prefers black coffee." and record["metadata"] == {"src": "fix"}
    hits = run("search", "coffee", "--db", db, "--user", "alice", "--json").splitlines()
    assert json.loads(hits[0])["id"] == rid
    assert "UPDATE" in run("history", rid, "--db", db, "--user", "alice")
    result = CliRunner().invoke(main, ["memory", "update", rid, "x", "--db", db, "--user", "bob"])
    assert result.exit_code == 1 and "RecordNotFoundError" in result.output
    result = CliRunner().invoke(main, ["memory", "add", "too long", "--db", db, "--user", "u",
                                       "--max-text-chars", "3"])  # fmt: skip
    assert result.exit_code == 1 and "--max-text-chars" in result.output


def test_errors_name_the_fix(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    result = CliRunner().invoke(main, ["memory", "search", "tea", "--db", db])
    assert result.exit_code == 1
    assert "ScopeError" in result.output and "--all-scopes" in result.output
    assert "all_scopes" not in result.output  # CLI flags, not Python parameters
    result = CliRunner().invoke(main, ["memory", "add", "x", "--db", db])
    assert result.exit_code == 1 and "needs a scope" in result.output
    result = CliRunner().invoke(main, ["memory", "add", "x", "--db", db, "--user", "u",
                                       "--metadata", "{bad"])  # fmt: skip
    assert result.exit_code == 1 and "not JSON" in result.output


def test_the_embedder_setting_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "cli.db"
    monkeypatch.setenv("MEMORA_EMBEDDER", "no-such-embedder")
    result = CliRunner().invoke(main, ["memory", "add", "x", "--db", str(db), "--user", "u"])
    assert result.exit_code == 1
    assert "no bundled embedder named 'no-such-embedder'" in result.output
    assert not db.exists()  # refused before the store was opened

"""`memora memory add --occurred-at/--key`, `memory keys ...` and the retrieval options of
`memora memory search` end to end, in process, on a real store file (the bundled MiniLM)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from memora.cli import main

pytestmark = pytest.mark.slow


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["memory", *args])


def run(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def hits(*args: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in run("search", *args, "--json").splitlines()]


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """A diary of one user: four dated memories (one with search keys) and one undated."""
    db = str(tmp_path_factory.mktemp("retrieval") / "diary.db")
    texts = {
        "hike": ("Went hiking at Mount Tam with Bob.", "2024-03-03"),
        "dinner": ("Had dinner with my sister in Oakland.", "2024-03-05T19:30"),
        "laptop": ("Bought a new laptop for work.", "2024-03-10T18:30+02:00"),
        "dentist": ("Dentist appointment, one filling.", "2024-03-20"),
    }
    ids = {}
    for name, (text, when) in texts.items():
        extra = ["--key", "weekend trip", "--key", "outdoor plans"] if name == "hike" else []
        out = run("add", text, "--db", db, "--user", "ann", "--occurred-at", when, *extra)
        ids[name] = out.splitlines()[0].split("\t")[1]
    ids["spanish"] = run("add", "Started learning Spanish.", "--db", db, "--user", "ann").split(
        "\t"
    )[1]
    return db, ids


def test_add_stores_the_occurred_time_and_the_keys(store: tuple[str, dict[str, str]]) -> None:
    db, ids = store
    record = json.loads(run("get", ids["hike"], "--db", db, "--user", "ann", "--json"))
    assert record["occurred_at"] == epoch("2024-03-03")
    laptop = json.loads(run("get", ids["laptop"], "--db", db, "--user", "ann", "--json"))
    assert laptop["occurred_at"] == epoch("2024-03-10T16:30")  # the offset is kept
    listed = run("list", "--db", db, "--user", "ann").splitlines()
    assert len(listed) == 5  # keys are never listed
    assert f"{ids['hike']}\tWent hiking at Mount Tam with Bob.\toccurred 2024-03-03 00:00" in listed
    assert f"{ids['spanish']}\tStarted learning Spanish." in listed  # no time given: none shown
    keys = run("keys", "list", ids["hike"], "--db", db, "--user", "ann").splitlines()
    assert [line.split("\t")[1] for line in keys] == ["weekend trip", "outdoor plans"]


def test_search_finds_a_memory_through_its_key(store: tuple[str, dict[str, str]]) -> None:
    db, ids = store
    (best, *_) = hits("weekend trip", "--db", db, "--user", "ann")
    assert best["id"] == ids["hike"] and best["via"] == "weekend trip"
    assert best["when"] == epoch("2024-03-03") and best["context"] == []
    table = run("search", "weekend trip", "--db", db, "--user", "ann", "-k", "1")
    assert "via: weekend" in table and "2024-03-03 00:00" in table
    plain = hits("weekend trip", "--db", db, "--user", "ann", "--no-keys")
    assert all(hit["via"] is None for hit in plain)


def test_after_and_before_filter_by_when_it_occurred(store: tuple[str, dict[str, str]]) -> None:
    db, ids = store
    found = hits("what did I do", "--db", db, "--user", "ann", "-k", "10",
                 "--after", "2024-03-04", "--before", "2024-03-11")  # fmt: skip
    assert {hit["id"] for hit in found} == {ids["dinner"], ids["laptop"]}
    later = hits("what did I do", "--db", db, "--user", "ann", "-k", "10",
                 "--after", "2024-03-10T17:00")  # fmt: skip
    assert ids["laptop"] not in {hit["id"] for hit in later}  # 16:30 UTC
    assert ids["dentist"] in {hit["id"] for hit in later}
    for fusion in ("score", "rrf"):
        ranked = hits("hiking with Bob", "--db", db, "--user", "ann", "--fusion", fusion)
        assert ranked[0]["id"] == ids["hike"]
    result = invoke("search", "x", "--db", db, "--user", "ann",
                    "--after", "2024-03-11", "--before", "2024-03-04")  # fmt: skip
    assert result.exit_code == 2 and "--after must be earlier than --before" in result.output


def test_neighbours_show_the_memories_around_a_hit(store: tuple[str, dict[str, str]]) -> None:
    db, ids = store
    (best, *_) = hits("dinner with my sister", "--db", db, "--user", "ann", "--neighbours", "1")
    assert best["id"] == ids["dinner"]
    assert [r["id"] for r in best["context"]] == [ids["hike"], ids["laptop"]]  # time order
    table = run("search", "dinner with my sister", "--db", db, "--user", "ann", "-k", "1",
                "--neighbours", "1")  # fmt: skip
    assert table.index("| 2024-03-03") < table.index("Had dinner") < table.index("| 2024-03-10")
    assert "Mount Tam" in table and "laptop" in table


def test_abstention_says_nothing_relevant_is_stored(store: tuple[str, dict[str, str]]) -> None:
    db, _ = store
    query = "quantum chromodynamics on a lattice"
    result = invoke("search", query, "--db", db, "--user", "ann", "--abstain")
    assert result.exit_code == 0
    assert result.output.strip() == "nothing relevant stored (best similarity under 0.30)"
    result = CliRunner().invoke(main, ["memory", "search", query, "--db", db, "--user", "ann",
                                       "--abstain-below", "0.9", "--json"])  # fmt: skip
    assert result.exit_code == 0 and result.stdout == ""  # stdout stays JSON lines
    assert "nothing relevant stored (best similarity under 0.90)" in result.stderr
    assert hits(query, "--db", db, "--user", "ann")  # without abstention: the nearest anyway
    assert hits("hiking with Bob", "--db", db, "--user", "ann", "--abstain")


@pytest.mark.parametrize("when", ["yesterday", "2024-13-01", "03/03/2024", ""])
def test_a_bad_occurred_at_is_a_usage_error(tmp_path: Path, when: str) -> None:
    db = tmp_path / "bad.db"
    result = invoke("add", "Alice likes tea.", "--db", str(db), "--user", "u",
                    "--occurred-at", when)  # fmt: skip
    assert result.exit_code == 2
    assert "--occurred-at" in result.output and "YYYY-MM-DD" in result.output
    assert "Traceback" not in result.output
    assert not db.exists()  # nothing written
    result = invoke("search", "tea", "--db", str(db), "--user", "u", "--after", "last week")
    assert result.exit_code == 2 and "ISO 8601" in result.output


def test_keys_add_and_list(tmp_path: Path) -> None:
    db = str(tmp_path / "keys.db")
    rid = run("add", "Alice's dog is called Rex.", "--db", db, "--user", "alice").split("\t")[1]
    assert "has no search keys" in invoke("keys", "list", rid, "--db", db, "--user", "alice").output
    out = run("keys", "add", rid, "what is the pet's name", "animal", "--db", db, "--user", "alice")
    assert out.splitlines() == [f"added\t{rid}\twhat is the pet's name", f"added\t{rid}\tanimal"]
    out = run("keys", "add", rid, "Animal", "companion", "--db", db, "--user", "alice")
    assert out.splitlines() == [f"exists\t{rid}\tAnimal", f"added\t{rid}\tcompanion"]
    listed = run("keys", "list", rid, "--db", db, "--user", "alice", "--json").splitlines()
    assert [json.loads(line)["text"] for line in listed] == [
        "what is the pet's name", "animal", "companion",
    ]  # fmt: skip
    assert {json.loads(line)["key_of"] for line in listed} == {rid}
    (best, *_) = hits("what is the pet's name", "--db", db, "--user", "alice")
    assert best["id"] == rid and best["via"] == "what is the pet's name"

    other = invoke("keys", "add", rid, "x", "--db", db, "--user", "bob")  # another user's memory
    assert other.exit_code == 1 and "RecordNotFoundError" in other.output
    empty = invoke("keys", "add", rid, "  ", "--db", db, "--user", "alice")
    assert empty.exit_code == 1 and "InvalidRecordError" in empty.output
    assert "search key" in empty.output
    many = invoke("add", "a", "b", "--key", "k", "--db", db, "--user", "alice")
    assert many.exit_code == 2 and "--key goes with one TEXT" in many.output
    assert len(run("list", "--db", db, "--user", "alice").splitlines()) == 1  # nothing written


def test_search_reranks_its_first_hits(store: tuple[str, dict[str, str]]) -> None:
    db, _ = store
    plain = hits("what did I buy", "--db", db, "--user", "ann", "-k", "3")
    reranked = hits("what did I buy", "--db", db, "--user", "ann", "-k", "3",
                    "--rerank", "biencoder", "--rerank-depth", "3")  # fmt: skip
    assert sorted(h["id"] for h in reranked) == sorted(h["id"] for h in plain)
    assert all(h["rerank_score"] is not None for h in reranked)
    scores = [h["rerank_score"] for h in reranked]
    assert scores == sorted(scores, reverse=True)

"""The lorebook: keys and regex triggers, the token budget, order invariance, history and undo,
persistence in a real story file, and bad input that changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memora._sqlite import Database
from memora.errors import ConfigError, InvalidOptionError, RecordNotFoundError
from memora.recurrent.lore import (
    Lorebook,
    LoreEntry,
    LoreHistoryItem,
    compile_key,
    render_lore,
    select_lore,
)


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture
def book(tmp_path: Path) -> Lorebook:
    return Lorebook(Database(tmp_path / "story.db"))


def snapshot(book: Lorebook) -> tuple[list[LoreEntry], list[LoreHistoryItem]]:
    return book.entries(), book.history()


# -- keys -------------------------------------------------------------------------------------


def test_plain_keys_match_whole_words_in_any_case() -> None:
    assert compile_key("Ada").search("then ADA left")
    assert not compile_key("Ada").search("Adam left")
    assert not compile_key("cat").search("concatenate")
    assert compile_key("Old  Bridge").search("near the old\nbridge.")
    assert compile_key("C++").search("wrote C++ code")


def test_regex_keys_follow_their_flags() -> None:
    assert compile_key(r"/dragons?\b/").search("two dragons")
    assert not compile_key("/Dragon/").search("a dragon")
    assert compile_key("/Dragon/i").search("a dragon")


@pytest.mark.parametrize(
    ("key", "fix"),
    [
        ("/([a-z/", "not a valid regular expression"),
        ("/a*/", "--always"),
        ("   ", "give a word or phrase"),
        ("/" + "a" * 250 + "/", "keep keys under 200"),
    ],
)
def test_a_bad_key_is_refused_and_nothing_is_stored(book: Lorebook, key: str, fix: str) -> None:
    book.add("Tom", "A baker.", keys=["Tom"])
    before = snapshot(book)
    with pytest.raises(ConfigError, match=fix.replace("+", r"\+")):
        book.add("Ada", "A teacher.", keys=["Ada", key])
    with pytest.raises(ConfigError, match=fix.replace("+", r"\+")):
        book.edit(1, keys=[key])
    assert snapshot(book) == before


@pytest.mark.parametrize(
    ("fields", "fix"),
    [
        ({"name": " ", "text": "x", "keys": ["x"]}, "give it a name"),
        ({"name": "Ada", "text": "  ", "keys": ["x"]}, "say what it is"),
        ({"name": "Ada", "text": "A teacher."}, "give at least one key"),
        ({"name": "tom", "text": "Another.", "keys": ["x"]}, "already has an entry named 'Tom'"),
        ({"name": "Ada", "text": "x", "keys": [f"k{i}" for i in range(21)]}, "at most 20"),
        ({"name": "Ada", "text": "x" * 2001, "keys": ["x"]}, "under 2000"),
    ],
)
def test_bad_fields_are_refused_and_nothing_is_stored(
    book: Lorebook, fields: dict[str, object], fix: str
) -> None:
    book.add("Tom", "A baker.", keys=["Tom"])
    before = snapshot(book)
    with pytest.raises(ConfigError, match=fix):
        book.add(**fields)  # type: ignore[arg-type]
    assert snapshot(book) == before


def test_unknown_ids_name_how_to_list_them(book: Lorebook) -> None:
    for call in (lambda: book.get(7), lambda: book.edit(7, text="x"), lambda: book.remove(7)):
        with pytest.raises(RecordNotFoundError, match="lore list"):
            call()
    with pytest.raises(RecordNotFoundError, match="lore history"):
        book.undo(3)
    assert snapshot(book) == ([], [])


# -- triggers and budget ----------------------------------------------------------------------


def test_triggered_holds_always_on_entries_and_those_whose_key_is_found(book: Lorebook) -> None:
    tom = book.add("Tom", "A baker in a mountain town.", keys=["Tom", "baker"])
    book.add("Ada", "Tom's neighbour.", keys=["Ada"])
    sky = book.add("The sky", "It is always green here.", always=True)
    bridge = book.add("Old Bridge", "Where the stranger waits.", keys=[r"/\bbridges?\b/i"])
    found = book.triggered("The BAKER walked to the bridge.", budget=100, count_tokens=words)
    assert found == [tom, sky, bridge]
    assert book.triggered("Nothing here.", budget=100, count_tokens=words) == [sky]


def test_the_budget_takes_higher_priority_first_and_skips_what_does_not_fit(
    book: Lorebook,
) -> None:
    low = book.add("Low", "one two three", keys=["x"], priority=0)  # 5 words rendered
    big = book.add("Big", "one two three four five six seven", keys=["x"], priority=5)  # 9
    mid = book.add("Mid", "one two", keys=["x"], priority=3)  # 4
    assert [words(render_lore([e])) for e in (low, big, mid)] == [5, 9, 4]
    assert book.triggered("x", budget=18, count_tokens=words) == [low, big, mid]
    assert book.triggered("x", budget=13, count_tokens=words) == [big, mid]
    # Big (9) does not fit 8: skipped; Mid (4) fits, then Low (5) no longer does
    assert book.triggered("x", budget=8, count_tokens=words) == [mid]
    assert book.triggered("x", budget=5, count_tokens=words) == [mid]
    assert book.triggered("x", budget=0, count_tokens=words) == []
    with pytest.raises(InvalidOptionError, match="0 or more"):
        book.triggered("x", budget=-1, count_tokens=words)


def test_render_lore_is_one_line_per_entry() -> None:
    entry = LoreEntry(1, "Tom", ("Tom",), "A baker.\n  Tall.")
    assert render_lore([entry, LoreEntry(2, "Ada", (), "Neighbour.", always=True)]) == (
        "- Tom: A baker. Tall.\n- Ada: Neighbour."
    )
    assert render_lore([]) == ""


@settings(max_examples=60, deadline=None)
@given(
    priorities=st.lists(st.integers(-3, 3), min_size=1, max_size=8),
    budget=st.integers(0, 40),
    data=st.data(),
)
def test_the_choice_does_not_depend_on_the_order_entries_come_in(
    priorities: list[int], budget: int, data: st.DataObject
) -> None:
    entries = [
        LoreEntry(i + 1, f"E{i}", ("x",), " ".join(["w"] * (i % 4 + 1)), priority=p)
        for i, p in enumerate(priorities)
    ]
    expected = select_lore(entries, "x", budget=budget, count_tokens=words)
    shuffled = data.draw(st.permutations(entries))
    assert select_lore(shuffled, "x", budget=budget, count_tokens=words) == expected
    assert [e.id for e in expected] == sorted(e.id for e in expected)
    assert sum(words(render_lore([e])) for e in expected) <= budget


# -- history, undo, persistence ---------------------------------------------------------------


def test_every_change_is_in_the_history_and_each_undo_restores_the_state(
    book: Lorebook,
) -> None:
    states = [book.entries()]
    tom = book.add("Tom", "A baker.", keys=["Tom"])
    states.append(book.entries())
    book.edit(tom.id, text="A baker in a mountain town.", priority=2, actor="bible")
    states.append(book.entries())
    book.add("Ada", "Neighbour.", keys=["Ada"])
    states.append(book.entries())
    book.remove(tom.id)
    states.append(book.entries())
    history = book.history()
    assert [(h.action, h.entry_id, h.actor) for h in history] == [
        ("add", 1, "person"), ("edit", 1, "bible"), ("add", 2, "person"), ("remove", 1, "person")
    ]  # fmt: skip
    assert history[1].before == tom and history[1].after == states[2][0]
    # undo, newest first: each one returns the lorebook to the state before that change
    for item, state in zip(reversed(history), reversed(states[:-1]), strict=True):
        book.undo(item.id)
        assert book.entries() == state
    assert [h.action for h in book.history()[4:]] == ["undo"] * 4
    # an undo is a change too: undoing it redoes the change (Tom's add, with its old id)
    book.undo(book.history()[-1].id)
    assert book.entries() == [tom]


def test_undo_of_a_change_that_later_changes_followed_is_refused(book: Lorebook) -> None:
    tom = book.add("Tom", "A baker.", keys=["Tom"])
    book.edit(tom.id, text="A tall baker.")
    before = snapshot(book)
    with pytest.raises(ConfigError, match="undo the later changes first"):
        book.undo(book.history()[0].id)
    assert snapshot(book) == before


def test_undo_that_would_duplicate_a_name_is_refused(book: Lorebook) -> None:
    tom = book.add("Tom", "A baker.", keys=["Tom"])
    book.remove(tom.id)
    book.add("Tom", "Another Tom.", keys=["Tom"])
    before = snapshot(book)
    with pytest.raises(ConfigError, match="already has an entry named 'Tom'"):
        book.undo(2)
    assert snapshot(book) == before


def test_an_edit_that_changes_nothing_records_nothing(book: Lorebook) -> None:
    tom = book.add("Tom", "A baker.", keys=["Tom"])
    assert book.edit(tom.id, text="A baker.") == tom
    assert len(book.history()) == 1


def test_the_lorebook_is_kept_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "story.db"
    db = Database(path)
    book = Lorebook(db)
    book.add("Tom", "A baker.", keys=["Tom", "/bak(er|ery)/i"], priority=1)
    book.add("Sky", "Green.", always=True)
    book.remove(2)
    entries, history = snapshot(book)
    db.close()
    reopened = Lorebook(Database(path, readonly=True))
    assert snapshot(reopened) == (entries, history)
    assert reopened.triggered("the BAKERY", budget=50, count_tokens=words) == entries
    assert Lorebook(Database(path)).history() == history


def test_a_read_only_file_without_a_lorebook_reads_as_an_empty_one(tmp_path: Path) -> None:
    path = tmp_path / "story.db"
    Database(path).close()
    book = Lorebook(Database(path, readonly=True))
    assert book.entries() == [] and book.history() == []
    with pytest.raises(RecordNotFoundError):
        book.get(1)


def test_entries_and_history_items_round_trip_through_dicts(book: Lorebook) -> None:
    tom = book.add("Tom", "A baker.", keys=["Tom", "/x/i"], priority=-2, always=True)
    book.edit(tom.id, name="Tom Baker")
    assert LoreEntry.from_dict(tom.to_dict()) == tom
    for item in book.history():
        assert LoreHistoryItem.from_dict(item.to_dict()) == item

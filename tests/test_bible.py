"""Story bible proposals: one constrained call, changes checked against the paragraph, applied
through the lorebook (history, undo). A scripted model where the answer must be fixed; the
bundled model for what a real small model returns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from memora._sqlite import Database
from memora.errors import ConfigError, InvalidOptionError, OutputValidationError
from memora.recurrent.bible import (
    AUTO_ENTRY_CHARS,
    LoreChange,
    apply_changes,
    bible_messages,
    bible_schema,
    candidate_names,
    grounding_problem,
    propose_changes,
)
from memora.recurrent.lore import Lorebook, LoreEntry
from memora.testing import ScriptedLLM

PARAGRAPH = (
    "Tom walked to the mill at dawn. The miller, a woman called Greta, gave him a sack of rye "
    "flour and warned him about wolves near the pass."
)


def answer(*changes: dict[str, object]) -> str:
    return json.dumps({"changes": list(changes)})


def change(action: str, name: str, text: str) -> dict[str, object]:
    return {"action": action, "name": name, "text": text}


@pytest.fixture
def book(tmp_path: Path) -> Lorebook:
    return Lorebook(Database(tmp_path / "story.db"))


def test_changes_can_name_only_what_the_paragraph_or_the_lorebook_names() -> None:
    entries = [LoreEntry(1, "the mill", ("mill",), "Old."), LoreEntry(2, "Ada", ("Ada",), "x")]
    assert candidate_names(PARAGRAPH, entries) == ["Tom", "Greta", "the mill"]
    text = "The council met in the Glass Hall of Veridia. Queen Isolde's guard, and Tom, left."
    assert candidate_names(text) == ["Glass Hall", "Veridia", "Queen Isolde", "Tom"]
    # words capitalised only because they start a sentence are not names
    starts = "As night fell, I'd waited. He'd gone. I'm here. Don't. When Mara came, O'Brien ran."
    assert candidate_names(starts) == ["Mara", "O'Brien"]
    # nor pronouns with a possessive or a verb's "'s", time words, "You", or the prompt's "Task"
    seen = "She's gone. It's late. You know. Task: Tomorrow and Today. Sometimes Mike's dog ran."
    assert candidate_names(seen) == ["Mike"]
    schema = bible_schema(["Tom", "Greta"], updates=False)
    item = schema["properties"]["changes"]["items"]["properties"]
    assert item["name"]["enum"] == ["Tom", "Greta"] and item["action"]["enum"] == ["add"]
    # a name the paragraph does not have (the worked example's) is refused by the schema
    llm = ScriptedLLM([answer(change("add", "Ada", "Tom's neighbour, a retired teacher."))])
    with pytest.raises(OutputValidationError) as caught:
        propose_changes(llm, PARAGRAPH, [], retries=1)
    assert len(caught.value.outputs) == 2 and "Ada" in caught.value.outputs[0]
    # nothing a change could name: no call at all
    silent = ScriptedLLM(["{}"])
    assert propose_changes(silent, "it rained all night on the roofs.", []) == []
    assert silent.prompts == []


def test_an_ungrounded_change_is_never_applied_in_auto_mode(book: Lorebook) -> None:
    llm = ScriptedLLM([answer(
        change("add", "Greta", "The miller; she gave Tom rye flour."),
        change("add", "Tom", "Dragons breathing purple fire over castles."),
    )])  # fmt: skip
    changes = propose_changes(llm, PARAGRAPH, book.entries())
    assert len(llm.prompts) == 1
    invented = LoreChange("add", "Ada", ("Ada",), "Tom's neighbour, a retired teacher.")
    twice = LoreChange("add", "Pass", ("pass",), "Wolves near the pass. Wolves near the pass.")
    applied, rejected = apply_changes(book, [*changes, invented, twice], PARAGRAPH, mode="auto")
    assert [(e.name, e.keys) for e in applied] == [("Greta", ("Greta",))]
    assert book.entries() == applied
    assert [(c.name, why.split(" (")[0]) for c, why in rejected] == [
        ("Tom", "the text is not what the paragraph says"),
        ("Ada", "the name 'Ada' is not in the paragraph"),
        ("Pass", "the text repeats itself"),
    ]
    assert [(h.action, h.actor) for h in book.history()] == [("add", "bible")]
    book.undo(book.history()[0].id)
    assert book.entries() == []


def test_an_update_names_its_entry_and_appends_the_new_fact(book: Lorebook) -> None:
    tom = book.add("Tom", "A baker in a mountain town.", keys=["Tom"])
    llm = ScriptedLLM([answer(
        change("update", "Tom", "Tom got rye flour from the mill, a baker's errand."),
        change("add", "Tom", "Tom walked at dawn."),  # the same entry again: dropped
    )])  # fmt: skip
    changes = propose_changes(llm, PARAGRAPH, book.entries())
    assert changes == [
        LoreChange("update", "Tom", (), "Tom got rye flour from the mill, a baker's errand.", 1)
    ]
    # "baker" is not in the paragraph, but it is in the entry already: grounded
    applied, rejected = apply_changes(book, changes, PARAGRAPH, mode="auto")
    assert rejected == []
    assert applied == [
        LoreEntry(
            tom.id, "Tom", ("Tom",),
            "A baker in a mountain town. Tom got rye flour from the mill, a baker's errand.",
        )
    ]  # fmt: skip
    book.undo(book.history()[-1].id)
    assert book.entries() == [tom]


def test_an_add_naming_an_existing_entry_updates_it_and_an_update_of_nothing_adds(
    book: Lorebook,
) -> None:
    tom = book.add("Tom", "A baker.", keys=["Tom"])
    llm = ScriptedLLM([answer(
        change("add", "Tom", "Tom walked to the mill."),
        change("update", "Greta", "The miller who warned Tom about wolves."),
    )])  # fmt: skip
    changes = propose_changes(llm, PARAGRAPH, book.entries())
    assert [(c.action, c.entry_id, c.keys) for c in changes] == [
        ("update", tom.id, ()),
        ("add", None, ("Greta",)),
    ]


def test_person_mode_applies_what_the_person_chose_or_nothing(book: Lorebook) -> None:
    chosen = [LoreChange("add", "Ada", ("Ada",), "Tom's neighbour, a retired teacher.")]
    applied, rejected = apply_changes(book, chosen, PARAGRAPH, mode="person")
    assert [e.name for e in applied] == ["Ada"] and rejected == []
    before = (book.entries(), book.history())
    bad = [
        LoreChange("add", "Greta", ("Greta",), "The miller who gave Tom flour."),
        LoreChange("add", "Pass", ("/[wolves/",), "A mountain pass with wolves."),
    ]
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        apply_changes(book, bad, PARAGRAPH, mode="person")
    assert (book.entries(), book.history()) == before  # Greta was not kept either
    applied, rejected = apply_changes(book, bad, PARAGRAPH, mode="auto")
    assert [e.name for e in applied] == ["Greta"]
    assert "not a valid regular expression" in rejected[0][1]
    with pytest.raises(InvalidOptionError, match="'auto' or 'person'"):
        apply_changes(book, bad, PARAGRAPH, mode="yolo")  # type: ignore[arg-type]


def test_grounding_problem_checks_name_keys_and_text() -> None:
    def problem(name: str, keys: tuple[str, ...], text: str, known: str = "") -> str:
        return grounding_problem(LoreChange("add", name, keys, text), PARAGRAPH, known=known)

    assert problem("Greta", ("miller",), "The miller who gave Tom flour.") == ""
    assert "name 'Mira'" in problem("Mira", ("Mira",), "The miller who gave Tom flour.")
    assert "keys use words" in problem("Greta", ("witch",), "The miller who gave Tom flour.")
    assert "says nothing" in problem("Greta", ("Greta",), "She is Greta.")
    assert "not in it: castle" in problem("Greta", ("Greta",), "Greta owns the castle.")
    assert problem("Greta", ("Greta",), "Greta owns the castle.", known="a castle") == ""


def test_an_unusable_answer_is_a_typed_error_after_the_retries(book: Lorebook) -> None:
    llm = ScriptedLLM(['{"changes": [{"action": "delete", "name": "Tom", "text": "Tom left."}]}'])
    with pytest.raises(OutputValidationError) as caught:
        propose_changes(llm, PARAGRAPH, book.entries(), retries=1)
    assert len(caught.value.outputs) == 2 and len(llm.prompts) == 2
    with pytest.raises(ConfigError, match="paragraph is empty"):
        propose_changes(llm, "  ", [])


def test_the_bible_prompt(golden: Callable[[str, object], None]) -> None:
    entries = [LoreEntry(1, "Tom", ("Tom",), "A baker {plan}."), LoreEntry(2, "Sky", (), "Green.")]
    golden("story/bible", bible_messages("Tom met {Greta}.", entries))


@pytest.mark.slow
def test_the_bundled_model_proposes_parseable_changes(local_llm: object, book: Lorebook) -> None:
    book.add("Tom", "A baker in a mountain town.", keys=["Tom"])
    for seed in range(2):
        before = {e.id: e for e in book.entries()}
        try:
            changes = propose_changes(local_llm, PARAGRAPH, list(before.values()), seed=seed)  # type: ignore[arg-type]
        except OutputValidationError as exc:
            assert exc.outputs  # a typed error carrying what the model wrote
            continue
        assert len(changes) <= 3
        for proposed in changes:
            assert proposed.action in ("add", "update")
            assert proposed.name in candidate_names(PARAGRAPH, list(before.values()))
            if proposed.entry_id is not None:
                assert before[proposed.entry_id].name == proposed.name and proposed.keys == ()
            else:
                assert proposed.keys == (proposed.name,)
        applied, rejected = apply_changes(book, changes, PARAGRAPH, mode="auto")
        assert len(applied) + len(rejected) == len(changes)
        refused = [c for c, _ in rejected]
        for kept in (c for c in changes if c not in refused):  # kept: from the paragraph
            old = before.get(kept.entry_id or 0)
            known = "" if old is None else "\n".join([old.name, *old.keys, old.text])
            assert grounding_problem(kept, PARAGRAPH, known=known) == ""


def test_an_update_that_says_nothing_new_is_not_counted(book: Lorebook) -> None:
    paragraph = "Tom baked bread at the mill. Tom sang while he worked."
    first = [LoreChange("add", "Tom", ("Tom",), "Tom baked bread at the mill.")]
    applied, _ = apply_changes(book, first, paragraph, mode="auto")
    assert len(applied) == 1
    again = [LoreChange("update", "Tom", (), "Tom baked bread at the mill.", applied[0].id)]
    applied, rejected = apply_changes(book, again, paragraph, mode="auto")
    assert applied == [] and rejected == []
    assert len(book.history()) == 1


def test_the_bible_grows_an_entry_only_so_far_in_autonomous_mode(book: Lorebook) -> None:
    sentences = [f"Tom walked to mill number {n} and counted the sacks." for n in range(12)]
    paragraph = " ".join(sentences)
    (entry,), _ = apply_changes(book, [LoreChange("add", "Tom", ("Tom",), sentences[0])],
                                paragraph, mode="auto")  # fmt: skip
    lengths = []
    for sentence in sentences[1:]:
        update = LoreChange("update", "Tom", (), sentence, entry.id)
        apply_changes(book, [update], paragraph, mode="auto")
        lengths.append(len(book.get(entry.id).text))
    assert max(lengths) <= AUTO_ENTRY_CHARS and lengths[-1] == lengths[-2]
    _, rejected = apply_changes(book, [update], paragraph, mode="auto")
    assert rejected and "characters" in rejected[0][1]
    apply_changes(book, [LoreChange("update", "Tom", (), "Tom is tall.", entry.id)], paragraph,
                  mode="person")  # fmt: skip
    assert book.get(entry.id).text.endswith("Tom is tall.")  # a person may write more

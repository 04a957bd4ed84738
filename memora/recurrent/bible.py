"""Story bible proposals: after a paragraph, the model proposes lorebook changes (a new
character, place or thing; a new fact about one the lorebook has), in one JSON-schema-
constrained call. Before one is applied it is checked against the paragraph: in ``auto`` mode a
change whose words do not come from the paragraph (a small model copying its example, or
inventing) is rejected with the reason; in ``person`` mode a person has read them and decides.

Applied changes go through the :class:`~memora.recurrent.lore.Lorebook`, so each one is in its
history (actor ``bible``) and can be undone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from memora.errors import ConfigError, InvalidOptionError, RecordNotFoundError
from memora.llm.base import LLM
from memora.memory import grounding
from memora.recurrent.lore import MAX_KEYS, Lorebook, LoreEntry, matches, render_lore
from memora.recurrent.messages import Messages, render

__all__ = [
    "MAX_CHANGES",
    "LoreChange",
    "apply_changes",
    "bible_messages",
    "bible_schema",
    "candidate_names",
    "grounding_problem",
    "propose_changes",
]

#: Changes one proposal holds at most; bounds on a change's name, key and text (characters).
MAX_CHANGES = 3
NAME_CHARS = 60
TEXT_CHARS = 160
#: An entry the story bible grows by itself stops here (a person may write more): a long entry
#: crowds the lore budget out, or no longer fits it at all.
AUTO_ENTRY_CHARS = 3 * TEXT_CHARS

Mode = Literal["auto", "person"]


@dataclass(frozen=True)
class LoreChange:
    """One proposed change: ``add`` a new entry, or ``update`` entry ``entry_id`` (its
    ``text`` is the new fact appended to the entry, its ``keys`` are added to the entry's)."""

    action: Literal["add", "update"]
    name: str
    keys: tuple[str, ...]
    text: str
    entry_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "keys": list(self.keys)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoreChange:
        entry_id = data.get("entry_id")
        return cls(
            action=cast(Literal["add", "update"], str(data["action"])),
            name=str(data["name"]),
            keys=tuple(str(k) for k in data.get("keys", ())),
            text=str(data["text"]),
            entry_id=None if entry_id is None else int(entry_id),
        )


#: Words capitalised at the start of a sentence that are never names on their own.
_SENTENCE_STARTS = (
    "i as if when while after before then still yet so now there here this that these those "
    "what why how where who one some every each all no not only just even once maybe perhaps "
    "suddenly finally later soon meanwhile instead again also too with without at in on by "
    "for from to of into over under through my your his her its our their yes oh "
    "you we me us today tomorrow yesterday tonight sometimes always never someday everyone "
    "someone something nothing everything everybody nobody anyone anything task"
)
_NOT_NAMES = frozenset(_SENTENCE_STARTS.split())
#: A contraction ("I'd", "He'll", "Don't"): a sentence's first word, not a name.
_CONTRACTION = re.compile(r"[A-Za-z]+'(?:d|m|ll|re|ve|t)")


def _not_a_name(word: str) -> bool:
    folded = word.casefold()
    return (
        folded in grounding.COMMON_WORDS
        or folded in _NOT_NAMES
        or bool(_CONTRACTION.fullmatch(word))
    )


def candidate_names(paragraph: str, entries: Sequence[LoreEntry] = ()) -> list[str]:
    """The names a change may have: the runs of capitalised words of ``paragraph`` (without a
    leading common word, pronoun or contraction: "The Glass Hall" gives "Glass Hall", "As" and
    "I'd" give nothing), then the names of ``entries`` the paragraph mentions, each once
    (case-insensitive)."""
    found: list[str] = []
    for run in re.findall(r"[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*", paragraph):
        words = run.split()
        while words and _not_a_name(words[0].removesuffix("'s")):  # "She's" is "She"
            words = words[1:]
        name = " ".join(words).removesuffix("'s")
        if len(name) >= 2 and len(name) <= NAME_CHARS:
            found.append(name)
    found += [e.name for e in entries if matches(e, paragraph) or e.name in paragraph]
    unique: dict[str, str] = {}
    for name in found:
        unique.setdefault(name.casefold(), name)
    return list(unique.values())


def bible_schema(names: Sequence[str], *, updates: bool = True) -> dict[str, Any]:
    """The answer's schema: a change names one of ``names`` (by enum: a small model cannot
    invent a name, nor copy one from the worked example); ``update`` exists when there are
    entries to update. Bounds everywhere: small models fill unbounded strings and arrays."""
    change = {
        "action": {"type": "string", "enum": ["add", "update"] if updates else ["add"]},
        "name": {"type": "string", "enum": list(names)},
        "text": {"type": "string", "minLength": 10, "maxLength": TEXT_CHARS},
    }
    return {
        "type": "object",
        "properties": {
            "changes": {
                "type": "array",
                "maxItems": MAX_CHANGES,
                "items": {
                    "type": "object",
                    "properties": change,
                    "required": list(change),
                    "additionalProperties": False,
                },
            }
        },
        "required": ["changes"],
        "additionalProperties": False,
    }


def bible_messages(paragraph: str, entries: Sequence[LoreEntry]) -> Messages:
    """The proposal prompt: the bible's entries and the paragraph, after one worked example
    (another story) as an earlier turn."""
    user = render("bible_user", entries=render_lore(entries) or "(none)", paragraph=paragraph)
    return [
        {"role": "system", "content": render("bible_system")},
        {"role": "user", "content": render("bible_example_user")},
        {"role": "assistant", "content": render("bible_example_answer")},
        {"role": "user", "content": user},
    ]


def propose_changes(
    llm: LLM,
    paragraph: str,
    entries: Sequence[LoreEntry],
    *,
    seed: int = 0,
    max_tokens: int = 300,
    retries: int = 1,
) -> list[LoreChange]:
    """The changes the model proposes for ``paragraph``, given the lorebook ``entries`` it may
    update (pass those relevant to the paragraph, e.g. :meth:`Lorebook.triggered`'s). One
    JSON-schema-constrained call; an answer that stays invalid through ``retries`` raises
    :class:`~memora.errors.OutputValidationError` with every raw output.

    A change names one of :func:`candidate_names` (none: no call, no change). A name of an
    entry makes it an update of that entry (no new keys), any other an add keyed by its name.
    """
    if not paragraph.strip():
        raise ConfigError("the paragraph is empty; give the text the changes should come from")
    if max_tokens < 1:
        raise InvalidOptionError(f"max_tokens must be at least 1, got {max_tokens}")
    names = candidate_names(paragraph, entries)
    if not names:
        return []  # nothing in the paragraph a change could name: no call
    done = llm.complete_json(
        bible_messages(paragraph, entries), bible_schema(names, updates=bool(entries)),
        retries=retries, max_tokens=max_tokens, temperature=0.2, seed=seed, repeat_penalty=1.2,
    )  # fmt: skip
    by_name = {e.name.casefold(): e for e in entries}
    changes: list[LoreChange] = []
    for item in done.data["changes"]:
        name = str(item["name"])
        if any(c.name.casefold() == name.casefold() for c in changes):
            continue  # the same entry twice in one answer: keep the first
        target = by_name.get(name.casefold())
        changes.append(
            LoreChange(
                action="add" if target is None else "update",
                name=name if target is None else target.name,
                keys=(name,) if target is None else (),
                text=" ".join(str(item["text"]).split()),
                entry_id=None if target is None else target.id,
            )
        )
    return changes


def grounding_problem(change: LoreChange, paragraph: str, *, known: str = "") -> str:
    """Why ``change`` does not come from ``paragraph`` ("" when it does): its name and keys
    must, and two thirds of its text's content words. ``known``: text already accepted (the
    entry an update changes), whose words need no grounding."""
    name_words = grounding.ungrounded_words(change.name, paragraph, known=known)
    if name_words or (
        not grounding.content_words(change.name)
        and change.name.casefold() not in f"{paragraph}\n{known}".casefold()
    ):
        return f"the name {change.name!r} is not in the paragraph"
    key_words = grounding.ungrounded_words(
        " ".join(change.keys), paragraph, known=f"{known}\n{change.name}"
    )
    if key_words:
        return f"the keys use words that are not in the paragraph: {', '.join(key_words)}"
    if len(grounding.content_words(change.text)) < 2:
        return "the text says nothing (fewer than two content words)"
    if not grounding.grounded(change.text, f"{paragraph}\n{known}"):
        words = grounding.ungrounded_words(change.text, paragraph, known=known)
        return f"the text is not what the paragraph says (not in it: {', '.join(words)})"
    return ""


def apply_changes(
    lorebook: Lorebook,
    changes: Sequence[LoreChange],
    paragraph: str,
    *,
    mode: Mode,
    actor: str = "bible",
) -> tuple[list[LoreEntry], list[tuple[LoreChange, str]]]:
    """Apply ``changes`` to ``lorebook``; returns the entries as they are after each applied
    change, and the rejected changes with the reason.

    ``mode="auto"``: a change with a :func:`grounding_problem`, or one the lorebook refuses (a
    bad key, a text over the bound), is rejected and never applied. ``mode="person"``: a
    person chose these changes; all are applied, or, when the lorebook refuses one, none (its
    error is raised). An add naming an existing entry updates it; an update that says
    nothing the entry does not already say changes nothing and is in neither list. One
    transaction in all.
    """
    if mode not in ("auto", "person"):
        raise InvalidOptionError(f"mode must be 'auto' or 'person', got {mode!r}")
    applied: list[LoreEntry] = []
    rejected: list[tuple[LoreChange, str]] = []
    with lorebook.db.write():
        for change in changes:
            try:
                target = _target(lorebook, change)
                problem = ""
                if mode == "auto":
                    problem = grounding_problem(change, paragraph, known=_known(target))
                    problem = problem or _repetition(change.text) or _too_long(change, target)
                if problem:
                    rejected.append((change, problem))
                    continue
                entry = _apply(lorebook, change, target, actor)
                if entry != target:  # an update saying nothing new changes nothing
                    applied.append(entry)
            except (ConfigError, RecordNotFoundError) as exc:
                if mode == "person":
                    raise
                rejected.append((change, str(exc)))
    return applied, rejected


def _too_long(change: LoreChange, target: LoreEntry | None) -> str:
    if target is None or len(target.text) + 1 + len(change.text) <= AUTO_ENTRY_CHARS:
        return ""
    return (
        f"the entry would pass {AUTO_ENTRY_CHARS} characters; the story bible grows an entry "
        "only that far (edit it by hand to say more)"
    )


def _target(lorebook: Lorebook, change: LoreChange) -> LoreEntry | None:
    """The entry ``change`` updates (None: it adds one)."""
    if change.action == "update" and change.entry_id is not None:
        return lorebook.get(change.entry_id)
    named = [e for e in lorebook.entries() if e.name.casefold() == change.name.casefold()]
    if change.action == "update" and not named:
        raise ConfigError(f"the lorebook has no entry named {change.name!r} to update")
    return named[0] if named else None


def _repetition(text: str) -> str:
    """Why ``text`` is a degenerate answer ("" when it is not): a sentence said twice."""
    sentences = [s.strip().casefold() for s in re.split(r"[.!?]+", text) if s.strip()]
    return "the text repeats itself" if len(set(sentences)) < len(sentences) else ""


def _known(entry: LoreEntry | None) -> str:
    return "" if entry is None else "\n".join([entry.name, *entry.keys, entry.text])


def _apply(lorebook: Lorebook, change: LoreChange, target: LoreEntry | None,
           actor: str) -> LoreEntry:  # fmt: skip
    if target is None:
        return lorebook.add(change.name, change.text, keys=change.keys, actor=actor)
    keys = tuple(dict.fromkeys([*target.keys, *change.keys]))[:MAX_KEYS]
    text = target.text
    if change.text.casefold() not in text.casefold():
        text = f"{text} {change.text}"
    return lorebook.edit(target.id, text=text, keys=keys, actor=actor)

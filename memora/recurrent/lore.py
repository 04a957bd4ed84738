"""The lorebook of a story (world info): named entries of background text, each triggered by
keys found in the text of the story, or always on, put into the prompt within a token budget.

A key is a word or phrase (case-insensitive, matched as whole words) or a regular expression
written ``/pattern/`` (``/pattern/i``: case-insensitive). Keys are compiled when an entry is
added or edited, so a bad one is refused then, with nothing stored.

The lorebook is one versioned component of the story file (:data:`LORE`): its entries, and a
history of every change (who made it, the entry before and after) from which any change can be
undone. Each change and its history row are written in one transaction.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from memora._sqlite import Component, Database
from memora.errors import ConfigError, InvalidOptionError, ReadOnlyError, RecordNotFoundError

__all__ = [
    "LORE",
    "MAX_KEYS",
    "MAX_KEY_CHARS",
    "MAX_NAME_CHARS",
    "MAX_TEXT_CHARS",
    "LoreEntry",
    "LoreHistoryItem",
    "Lorebook",
    "compile_key",
    "matches",
    "render_lore",
    "select_lore",
]

#: Bounds on one entry: keys per entry, characters of a key (a regex included), a name, a text.
MAX_KEYS = 20
MAX_KEY_CHARS = 200
MAX_NAME_CHARS = 100
MAX_TEXT_CHARS = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lore_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    keys TEXT NOT NULL,
    text TEXT NOT NULL,
    priority INTEGER NOT NULL,
    always INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lore_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    before TEXT,
    after TEXT,
    at REAL NOT NULL
);
"""

#: The lorebook component of a story file.
LORE = Component(name="lore", version=1, schema=_SCHEMA)

Action = Literal["add", "edit", "remove", "undo"]


@dataclass(frozen=True)
class LoreEntry:
    """One entry: ``keys`` trigger it (see the module), ``always`` puts it in every prompt;
    between entries that do not all fit the budget, higher ``priority`` wins."""

    id: int
    name: str
    keys: tuple[str, ...]
    text: str
    priority: int = 0
    always: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "keys": list(self.keys)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoreEntry:
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            keys=tuple(str(k) for k in data.get("keys", ())),
            text=str(data["text"]),
            priority=int(data.get("priority", 0)),
            always=bool(data.get("always", False)),
        )


@dataclass(frozen=True)
class LoreHistoryItem:
    """One change of the lorebook: the entry ``before`` and ``after`` it (None: not there)."""

    id: int
    entry_id: int
    action: Action
    actor: str
    before: LoreEntry | None
    after: LoreEntry | None
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "before": None if self.before is None else self.before.to_dict(),
            "after": None if self.after is None else self.after.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoreHistoryItem:
        before, after = data.get("before"), data.get("after")
        return cls(
            id=int(data["id"]),
            entry_id=int(data["entry_id"]),
            action=cast(Action, str(data["action"])),
            actor=str(data["actor"]),
            before=None if before is None else LoreEntry.from_dict(before),
            after=None if after is None else LoreEntry.from_dict(after),
            at=float(data["at"]),
        )


# -- keys and selection --------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def compile_key(key: str) -> re.Pattern[str]:
    """The pattern of one key: ``/pattern/`` or ``/pattern/i`` as a regular expression, any
    other key as a case-insensitive whole-word phrase (its spaces match any whitespace).
    A bad key raises :class:`ConfigError` naming the fix."""
    key = key.strip()
    if not key:
        raise ConfigError("a lore key is empty; give a word or phrase, or a /regex/")
    if len(key) > MAX_KEY_CHARS:
        raise ConfigError(
            f"the lore key {key[:40]!r}... has {len(key)} characters; keep keys under "
            f"{MAX_KEY_CHARS}"
        )
    regex = re.fullmatch(r"/(.+)/(i?)", key, flags=re.DOTALL)
    if regex is None:
        words = r"\s+".join(re.escape(w) for w in key.split())
        return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)
    try:
        pattern = re.compile(regex.group(1), re.IGNORECASE if regex.group(2) else 0)
    except re.error as exc:
        raise ConfigError(
            f"the lore key {key!r} is not a valid regular expression ({exc}); fix it, or write "
            "the key without the surrounding slashes to match it as plain words"
        ) from exc
    if pattern.search("") is not None:
        raise ConfigError(
            f"the lore key {key!r} matches empty text, so it would be on for every text; make "
            "the entry always on instead (--always), or make the pattern need a character"
        )
    return pattern


def matches(entry: LoreEntry, text: str) -> bool:
    """Whether ``entry`` is on for ``text``: always on, or one of its keys is found there."""
    return entry.always or any(compile_key(k).search(text) for k in entry.keys)


def render_lore(entries: Iterable[LoreEntry]) -> str:
    """Entries as one compact block for a prompt, a ``- Name: text`` line each ("" for none)."""
    return "\n".join(f"- {e.name}: {' '.join(e.text.split())}" for e in entries)


def select_lore(
    entries: Iterable[LoreEntry], text: str, *, budget: int, count_tokens: Callable[[str], int]
) -> list[LoreEntry]:
    """The entries on for ``text`` that fit ``budget`` tokens (each counted as
    :func:`render_lore` renders it): taken by priority (highest first, then lowest id), an
    entry that does not fit is skipped and smaller ones after it may still fit. Returned in id
    order, so a prompt that holds them keeps a stable prefix."""
    if budget < 0:
        raise InvalidOptionError(f"the lore budget must be 0 or more tokens, got {budget}")
    on = sorted((e for e in entries if matches(e, text)), key=lambda e: (-e.priority, e.id))
    chosen: list[LoreEntry] = []
    left = budget
    for entry in on:
        cost = count_tokens(render_lore([entry]))
        if cost <= left:
            chosen.append(entry)
            left -= cost
    return sorted(chosen, key=lambda e: e.id)


def _checked(entry: LoreEntry) -> LoreEntry:
    """``entry`` with its fields tidied, or :class:`ConfigError` naming what to fix."""
    name, text = " ".join(entry.name.split()), entry.text.strip()
    keys = tuple(dict.fromkeys(k.strip() for k in entry.keys))
    if not name:
        raise ConfigError("the lore entry's name is empty; give it a name (--name)")
    if len(name) > MAX_NAME_CHARS:
        raise ConfigError(f"the lore entry's name is over {MAX_NAME_CHARS} characters; shorten it")
    if not text:
        raise ConfigError(f"the lore entry {name!r} has no text; say what it is (--text)")
    if len(text) > MAX_TEXT_CHARS:
        raise ConfigError(
            f"the text of lore entry {name!r} has {len(text)} characters; keep it under "
            f"{MAX_TEXT_CHARS} (split it into several entries)"
        )
    if len(keys) > MAX_KEYS:
        raise ConfigError(f"the lore entry {name!r} has {len(keys)} keys; give at most {MAX_KEYS}")
    for key in keys:
        compile_key(key)
    if not keys and not entry.always:
        raise ConfigError(
            f"the lore entry {name!r} has no key and is not always on, so it would never be "
            "used; give at least one key (--key), or make it always on (--always)"
        )
    return LoreEntry(entry.id, name, keys, text, int(entry.priority), bool(entry.always))


# -- the lorebook ---------------------------------------------------------------------------

_COLUMNS = "id, name, keys, text, priority, always"


class Lorebook:
    """The lorebook in a story file's database ``db`` (its tables are created on first use;
    a read-only database without them reads as an empty lorebook)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._absent = False
        try:
            db.ensure(LORE)
        except ReadOnlyError:
            if db.version_of(LORE.name) is not None:
                raise  # tables of an older schema that only a writer can upgrade
            self._absent = True

    # -- reads -------------------------------------------------------------------------------

    def entries(self) -> list[LoreEntry]:
        """Every entry, in id order."""
        if self._absent:
            return []
        rows = self.db.query(f"SELECT {_COLUMNS} FROM lore_entries ORDER BY id")
        return [_entry(r) for r in rows]

    def get(self, entry_id: int) -> LoreEntry:
        """The entry ``entry_id``; :class:`RecordNotFoundError` when there is none."""
        found = self._find(entry_id)
        if found is None:
            raise RecordNotFoundError(
                f"the lorebook has no entry {entry_id}; `memora story lore list PATH` lists them"
            )
        return found

    def history(self) -> list[LoreHistoryItem]:
        """Every change, oldest first."""
        if self._absent:
            return []
        rows = self.db.query(
            "SELECT id, entry_id, action, actor, before, after, at FROM lore_history ORDER BY id"
        )
        return [_history_item(r) for r in rows]

    def triggered(
        self, text: str, *, budget: int, count_tokens: Callable[[str], int]
    ) -> list[LoreEntry]:
        """The entries on for ``text`` within ``budget`` tokens (:func:`select_lore`)."""
        return select_lore(self.entries(), text, budget=budget, count_tokens=count_tokens)

    # -- writes ------------------------------------------------------------------------------

    def add(self, name: str, text: str, *, keys: Sequence[str] = (), priority: int = 0,
            always: bool = False, actor: str = "person") -> LoreEntry:  # fmt: skip
        """Add an entry; returns it with its id. A bad field raises :class:`ConfigError`."""
        entry = _checked(LoreEntry(0, name, tuple(keys), text, priority, always))
        with self.db.write() as conn:
            self._check_name(entry)
            cursor = conn.execute(
                "INSERT INTO lore_entries (name, keys, text, priority, always) VALUES (?,?,?,?,?)",
                (entry.name, json.dumps(list(entry.keys)), entry.text, entry.priority,
                 int(entry.always)),
            )  # fmt: skip
            entry = LoreEntry(int(cursor.lastrowid or 0), *_fields(entry))
            self._record(entry.id, "add", actor, None, entry)
        return entry

    def edit(self, entry_id: int, *, name: str | None = None, text: str | None = None,
             keys: Sequence[str] | None = None, priority: int | None = None,
             always: bool | None = None, actor: str = "person") -> LoreEntry:  # fmt: skip
        """Change the given fields of entry ``entry_id``; returns the entry as it is now."""
        with self.db.write():
            old = self.get(entry_id)
            new = _checked(
                LoreEntry(
                    entry_id,
                    old.name if name is None else name,
                    old.keys if keys is None else tuple(keys),
                    old.text if text is None else text,
                    old.priority if priority is None else priority,
                    old.always if always is None else always,
                )
            )
            if new == old:
                return old  # nothing changes: nothing to record
            self._check_name(new)
            self._put(old, new)
            self._record(entry_id, "edit", actor, old, new)
        return new

    def remove(self, entry_id: int, *, actor: str = "person") -> LoreEntry:
        """Remove entry ``entry_id`` (it stays in the history: undo brings it back)."""
        with self.db.write():
            old = self.get(entry_id)
            self._put(old, None)
            self._record(entry_id, "remove", actor, old, None)
        return old

    def undo(self, history_id: int, *, actor: str = "person") -> LoreEntry | None:
        """Revert the change ``history_id`` (itself recorded as an ``undo``, which can be
        undone in turn); returns the entry as it is now (None: the undo removed it). A change
        that later changes of the same entry followed is refused: undo those first."""
        with self.db.write():
            item = self._change(history_id)
            current = self._find(item.entry_id)
            if current != item.after:
                later = [h.id for h in self.history() if h.entry_id == item.entry_id]
                raise ConfigError(
                    f"lore entry {item.entry_id} changed after change {history_id} (see change "
                    f"{later[-1]}); undo the later changes first, newest first"
                )
            if item.before is not None:
                self._check_name(item.before)
            self._put(current, item.before)
            self._record(item.entry_id, "undo", actor, current, item.before)
        return item.before

    # -- internals ---------------------------------------------------------------------------

    def _find(self, entry_id: int) -> LoreEntry | None:
        if self._absent:
            return None
        row = self.db.one(f"SELECT {_COLUMNS} FROM lore_entries WHERE id = ?", (entry_id,))
        return None if row is None else _entry(row)

    def _change(self, history_id: int) -> LoreHistoryItem:
        found = [h for h in self.history() if h.id == history_id]
        if not found:
            raise RecordNotFoundError(
                f"the lorebook has no change {history_id}; `memora story lore history PATH` "
                "lists them"
            )
        return found[0]

    def _check_name(self, entry: LoreEntry) -> None:
        """Names are unique (case-insensitive): a change names the entry it updates by name."""
        key = entry.name.casefold()
        for other in self.entries():
            if other.id != entry.id and other.name.casefold() == key:
                raise ConfigError(
                    f"the lorebook already has an entry named {other.name!r} (id {other.id}); "
                    "choose another name, or edit that entry"
                )

    def _put(self, old: LoreEntry | None, new: LoreEntry | None) -> None:
        """Replace ``old`` by ``new`` (either may be None) inside the open transaction."""
        with self.db.write() as conn:
            if old is not None:
                conn.execute("DELETE FROM lore_entries WHERE id = ?", (old.id,))
            if new is not None:
                conn.execute(
                    f"INSERT INTO lore_entries ({_COLUMNS}) VALUES (?,?,?,?,?,?)",
                    (new.id, new.name, json.dumps(list(new.keys)), new.text, new.priority,
                     int(new.always)),
                )  # fmt: skip

    def _record(self, entry_id: int, action: Action, actor: str, before: LoreEntry | None,
                after: LoreEntry | None) -> None:  # fmt: skip
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO lore_history (entry_id, action, actor, before, after, at) "
                "VALUES (?,?,?,?,?,?)",
                (entry_id, action, actor, _json(before), _json(after), time.time()),
            )


def _fields(entry: LoreEntry) -> tuple[str, tuple[str, ...], str, int, bool]:
    return entry.name, entry.keys, entry.text, entry.priority, entry.always


def _json(entry: LoreEntry | None) -> str | None:
    return None if entry is None else json.dumps(entry.to_dict())


def _entry(row: Sequence[Any]) -> LoreEntry:
    return LoreEntry(
        id=int(row[0]),
        name=str(row[1]),
        keys=tuple(json.loads(row[2])),
        text=str(row[3]),
        priority=int(row[4]),
        always=bool(row[5]),
    )


def _history_item(row: Sequence[Any]) -> LoreHistoryItem:
    return LoreHistoryItem(
        id=int(row[0]),
        entry_id=int(row[1]),
        action=cast(Action, str(row[2])),
        actor=str(row[3]),
        before=None if row[4] is None else LoreEntry.from_dict(json.loads(row[4])),
        after=None if row[5] is None else LoreEntry.from_dict(json.loads(row[5])),
        at=float(row[6]),
    )

"""A story file: one SQLite database holding the steps (a tree of versions), the head, the
premise and pinned facts, every edit, and (in its own tables) the long-term memory store.

A step is written in one transaction together with the move of the head (and, through the
story engine, with its paragraph's memory record), so a killed writer leaves every completed
step and nothing half-written. The story tables are one versioned component of the file
(:data:`STORY`); :meth:`StoryFile.probe` reads a file without writing to it, and
:meth:`StoryFile.open_story` opens only a file that holds a story (read-only for commands that
only read), so a file that is not one is refused before anything is written to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from memora._sqlite import MEMORA_TABLES, Component, Database, has_table
from memora.errors import (
    ConfigError,
    DamagedFileError,
    NoStoryError,
    NotMemoraFileError,
    ReadOnlyError,
    RecordNotFoundError,
)
from memora.recurrent.types import Premise, Step, StepStats

__all__ = ["STORY", "StoryFile", "StoryInfo", "check_writable", "file_errors"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS story_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS story_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER REFERENCES story_steps (id),
    depth INTEGER NOT NULL,
    plan TEXT NOT NULL,
    chosen_by TEXT NOT NULL,
    paragraph TEXT NOT NULL,
    memory TEXT NOT NULL,
    plans TEXT NOT NULL,
    retrieved TEXT NOT NULL,
    stats TEXT NOT NULL,
    memory_id TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS story_edits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    step_id INTEGER NOT NULL REFERENCES story_steps (id),
    field TEXT NOT NULL,
    old TEXT NOT NULL,
    new TEXT NOT NULL,
    at REAL NOT NULL
);
"""

#: The story component of a file (files of older releases have its tables unversioned: 1).
STORY = Component(
    name="story",
    version=1,
    schema=_SCHEMA,
    legacy=lambda conn: 1 if has_table(conn, "story_meta") else 0,
)

_STEP_COLUMNS = (
    "id, parent_id, depth, plan, chosen_by, paragraph, memory, plans, retrieved, stats, created_at"
)


@dataclass(frozen=True)
class StoryInfo:
    """What :meth:`StoryFile.probe` found: the file, the story's title and its step count."""

    path: Path
    title: str
    steps: int


class StoryFile:
    """Steps, head and edits of one story.

    ``db``: the open database of the file to share (the story engine shares it with the
    story's memory store, so a step and its memory record commit together); by default the
    file is opened here and closed by :meth:`close`. ``readonly``: open it read-only (a file
    without story tables raises :class:`NoStoryError`; nothing is ever written).
    """

    def __init__(
        self, path: str | Path, *, db: Database | None = None, readonly: bool = False
    ) -> None:
        self.path = Path(path)
        self._owns_db = db is None
        with file_errors(self.path):
            self.db = db if db is not None else Database(self.path, readonly=readonly)
            try:
                self._ensure()
            except BaseException:
                if self._owns_db:
                    self.db.close()
                raise

    def _ensure(self) -> None:
        if not self.db.readonly:
            self.db.ensure(STORY)
            return
        with self.db.read() as conn:
            if not has_table(conn, "story_meta"):
                raise NoStoryError(_no_story(self.path, conn))
        try:
            self.db.ensure(STORY)
        except ReadOnlyError:
            if self.db.version_of(STORY.name) is not None:
                raise  # tables of an older schema that only a writer can upgrade
            # tables of a release before schema_versions, at this schema version: readable

    @classmethod
    def open_story(cls, path: str | Path, *, readonly: bool = False) -> StoryFile:
        """The story in ``path``, checked read-only before anything is written: no file, or a
        memora file without a story, raises :class:`NoStoryError`; a folder, a file that is not
        SQLite or another application's database :class:`NotMemoraFileError`; a damaged file
        :class:`DamagedFileError`. ``readonly``: keep it open read-only (commands that read)."""
        path = Path(path)
        if StoryFile.probe(path) is None:
            hint = f"start one with `memora write --story {path} --premise ...`"
            raise NoStoryError(
                f"{path} holds no story yet; {hint}"
                if path.exists()
                else f"no story file at {path}; check the path, or {hint}"
            )
        file = cls(path, readonly=True)
        if readonly:
            return file
        file.close()
        check_writable(path)
        return cls(path)

    @staticmethod
    def probe(path: str | Path) -> StoryInfo | None:
        """The story in ``path``, read without writing anything; None when there is no story
        there yet (no file, an empty database, or a story file not started).

        Raises, naming the fix: :class:`NotMemoraFileError` for a directory, a file that is not
        SQLite or a SQLite database of something else; :class:`NoStoryError` for a memora file
        without a story (a memory store); :class:`DamagedFileError` for a truncated or
        overwritten story file.
        """
        path = Path(path)
        if not path.exists():
            return None
        if path.is_dir():
            raise NotMemoraFileError(
                f"{path} is a directory, not a story file; give a file such as {path}/story.db"
            )
        try:
            # Without a -wal file next to it the file is all there is: read it as immutable,
            # so that SQLite leaves no -wal or -shm file behind (another application's
            # database in WAL mode would otherwise get two new files).
            clean = not Path(f"{path}-wal").exists()
            uri = f"file:{path.resolve()}?mode=ro" + ("&immutable=1" if clean else "")
            conn = sqlite3.connect(uri, uri=True)
            try:
                found = _read_probe(conn, path)
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            if _damaged(exc):
                raise DamagedFileError(_damaged_message(path, exc)) from exc
            raise NotMemoraFileError(
                f"{path} is not a story file ({exc}); it was left as it was. Open a story file, "
                "or give a new file name"
            ) from exc
        if found is None:
            return None
        return StoryInfo(path, found[0], found[1])

    # -- meta ----------------------------------------------------------------------------

    def _get(self, key: str) -> str | None:
        row = self.db.one("SELECT value FROM story_meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO story_meta VALUES (?, ?)", (key, value))

    @property
    def exists(self) -> bool:
        return self._get("premise") is not None

    def init(self, premise: Premise, story_id: str) -> None:
        if self.exists:
            raise ConfigError(f"{self.path} already holds a story; open it to continue")
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO story_meta VALUES ('premise', ?), ('story_id', ?), ('pinned', '[]')",
                (json.dumps(premise.to_dict()), story_id),
            )

    @property
    def premise(self) -> Premise:
        raw = self._get("premise")
        if raw is None:
            raise ConfigError(f"{self.path} holds no story yet; start one with a premise")
        return Premise.from_dict(json.loads(raw))

    @property
    def story_id(self) -> str:
        return self._get("story_id") or ""

    @property
    def pinned(self) -> list[str]:
        return list(json.loads(self._get("pinned") or "[]"))

    def set_pinned(self, facts: Sequence[str]) -> None:
        self._set("pinned", json.dumps(list(facts)))

    @property
    def author_note(self) -> str:
        """A short instruction kept in every paragraph prompt ("" for none)."""
        return self._get("author_note") or ""

    def set_author_note(self, text: str) -> None:
        self._set("author_note", text.strip())

    @property
    def failed_steps(self) -> int:
        """Steps that failed in this story (each next try starts from other seeds)."""
        return int(self._get("failed_steps") or 0)

    def count_failed_step(self) -> None:
        self._set("failed_steps", str(self.failed_steps + 1))

    @property
    def head_id(self) -> int | None:
        raw = self._get("head")
        return None if raw is None or raw == "" else int(raw)

    def set_head(self, step_id: int | None) -> None:
        if step_id is not None:
            self.step(step_id)  # must exist
        self._set("head", "" if step_id is None else str(step_id))

    # -- steps ---------------------------------------------------------------------------

    def add_step(self, step: Step) -> Step:
        """Write ``step`` (its id is assigned) and make it the head, in one transaction."""
        now = time.time()
        with self.db.write() as conn:
            cursor = conn.execute(
                "INSERT INTO story_steps (parent_id, depth, plan, chosen_by, paragraph, memory, "
                "plans, retrieved, stats, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    step.parent_id, step.depth, step.plan, step.chosen_by, step.paragraph,
                    step.memory, json.dumps(list(step.plans)), json.dumps(list(step.retrieved)),
                    json.dumps(step.stats.to_dict()), now,
                ),
            )  # fmt: skip
            step_id = int(cursor.lastrowid or 0)
            conn.execute("INSERT OR REPLACE INTO story_meta VALUES ('head', ?)", (str(step_id),))
        return self.step(step_id)

    def step(self, step_id: int) -> Step:
        row = self.db.one(f"SELECT {_STEP_COLUMNS} FROM story_steps WHERE id = ?", (step_id,))
        if row is None:
            raise RecordNotFoundError(
                f"the story has no step {step_id}; `memora story show` lists them"
            )
        return _step(row)

    def steps(self) -> list[Step]:
        rows = self.db.query(f"SELECT {_STEP_COLUMNS} FROM story_steps ORDER BY id")
        return [_step(r) for r in rows]

    def path_to(self, step_id: int | None) -> list[Step]:
        """The steps from the opening to ``step_id``."""
        by_id = {s.id: s for s in self.steps()}
        path = []
        while step_id is not None:
            step = by_id[step_id]
            path.append(step)
            step_id = step.parent_id
        return path[::-1]

    def memory_id(self, step_id: int) -> str | None:
        row = self.db.one("SELECT memory_id FROM story_steps WHERE id = ?", (step_id,))
        return None if row is None or row[0] is None else str(row[0])

    def set_memory_id(self, step_id: int, memory_id: str) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE story_steps SET memory_id = ? WHERE id = ?", (memory_id, step_id))

    def unindexed(self) -> list[Step]:
        """Steps whose paragraph is not in the long-term memory: only in files written by
        releases that committed a step and its memory record separately (a crash between)."""
        rows = self.db.query(
            f"SELECT {_STEP_COLUMNS} FROM story_steps WHERE memory_id IS NULL ORDER BY id"
        )
        return [_step(r) for r in rows]

    def edit(self, step_id: int, field: str, new: str) -> None:
        """Change a step's paragraph or memory, and record the edit."""
        if field not in ("paragraph", "memory"):
            raise ConfigError("only a step's paragraph or memory can be edited")
        if not new.strip():
            raise ConfigError(f"the new {field} is empty")
        old = getattr(self.step(step_id), field)
        with self.db.write() as conn:
            conn.execute(f"UPDATE story_steps SET {field} = ? WHERE id = ?", (new, step_id))
            conn.execute(
                "INSERT INTO story_edits (step_id, field, old, new, at) VALUES (?, ?, ?, ?, ?)",
                (step_id, field, old, new, time.time()),
            )

    def edits(self) -> list[tuple[int, str, str, str]]:
        rows = self.db.query("SELECT step_id, field, old, new FROM story_edits ORDER BY id")
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def export_markdown(self) -> str:
        """The current branch as Markdown: title, genre, then one paragraph per step."""
        premise = self.premise
        lines = [f"# {premise.title or 'Untitled story'}", ""]
        if premise.genre:
            lines += [f"*{premise.genre}*", ""]
        lines += [step.paragraph + "\n" for step in self.path_to(self.head_id)]
        return "\n".join(lines).rstrip() + "\n"

    def close(self) -> None:
        """Close the file when this object opened it (a shared database stays open)."""
        if self._owns_db:
            self.db.close()


@contextlib.contextmanager
def file_errors(path: Path) -> Iterator[None]:
    """SQLite's errors about the file at ``path`` as memora errors naming the fix: a read-only
    file :class:`ReadOnlyError`, a damaged one :class:`DamagedFileError`."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if "readonly" in text or "read-only" in text:
            raise ReadOnlyError(
                f"{path} cannot be written ({exc}); make it writable (chmod u+w {path}) or "
                "work on a copy"
            ) from exc
        if _damaged(exc):
            raise DamagedFileError(_damaged_message(path, exc)) from exc
        if "not a database" in text or "unable to open" in text:
            raise NotMemoraFileError(
                f"{path} is not a story file ({exc}); it was left as it was. Check the path, or "
                "give a new file name"
            ) from exc
        raise


def check_writable(path: Path) -> None:
    """Raise :class:`ReadOnlyError` naming the fix when ``path`` or its folder is read-only."""
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise ReadOnlyError(
            f"{path} (or its folder) is read-only; make it writable (chmod u+w {path}) or "
            "work on a copy"
        )


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    return "malformed" in str(exc) or "corrupt" in str(exc)


def _damaged_message(path: Path, exc: BaseException | str) -> str:
    return (
        f"{path} is damaged ({exc}): truncated or partly overwritten; it was left as it was. "
        "Restore it from a copy (the TUI's save-as, or a backup)"
    )


def _no_story(path: Path, conn: sqlite3.Connection) -> str:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    what = " (a memora memory store)" if "memories" in tables else ""
    return (
        f"{path} is not a story file: it holds no story{what}; give a story file, or a new "
        "file name to start one"
    )


def _read_probe(conn: sqlite3.Connection, path: Path) -> tuple[str, int] | None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    if "story_meta" not in tables:
        if not tables:
            return None  # an empty database: a story can start there
        if tables & MEMORA_TABLES:
            raise NoStoryError(_no_story(path, conn))
        raise NotMemoraFileError(
            f"{path} is not a story file: it is the SQLite database of something else "
            f"(tables: {', '.join(sorted(tables)[:5])}); it was left as it was. Open a story "
            "file, or give a new file name to start one"
        )
    problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise DamagedFileError(_damaged_message(path, "; ".join(problems[:3])))
    row = conn.execute("SELECT value FROM story_meta WHERE key = 'premise'").fetchone()
    if row is None:
        return None
    steps = conn.execute("SELECT count(*) FROM story_steps").fetchone()[0]
    return str(json.loads(row[0]).get("title") or ""), int(steps)


def _step(row: Sequence[object]) -> Step:
    (step_id, parent_id, depth, plan, chosen_by, paragraph, memory, plans, retrieved, stats,
     created_at) = row  # fmt: skip
    return Step(
        id=int(step_id),  # type: ignore[call-overload]
        parent_id=None if parent_id is None else int(parent_id),  # type: ignore[call-overload]
        depth=int(depth),  # type: ignore[call-overload]
        plan=str(plan),
        chosen_by=str(chosen_by),  # type: ignore[arg-type]
        paragraph=str(paragraph),
        memory=str(memory),
        plans=tuple(json.loads(str(plans))),
        retrieved=tuple(json.loads(str(retrieved))),
        stats=StepStats.from_dict(json.loads(str(stats))),
        created_at=float(created_at),  # type: ignore[arg-type]
    )

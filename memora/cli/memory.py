"""``memora memory ...``: the memory store from the command line."""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from memora.errors import BatchInputError, ConfigError, InvalidRecordError, MemoraError, ScopeError

__all__ = ["memory"]

F = TypeVar("F", bound=Callable[..., Any])
Where = str | Path  # a SQLite file, or a postgresql:// DSN
console = Console(highlight=False, soft_wrap=True)
IMPORT_BATCH = 256
#: The store of every memory command run without --db.
DATABASE_URL = "MEMORA_DATABASE_URL"


def scoped(*, reads: bool) -> Callable[[F], F]:
    """--db and the scope options (plus --all-scopes and --all-users for reads)."""

    def wrap(fn: F) -> F:
        fn = click.option("--session", "session_id", default=None, help="session id")(fn)
        fn = click.option("--agent", "agent_id", default=None, help="agent id")(fn)
        fn = click.option("--user", "user_id", default=None, help="user id")(fn)
        if reads:
            fn = click.option(
                "--all-users",
                is_flag=True,
                help="with --agent or --session: every user's memories (without it, a read "
                "with no --user sees only memories stored without a user)",
            )(fn)
            fn = click.option(
                "--all-scopes", is_flag=True, help="read across every scope (no isolation)"
            )(fn)
        return db_option(fn)

    return wrap


class Location(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 only
    """A store: a SQLite file (a :class:`Path`) or a ``postgresql://`` DSN (kept a string)."""

    name = "PATH|DSN"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str | Path:  # fmt: skip
        from memora.memory.postgres import is_postgres_url

        return value if isinstance(value, Path) or is_postgres_url(value) else Path(value)


def db_option(fn: F) -> F:
    return click.option(
        "--db",
        "db_path",
        required=True,
        envvar=DATABASE_URL,
        show_envvar=True,
        type=Location(),  # a folder is refused by the store, with the fix
        help="the store: a SQLite file, or a postgresql://user:password@host/db DSN "
        "(PostgreSQL + pgvector)",
    )(fn)


def shown(location: str | Path) -> str:
    """``location`` as messages show it: a DSN without its password."""
    from memora.memory.postgres import redact

    return redact(location) if isinstance(location, str) else str(location)


def max_chars_option(fn: F) -> F:
    return click.option(
        "--max-text-chars", type=click.IntRange(min=1), default=10_000, show_default=True,
        help="longer texts are refused",
    )(fn)  # fmt: skip


#: Python names in the store's messages, and the flags a CLI user types instead.
_FLAGS = (
    (r"\ball_scopes=True\b", "--all-scopes"),
    (r"\ball_users=True\b", "--all-users"),
    (r"\bmax_text_chars\b", "--max-text-chars"),
    (r"\buser_id\b", "--user"),
    (r"\bagent_id\b", "--agent"),
    (r"\bsession_id\b", "--session"),
    (r" \(or scope=Scope\(\.\.\.\)\)", ""),
    (r"\breadonly=True\b", "a read-only command"),
)


def in_cli_terms(message: str, *, fields: bool = False) -> str:
    """A store message with its Python parameter names replaced by the CLI's flags (with
    ``fields``, the message is about the fields of a file's line: only the setting's name)."""
    for pattern, flag in _FLAGS[2:3] if fields else _FLAGS:
        message = re.sub(pattern, flag, message)
    return message


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[yellow]warning:[/] {in_cli_terms(str(message))}"
    )


@contextmanager
def open_store(db_path: Where, *, readonly: bool = False, max_text_chars: int = 10_000,
               embeds: bool = False) -> Iterator[Any]:  # fmt: skip
    """The store at ``db_path``. Its embedder loads first for a command that ``embeds`` (a bad
    embedder setting is refused before the file is created), else only if the command turns
    out to need it. Errors and warnings name CLI flags."""
    from memora.embed import load_embedder
    from memora.memory.store import MemoryStore
    from memora.memory.types import DamagedStoreWarning
    from memora.settings import load_settings

    with warnings.catch_warnings():
        warnings.simplefilter("always", DamagedStoreWarning)
        warnings.showwarning = _show_warning
        try:
            settings = load_settings()
            name, threads = settings.embedder, settings.embed_threads
            store = MemoryStore(
                db_path, embedder=load_embedder(name, threads=threads) if embeds else name,
                readonly=readonly, max_text_chars=max_text_chars,
                embed_threads=None if embeds else threads,
            )  # fmt: skip
            try:
                yield store
            finally:
                store.close()
        except MemoraError as exc:
            fields = isinstance(exc, BatchInputError)
            exc.args = (in_cli_terms(str(exc), fields=fields), *exc.args[1:])
            raise


def scope_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    names = ("user_id", "agent_id", "session_id", "all_scopes", "all_users")
    return {k: kwargs.pop(k) for k in names if k in kwargs}


def read_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The scope options of a read, checked before any file is opened."""
    from memora.memory.rows import read_scope
    from memora.memory.types import Scope

    found = scope_args(kwargs)
    ids = {k: v for k, v in found.items() if k.endswith("_id")}
    try:
        read_scope(Scope(**ids), found.get("all_scopes", False), found.get("all_users", False))
    except MemoraError as exc:
        exc.args = (in_cli_terms(str(exc)),)
        raise
    return found


def as_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def parse_metadata(metadata: str | None) -> dict[str, Any] | None:
    try:
        meta = json.loads(metadata) if metadata else None
    except json.JSONDecodeError as exc:
        raise InvalidRecordError(f"--metadata is not JSON: {exc.msg}") from exc
    if meta is not None and not isinstance(meta, dict):
        raise InvalidRecordError('--metadata must be a JSON object, such as \'{"src": "cli"}\'')
    return meta


@click.group()
def memory() -> None:
    """Add, search and manage memories in a store file or a PostgreSQL database."""


@memory.command()
@click.argument("texts", nargs=-1, required=True)
@scoped(reads=False)
@click.option("--metadata", default=None, help="a JSON object stored with each text")
@click.option("--expires-in", type=float, default=None, help="seconds until the memory expires")
@click.option("--actor", default="cli", show_default=True)
@max_chars_option
def add(texts: tuple[str, ...], db_path: Where, metadata: str | None, expires_in: float | None,
        actor: str, max_text_chars: int, **kwargs: Any) -> None:  # fmt: skip
    """Store TEXTS (one memory each)."""
    meta = parse_metadata(metadata)
    expires = time.time() + expires_in if expires_in is not None else None
    with open_store(db_path, max_text_chars=max_text_chars, embeds=True) as store:
        results = store.add_many(
            list(texts), metadata=meta, expires_at=expires, actor=actor, **scope_args(kwargs)
        )
    for result in results:
        state = "added" if result.created else "exists"
        click.echo(f"{state}\t{result.record.id}\t{result.record.text}")


@memory.command()
@click.argument("query")
@scoped(reads=True)
@click.option("-k", "k", type=int, default=5, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "dense", "lexical"]), default="hybrid")
@click.option("--min-score", type=float, default=None, help="minimum cosine similarity")
@click.option("--json", "json_out", is_flag=True, help="one JSON object per hit")
def search(query: str, db_path: Where, k: int, mode: str, min_score: float | None,
           json_out: bool, **kwargs: Any) -> None:  # fmt: skip
    """The best memories for QUERY."""
    scope = read_args(kwargs)
    with open_store(db_path, readonly=True) as store:
        hits = store.search(query, k=k, mode=mode, min_score=min_score, **scope)
    if json_out:
        for hit in hits:
            click.echo(
                as_json({"score": hit.score, "similarity": hit.similarity, **hit.record.to_dict()})
            )
        return
    table = Table("score", "cosine", "id", "text")
    for h in hits:  # a lexical search has no cosine: it embeds nothing
        cosine = "-" if h.similarity is None else f"{h.similarity:.3f}"
        table.add_row(f"{h.score:.4f}", cosine, h.record.id, h.record.text)
    console.print(table)


@memory.command(name="list")
@scoped(reads=True)
@click.option("--include-deleted", is_flag=True)
@click.option("--json", "json_out", is_flag=True, help="one JSON object per memory")
def list_(db_path: Where, include_deleted: bool, json_out: bool, **kwargs: Any) -> None:
    """The memories of a scope, oldest first."""
    scope = read_args(kwargs)
    with open_store(db_path, readonly=True) as store:
        records = store.list(include_deleted=include_deleted, **scope)
    for record in records:
        if json_out:
            click.echo(as_json(record.to_dict()))
        else:
            flag = " (deleted)" if record.deleted else ""
            click.echo(f"{record.id}\t{record.text}{flag}")


@memory.command()
@click.argument("record_id")
@scoped(reads=True)
def history(record_id: str, db_path: Where, **kwargs: Any) -> None:
    """Every ADD, UPDATE and DELETE of RECORD_ID."""
    scope = read_args(kwargs)
    with open_store(db_path, readonly=True) as store:
        entries = store.history(record_id, **scope)
    for entry in entries:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at))
        click.echo(
            f"{stamp}\t{entry.event}\t{entry.actor}\t{entry.old_text!r} -> {entry.new_text!r}"
        )


@memory.command()
@click.argument("record_id")
@scoped(reads=True)
@click.option("--hard", is_flag=True, help="remove the record and its history for good")
def delete(record_id: str, db_path: Where, hard: bool, **kwargs: Any) -> None:
    """Delete RECORD_ID (soft unless --hard)."""
    with open_store(db_path) as store:
        store.delete(record_id, hard=hard, actor="cli", **exact_scope(kwargs))
    click.echo(f"{'removed' if hard else 'deleted'}\t{record_id}")


def exact_scope(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The scope of a write by id (--all-users widens only reads)."""
    found = scope_args(kwargs)
    if found.pop("all_users", False):
        raise ScopeError("--all-users is for reads; give --user, or --all-scopes")
    return found


@memory.command()
@click.argument("record_id")
@scoped(reads=True)
@click.option("--json", "json_out", is_flag=True, help="the memory as one JSON object")
def get(record_id: str, db_path: Where, json_out: bool, **kwargs: Any) -> None:
    """The memory RECORD_ID."""
    scope = read_args(kwargs)
    with open_store(db_path, readonly=True) as store:
        record = store.get(record_id, **scope)
    flag = " (deleted)" if record.deleted else ""
    click.echo(as_json(record.to_dict()) if json_out else f"{record.id}\t{record.text}{flag}")


@memory.command()
@click.argument("record_id")
@click.argument("text")
@scoped(reads=True)
@click.option("--metadata", default=None, help="a JSON object replacing the memory's metadata")
@click.option("--actor", default="cli", show_default=True)
@max_chars_option
def update(record_id: str, text: str, db_path: Where, metadata: str | None, actor: str,
           max_text_chars: int, **kwargs: Any) -> None:  # fmt: skip
    """Replace the text of RECORD_ID with TEXT (and its metadata with --metadata)."""
    meta = parse_metadata(metadata)
    with open_store(db_path, max_text_chars=max_text_chars, embeds=True) as store:
        record = store.update(record_id, text, metadata=meta, actor=actor, **exact_scope(kwargs))
    click.echo(f"updated\t{record.id}\t{record.text}")


@memory.command()
@db_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="file to write (default: stdout)")  # fmt: skip
@click.option("--include-deleted", is_flag=True)
def export(db_path: Where, output: Path | None, include_deleted: bool) -> None:
    """Every memory of every scope as JSON lines."""
    with open_store(db_path, readonly=True) as store:
        if output is None:
            count = store.export(sys.stdout, include_deleted=include_deleted)
        else:
            with output.open("w", encoding="utf-8") as fh:
                count = store.export(fh, include_deleted=include_deleted)
    Console(stderr=True).print(f"exported {count} memories")


@memory.command(name="import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
@max_chars_option
def import_(source: Path, db_path: Where, max_text_chars: int) -> None:
    """Read memories exported by `memora memory export`. Every line is checked before anything
    is written; then they are stored in batches: an interrupted import keeps every finished
    batch, and running it again skips what is already there."""
    from memora.memory.jsonl import decode_file

    lines = decode_file(source.read_bytes(), source)
    imported = skipped = 0
    columns = (TextColumn("import"), BarColumn(), MofNCompleteColumn())
    if isinstance(db_path, Path) and not db_path.exists():  # a bad file creates nothing
        with open_store(Path(":memory:"), max_text_chars=max_text_chars, embeds=True) as empty:
            empty.parse_import(lines, source=source)
    with open_store(db_path, max_text_chars=max_text_chars, embeds=True) as store:
        parsed = store.parse_import(lines, source=source)
        _say_reembedded(parsed, store.space)
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task("import", total=len(parsed))
            try:
                for start in range(0, len(parsed), IMPORT_BATCH):
                    batch = parsed[start : start + IMPORT_BATCH]
                    done, dup = store.import_(batch)
                    imported, skipped = imported + done, skipped + dup
                    bar.advance(task, len(batch))
            except KeyboardInterrupt:
                console.print(f"interrupted: {imported} imported so far are kept; run again")
                sys.exit(130)
    console.print(f"imported {imported}, skipped {skipped} already present")


def _say_reembedded(parsed: list[Any], space: str) -> None:
    """Say which lines' vectors are not used: no vector, or another embedder's."""
    others = sorted({p.record.embedder or "none" for p in parsed
                     if p.vector is None or p.record.embedder != space})  # fmt: skip
    count = sum(1 for p in parsed if p.vector is None or p.record.embedder != space)
    if count:
        Console(stderr=True, highlight=False).print(
            f"re-embedding {count} memories with {space}: their vectors came from "
            f"{', '.join(others)} (or were missing)"
        )


@memory.command()
@db_option
def rebuild(db_path: Where) -> None:
    """Rebuild the vector index from the database and check it."""
    with open_store(db_path) as store:
        count = store.rebuild_index()
        status = store.verify_index()
    state = "consistent" if status.consistent else "INCONSISTENT"
    console.print(f"rebuilt {count} vectors ({status.kind}); index {state} with the database")


@memory.command()
@db_option
@click.option(
    "--repair", is_flag=True, help="quarantine damaged records next to the store, rebuild the index"
)
def doctor(db_path: Where, repair: bool) -> None:
    """Check the store: SQLite's integrity, every stored vector, the index against the
    records. Exits 1 when problems remain."""
    from memora.memory import doctor as checks

    if isinstance(db_path, str):
        raise ConfigError(
            f"memora memory doctor checks a SQLite file, and {shown(db_path)} is a PostgreSQL "
            "database: check its index with `memora memory rebuild`, and the database with "
            "the server's own tools (amcheck, pg_dump)"
        )
    with open_store(db_path, readonly=not repair) as store:
        report = checks.repair(store) if repair else checks.examine(store)
    for line in report.lines():
        console.print(line)
    if report.integrity or not report.index.consistent or (report.damaged and not repair):
        if not repair:
            console.print(f"run `memora memory doctor --db {db_path} --repair` to repair")
        sys.exit(1)
    console.print("the store is healthy" if not report.damaged else "repaired")


@memory.command()
@click.option("--from", "source", required=True, type=Location(),
              help="the store to copy: a SQLite file or a postgresql:// DSN")  # fmt: skip
@click.option("--to", "target", required=True, type=Location(),
              help="the store to fill (made when missing): a SQLite file or a DSN")  # fmt: skip
@click.option("--batch", type=click.IntRange(min=1), default=500, show_default=True,
              help="records per transaction")  # fmt: skip
def migrate(source: Where, target: Where, batch: int) -> None:
    """Copy every memory (deleted ones too, vectors as stored), its history and the neural
    memories from one store to another, SQLite or PostgreSQL, in batches: an interrupted
    migration keeps every finished batch, and running it again resumes where it stopped."""
    from memora.memory import migrate as moving

    err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    err.print(f"migrating {shown(source)} -> {shown(target)}")
    report = moving.MigrateReport()

    def progress(what: str, now: moving.MigrateReport) -> None:
        nonlocal report
        report = now
        err.print("; ".join(now.lines()))

    try:
        report = moving.migrate_between(source, target, batch=batch, progress=progress)
    except KeyboardInterrupt:
        err.print(f"interrupted: {'; '.join(report.lines())}; every finished batch is kept, "
                  "run the same command again to resume")  # fmt: skip
        raise
    for note in report.notes:
        err.print(note)
    for line in report.lines():
        console.print(line)
    console.print("migrated" if report.changed else "nothing to migrate: the target has it all")

"""``memora memory ...``: the memory store from the command line (``search`` and ``keys`` are in
:mod:`memora.cli.memory_search`, the shared options in :mod:`memora.cli.memory_common`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from memora.cli.memory_common import (
    DATABASE_URL,
    Location,
    When,
    Where,
    as_json,
    console,
    db_option,
    exact_scope,
    max_chars_option,
    open_store,
    parse_metadata,
    read_args,
    scope_args,
    scoped,
    shown,
    stamp,
)
from memora.cli.memory_search import checked_keys, keys, say_keys, search
from memora.errors import ConfigError

__all__ = ["DATABASE_URL", "memory"]

IMPORT_BATCH = 256


@click.group()
def memory() -> None:
    """Add, search and manage memories in a store file or a PostgreSQL database."""


@memory.command()
@click.argument("texts", nargs=-1, required=True)
@scoped(reads=False)
@click.option("--metadata", default=None, help="a JSON object stored with each text")
@click.option("--expires-in", type=float, default=None, help="seconds until the memory expires")
@click.option("--occurred-at", type=When(), default=None,
              help="when what the texts say happened (default: now): an ISO 8601 date or "
              "date-time such as 2024-03-03 or 2024-03-03T18:30, UTC unless it has an "
              "offset")  # fmt: skip
@click.option("--key", "keys_", multiple=True,
              help="another text that finds the memory (a question it answers, a fact it "
              "states); repeatable, with one TEXT")  # fmt: skip
@click.option("--actor", default="cli", show_default=True)
@max_chars_option
def add(texts: tuple[str, ...], db_path: Where, metadata: str | None, expires_in: float | None,
        occurred_at: float | None, keys_: tuple[str, ...], actor: str, max_text_chars: int,
        **kwargs: Any) -> None:  # fmt: skip
    """Store TEXTS (one memory each)."""
    if keys_ and len(texts) != 1:
        raise click.UsageError("--key goes with one TEXT: the memory its keys find")
    meta = parse_metadata(metadata)
    wanted = checked_keys(keys_, max_text_chars)
    expires = time.time() + expires_in if expires_in is not None else None
    stored = []
    with open_store(db_path, max_text_chars=max_text_chars, embeds=True) as store:
        results = store.add_many(list(texts), metadata=meta, expires_at=expires, actor=actor,
                                 occurred_at=occurred_at, **scope_args(kwargs))  # fmt: skip
        if wanted:
            stored = store.add_keys(results[0].record.id, wanted, actor=actor, all_scopes=True)
    for result in results:
        state = "added" if result.created else "exists"
        click.echo(f"{state}\t{result.record.id}\t{result.record.text}{occurred(result.record)}")
    if wanted:
        say_keys(results[0].record.id, wanted, stored, prefix="key ")


def occurred(record: Any) -> str:
    """The tab-separated end of a record's line: when it occurred, if that was given."""
    return "" if record.occurred_at is None else f"\toccurred {stamp(record.occurred_at)}"


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
            click.echo(f"{record.id}\t{record.text}{flag}{occurred(record)}")


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
    line = f"{record.id}\t{record.text}{flag}{occurred(record)}"
    click.echo(as_json(record.to_dict()) if json_out else line)


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


memory.add_command(search)
memory.add_command(keys)

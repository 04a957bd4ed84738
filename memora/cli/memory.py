"""``memora memory ...``: the memory store from the command line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from memora.errors import InvalidRecordError

__all__ = ["memory"]

F = TypeVar("F", bound=Callable[..., Any])
console = Console(highlight=False, soft_wrap=True)
IMPORT_BATCH = 256


def scoped(*, reads: bool) -> Callable[[F], F]:
    """--db and the scope options (plus --all-scopes for reads)."""

    def wrap(fn: F) -> F:
        fn = click.option("--session", "session_id", default=None, help="session id")(fn)
        fn = click.option("--agent", "agent_id", default=None, help="agent id")(fn)
        fn = click.option("--user", "user_id", default=None, help="user id")(fn)
        if reads:
            fn = click.option(
                "--all-scopes", is_flag=True, help="read across every scope (no isolation)"
            )(fn)
        return click.option(
            "--db",
            "db_path",
            required=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="the store's SQLite file",
        )(fn)

    return wrap


@contextmanager
def open_store(db_path: Path) -> Iterator[Any]:
    from memora.embed import load_embedder
    from memora.memory.store import MemoryStore
    from memora.settings import load_settings

    store = MemoryStore(db_path, embedder=load_embedder(load_settings().embedder))
    try:
        yield store
    finally:
        store.close()


def scope_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {
        k: kwargs.pop(k) for k in ("user_id", "agent_id", "session_id", "all_scopes") if k in kwargs
    }


def as_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


@click.group()
def memory() -> None:
    """Add, search and manage memories in a store file."""


@memory.command()
@click.argument("texts", nargs=-1, required=True)
@scoped(reads=False)
@click.option("--metadata", default=None, help="a JSON object stored with each text")
@click.option("--expires-in", type=float, default=None, help="seconds until the memory expires")
@click.option("--actor", default="cli", show_default=True)
def add(texts: tuple[str, ...], db_path: Path, metadata: str | None, expires_in: float | None,
        actor: str, **kwargs: Any) -> None:  # fmt: skip
    """Store TEXTS (one memory each)."""
    try:
        meta = json.loads(metadata) if metadata else None
    except json.JSONDecodeError as exc:
        raise InvalidRecordError(f"--metadata is not JSON: {exc.msg}") from exc
    expires = time.time() + expires_in if expires_in is not None else None
    with open_store(db_path) as store:
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
def search(query: str, db_path: Path, k: int, mode: str, min_score: float | None,
           json_out: bool, **kwargs: Any) -> None:  # fmt: skip
    """The best memories for QUERY."""
    with open_store(db_path) as store:
        hits = store.search(query, k=k, mode=mode, min_score=min_score, **scope_args(kwargs))
    if json_out:
        for hit in hits:
            click.echo(
                as_json({"score": hit.score, "similarity": hit.similarity, **hit.record.to_dict()})
            )
        return
    table = Table("score", "cosine", "id", "text")
    for hit in hits:
        table.add_row(f"{hit.score:.4f}", f"{hit.similarity:.3f}", hit.record.id, hit.record.text)
    console.print(table)


@memory.command(name="list")
@scoped(reads=True)
@click.option("--include-deleted", is_flag=True)
@click.option("--json", "json_out", is_flag=True, help="one JSON object per memory")
def list_(db_path: Path, include_deleted: bool, json_out: bool, **kwargs: Any) -> None:
    """The memories of a scope, oldest first."""
    with open_store(db_path) as store:
        records = store.list(include_deleted=include_deleted, **scope_args(kwargs))
    for record in records:
        if json_out:
            click.echo(as_json(record.to_dict()))
        else:
            flag = " (deleted)" if record.deleted else ""
            click.echo(f"{record.id}\t{record.text}{flag}")


@memory.command()
@click.argument("record_id")
@scoped(reads=True)
def history(record_id: str, db_path: Path, **kwargs: Any) -> None:
    """Every ADD, UPDATE and DELETE of RECORD_ID."""
    with open_store(db_path) as store:
        entries = store.history(record_id, **scope_args(kwargs))
    for entry in entries:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at))
        click.echo(
            f"{stamp}\t{entry.event}\t{entry.actor}\t{entry.old_text!r} -> {entry.new_text!r}"
        )


@memory.command()
@click.argument("record_id")
@scoped(reads=True)
@click.option("--hard", is_flag=True, help="remove the record and its history for good")
def delete(record_id: str, db_path: Path, hard: bool, **kwargs: Any) -> None:
    """Delete RECORD_ID (soft unless --hard)."""
    with open_store(db_path) as store:
        store.delete(record_id, hard=hard, actor="cli", **scope_args(kwargs))
    click.echo(f"{'removed' if hard else 'deleted'}\t{record_id}")


@memory.command()
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="file to write (default: stdout)")  # fmt: skip
@click.option("--include-deleted", is_flag=True)
def export(db_path: Path, output: Path | None, include_deleted: bool) -> None:
    """Every memory of every scope as JSON lines."""
    with open_store(db_path) as store:
        if output is None:
            count = store.export(sys.stdout, include_deleted=include_deleted)
        else:
            with output.open("w", encoding="utf-8") as fh:
                count = store.export(fh, include_deleted=include_deleted)
    Console(stderr=True).print(f"exported {count} memories")


@memory.command(name="import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def import_(source: Path, db_path: Path) -> None:
    """Read memories exported by `memora memory export`, in batches: an interrupted import
    keeps every finished batch, and running it again skips what is already there."""
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    imported = skipped = 0
    columns = (TextColumn("import"), BarColumn(), MofNCompleteColumn())
    with open_store(db_path) as store, Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("import", total=len(lines))
        try:
            for start in range(0, len(lines), IMPORT_BATCH):
                batch = lines[start : start + IMPORT_BATCH]
                done, dup = store.import_(batch)
                imported, skipped = imported + done, skipped + dup
                bar.advance(task, len(batch))
        except KeyboardInterrupt:
            console.print(f"interrupted: {imported} imported so far are kept; run again to resume")
            sys.exit(130)
    console.print(f"imported {imported}, skipped {skipped} already present")


@memory.command()
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def rebuild(db_path: Path) -> None:
    """Rebuild the vector index from the database and check it."""
    with open_store(db_path) as store:
        count = store.rebuild_index()
        status = store.verify_index()
    state = "consistent" if status.consistent else "INCONSISTENT"
    console.print(f"rebuilt {count} vectors ({status.kind}); index {state} with the database")

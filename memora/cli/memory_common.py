"""What every ``memora memory ...`` command shares: the store and scope options, opening the
store with errors in the CLI's terms, and the ISO 8601 times the commands take and show."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from memora.errors import BatchInputError, InvalidRecordError, MemoraError, ScopeError

__all__ = [
    "DATABASE_URL",
    "Location",
    "When",
    "Where",
    "as_json",
    "console",
    "db_option",
    "exact_scope",
    "in_cli_terms",
    "max_chars_option",
    "open_store",
    "parse_metadata",
    "read_args",
    "scope_args",
    "scoped",
    "shown",
    "stamp",
]

F = TypeVar("F", bound=Callable[..., Any])
Where = str | Path  # a SQLite file, or a postgresql:// DSN
console = Console(highlight=False, soft_wrap=True)
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


def exact_scope(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The scope of a write by id (--all-users widens only reads)."""
    found = scope_args(kwargs)
    if found.pop("all_users", False):
        raise ScopeError("--all-users is for reads; give --user, or --all-scopes")
    return found


class When(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 only
    """An ISO 8601 date or date-time (``2024-03-03``, ``2024-03-03T18:30``, ``...+02:00``) as
    epoch seconds; without an offset it is UTC. Anything else is a usage error."""

    name = "WHEN"
    FORMAT = "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM], e.g. 2024-03-03 or 2024-03-03T18:30"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:  # fmt: skip
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 date or date-time: use {self.FORMAT} "
                "(UTC unless an offset is given)",
                param,
                ctx,
            )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()


def stamp(epoch: float) -> str:
    """``epoch`` as the commands show times: ``YYYY-MM-DD HH:MM`` in UTC (what --occurred-at
    reads back)."""
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):  # outside what datetime can show
        return f"{epoch:.0f}"

"""``memora memory search`` and ``memora memory keys ...``: retrieval from the command line
(time windows, neighbours, abstention, search keys). Registered on the ``memory`` group by
:mod:`memora.cli.memory`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from memora.cli.memory_common import (
    When,
    Where,
    as_json,
    console,
    exact_scope,
    in_cli_terms,
    max_chars_option,
    open_store,
    read_args,
    scoped,
    stamp,
)
from memora.errors import InvalidRecordError, MemoraError

__all__ = ["checked_keys", "keys", "say_keys", "search"]

_WHEN = "an ISO 8601 date or date-time such as 2024-03-03 or 2024-03-03T18:30, UTC unless it "
_WHEN += "has an offset"


@click.command()
@click.argument("query")
@scoped(reads=True)
@click.option("-k", "k", type=int, default=5, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "dense", "lexical"]), default="hybrid")
@click.option("--min-score", type=float, default=None, help="minimum cosine similarity")
@click.option("--fusion", type=click.Choice(["score", "rrf"]), default="score", show_default=True,
              help="how hybrid mode fuses dense and full text: normalized scores, or "
              "reciprocal ranks")  # fmt: skip
@click.option("--after", "occurred_after", type=When(), default=None,
              help=f"only memories that occurred at or after WHEN: {_WHEN}")  # fmt: skip
@click.option("--before", "occurred_before", type=When(), default=None,
              help="only memories that occurred before WHEN (a date: before that day "
              "begins)")  # fmt: skip
@click.option("--now", type=When(), default=None,
              help="when the query is asked, for 'last week' and the like (default: the "
              "clock)")  # fmt: skip
@click.option("--neighbours", type=click.IntRange(0, 50), default=0, show_default=True,
              help="show up to N memories written before and N after each hit")  # fmt: skip
@click.option("--abstain", is_flag=True,
              help="no hits when the best similarity is under the floor calibrated for the "
              "bundled embedder (nothing relevant is stored)")  # fmt: skip
@click.option("--abstain-below", type=click.FloatRange(-1.0, 1.0), default=None,
              help="no hits when the best similarity is under this value")  # fmt: skip
@click.option("--no-keys", is_flag=True, help="match the memories' own texts, not their keys")
@click.option(
    "--rerank",
    type=click.Choice(["biencoder", "pointwise", "setwise", "full"]),
    default=None,
    help="a second stage on the first hits (a model's, but biencoder)",
)
@click.option("--rerank-depth", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option(
    "--model",
    default="default",
    show_default=True,
    help="the model of an LLM reranker (a name or a .gguf path)",
)
@click.option("--json", "json_out", is_flag=True, help="one JSON object per hit")
def search(query: str, db_path: Where, json_out: bool, **kwargs: Any) -> None:
    """The best memories for QUERY."""
    strategy, depth, model = kwargs.pop("rerank"), kwargs.pop("rerank_depth"), kwargs.pop("model")
    options = search_options(kwargs)
    scope = read_args(kwargs)
    with open_store(db_path, readonly=True) as store:
        if strategy is not None:
            options |= {"rerank": reranker(strategy, model, store), "rerank_depth": depth}
        hits = store.search(query, **options, **scope)
    floor = options["abstain_below"]
    if not hits:
        said = "no memories match" if floor is None else (
            f"nothing relevant stored (best similarity under {floor:.2f})"
        )  # fmt: skip
        click.echo(said, err=json_out)  # --json keeps stdout for hits only
    elif json_out:
        for hit in hits:
            click.echo(as_json(hit_json(hit)))
    else:
        console.print(hit_table(hits))


def reranker(strategy: str, model: str, store: Any) -> Any:
    """The second stage: the store's own embedder as a bi-encoder, or a model's reranker."""
    from memora.rank import load_reranker

    if strategy == "biencoder":
        return load_reranker("biencoder", embedder=store.embedder)
    from memora.llm import load_model

    return load_reranker(strategy, load_model(model, n_threads=1))


def search_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The search's options from the command's (popped from ``kwargs``), checked."""
    abstain, below = kwargs.pop("abstain"), kwargs.pop("abstain_below")
    if abstain and below is not None:
        raise click.UsageError("give --abstain or --abstain-below, not both")
    if abstain:
        from memora.memory.options import ABSTAIN_BELOW

        below = ABSTAIN_BELOW
    after, before = kwargs.pop("occurred_after"), kwargs.pop("occurred_before")
    if after is not None and before is not None and after >= before:
        raise click.UsageError("--after must be earlier than --before")
    names = ("k", "mode", "min_score", "fusion", "now", "neighbours")
    return {
        **{name: kwargs.pop(name) for name in names},
        "occurred_after": after,
        "occurred_before": before,
        "abstain_below": below,
        "keys": not kwargs.pop("no_keys"),
    }


def hit_json(hit: Any) -> dict[str, Any]:
    """A hit as one JSON object: its scores, the key it was found through, its record (and
    ``when``: ``occurred_at``, else when written) and its neighbours."""
    return {
        "score": hit.score,
        "similarity": hit.similarity,
        "rerank_score": hit.rerank_score,
        "via": hit.via,
        **hit.record.to_dict(),
        "when": hit.record.when,
        "context": [record.to_dict() for record in hit.context],
    }


def hit_table(hits: Sequence[Any]) -> Table:
    """The hits as a table; a hit's text cell also says the key that found it and, with
    --neighbours, holds the memories around it (indented, in time order)."""
    table = Table("score", "cosine", "when (UTC)")
    table.add_column("id", overflow="fold")  # an id is never cut: commands take it
    table.add_column("text")
    for h in hits:  # a lexical search has no cosine: it embeds nothing
        cosine = "-" if h.similarity is None else f"{h.similarity:.3f}"
        table.add_row(f"{h.score:.4f}", cosine, stamp(h.record.when), h.record.id, hit_cell(h))
    return table


def hit_cell(hit: Any) -> Group:
    record = hit.record
    mark = (record.when, record.created_at)
    before = [r for r in hit.context if (r.when, r.created_at) < mark]
    after = [r for r in hit.context if (r.when, r.created_at) >= mark]
    lines = [_context_line(r) for r in before]
    lines.append(Text(record.text, style="bold" if hit.context else ""))
    if hit.via is not None:
        lines.append(Text(f"  via: {hit.via}", style="italic"))
    lines.extend(_context_line(r) for r in after)
    return Group(*lines)


def _context_line(record: Any) -> Text:
    return Text(f"  | {stamp(record.when)}  {record.text}", style="dim")


# -- search keys --------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Search keys: more texts that find a memory (a question it answers, a fact it states)."""


@keys.command(name="add")
@click.argument("record_id")
@click.argument("texts", nargs=-1, required=True)
@scoped(reads=True)
@click.option("--actor", default="cli", show_default=True)
@max_chars_option
def keys_add(record_id: str, texts: tuple[str, ...], db_path: Where, actor: str,
             max_text_chars: int, **kwargs: Any) -> None:  # fmt: skip
    """Make RECORD_ID findable through TEXTS too (keys it already has are skipped)."""
    wanted = checked_keys(texts, max_text_chars)
    scope = exact_scope(kwargs)
    with open_store(db_path, max_text_chars=max_text_chars, embeds=True) as store:
        stored = store.add_keys(record_id, wanted, actor=actor, **scope)
    say_keys(record_id, wanted, stored)


@keys.command(name="list")
@click.argument("record_id")
@scoped(reads=True)
@click.option("--json", "json_out", is_flag=True, help="one JSON object per key")
def keys_list(record_id: str, db_path: Where, json_out: bool, **kwargs: Any) -> None:
    """The search keys of RECORD_ID, oldest first."""
    scope = read_args(kwargs)
    with open_store(db_path, readonly=True) as store:
        record = store.get(record_id, **scope)  # the scope check, --all-users included
        found = store.keys(record.id, all_scopes=True)
    for key in found:
        click.echo(as_json(key.to_dict()) if json_out else f"{key.id}\t{key.text}")
    if not found:
        click.echo(f"memory {record.id} has no search keys", err=True)


def checked_keys(texts: Sequence[str], max_chars: int) -> list[str]:
    """Key texts checked before anything is opened (each once, in order)."""
    from memora.memory.rows import check_text

    for text in texts:
        try:
            check_text(text, max_chars)
        except MemoraError as exc:
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise InvalidRecordError(f"search key {shown!r}: {in_cli_terms(str(exc))}") from exc
    return list(dict.fromkeys(texts))


def say_keys(record_id: str, wanted: Sequence[str], stored: Sequence[Any],
             prefix: str = "") -> None:  # fmt: skip
    """One line per key text: ``added`` when stored now, ``exists`` when the memory had it."""
    from memora.memory.types import content_hash

    new = {key.content_hash for key in stored}
    for text in wanted:
        state = "added" if content_hash(text) in new else "exists"
        new.discard(content_hash(text))  # "Tea" after "tea": the same key
        click.echo(f"{prefix}{state}\t{record_id}\t{text}")

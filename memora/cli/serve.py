"""``memora serve`` (the HTTP server, :mod:`memora.serve`) and ``memora keys ...`` (its API
keys)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

from memora.cli.memory_common import Where, db_option, open_store

__all__ = ["keys", "serve"]

_out = Console(soft_wrap=True, highlight=False)


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="the address to listen on (127.0.0.1: this machine only)")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--model", "model_spec", default=None,
              help="the model for chat and rerank: name, .gguf path or openai:<model> "
              "(default: MEMORA_MODEL, else the bundled one)")  # fmt: skip
@click.option("--no-model", is_flag=True, help="no model: the memory API and the bi-encoder "
              "reranker only")  # fmt: skip
@click.option("--threads", "n_threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for a local model")  # fmt: skip
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=1_000_000,
              show_default=True, help="the largest request body")  # fmt: skip
@click.option("--max-queue", type=click.IntRange(min=1), default=8, show_default=True,
              help="model calls waiting or running before a 429")  # fmt: skip
def serve(db_path: Where, host: str, port: int, model_spec: str | None, no_model: bool,
          n_threads: int | None, max_body_bytes: int, max_queue: int) -> None:  # fmt: skip
    """Serve memory, memory-augmented chat and reranking over HTTP (one scope per API key)."""
    import uvicorn

    from memora.serve.app import Limits, create_app

    limits = Limits(max_body_bytes=max_body_bytes, max_queue=max_queue)
    with open_store(db_path, embeds=True) as store, _model(model_spec, no_model, n_threads) as llm:
        app = create_app(store, llm=llm, limits=limits)
        model = "no model" if llm is None else f"model {getattr(llm, 'name', model_spec)}"
        _out.print(f"memora serve: http://{host}:{port} (store {db_path}, {model})")
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning")
        finally:
            for agent in app.state.agents.values():
                agent.close()


@contextmanager
def _model(spec: str | None, off: bool, n_threads: int | None) -> Iterator[Any]:
    if off:
        yield None
        return
    from memora.llm.registry import load_model
    from memora.settings import load_settings

    given = {"model": spec, "n_threads": n_threads}
    settings = load_settings(**{k: v for k, v in given.items() if v is not None})
    with load_model(settings.model, **settings.model_options()) as llm:
        yield llm


@click.group()
def keys() -> None:
    """Create, list and revoke the API keys of memora serve."""


@keys.command()
@db_option
@click.option("--user", "user_id", default=None, help="the user whose memories the key reaches")
@click.option("--agent", "agent_id", default=None, help="narrow the key to one agent's memories")
@click.option("--scopes", default="read,write,chat,rerank", show_default=True,
              help="comma-separated: read, write, chat, rerank")  # fmt: skip
@click.option("--admin", is_flag=True, help="a key for every user (cross-scope operations)")
def create(db_path: Where, user_id: str | None, agent_id: str | None, scopes: str,
           admin: bool) -> None:  # fmt: skip
    """Create a key; its secret is printed once and only its hash is stored."""
    from memora.serve.keys import ApiKeys

    with open_store(db_path) as store:
        secret, key = ApiKeys(store.database).create(
            user_id, agent_id=agent_id, scopes=scopes.split(","), admin=admin
        )
    click.echo(secret)
    who = "admin" if key.admin else f"user {key.user_id}" + (
        f", agent {key.agent_id}" if key.agent_id else "")  # fmt: skip
    click.echo(f"key {key.id} ({who}; {','.join(key.scopes)}): keep the line above, it is not "
               "stored", err=True)  # fmt: skip


@keys.command("list")
@db_option
def list_(db_path: Where) -> None:
    """The keys (ids and scopes, never secrets)."""
    from memora.serve.keys import ApiKeys

    with open_store(db_path) as store:
        for key in ApiKeys(store.database).list():
            state = "revoked" if key.revoked_at is not None else "live"
            owner = "admin" if key.admin else f"user={key.user_id} agent={key.agent_id or '-'}"
            _out.print(f"{key.id}  {state}  {owner}  scopes={','.join(key.scopes)}")


@keys.command()
@db_option
@click.argument("key_id")
def revoke(db_path: Where, key_id: str) -> None:
    """Revoke a key: refused from the next request on."""
    from memora.serve.keys import ApiKeys

    with open_store(db_path) as store:
        key = ApiKeys(store.database).revoke(key_id)
    _out.print(f"revoked {key.id}")

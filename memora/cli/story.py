"""``memora write`` and ``memora story ...``: the story engine from the command line.

Every command checks its story file read-only before it opens it: commands that only read
(``show``, ``export``) never write, and no command writes to a file that holds no story
(another application's database, a memory store) unless ``write`` starts a new story there.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from memora.cli.story_lore import lore
from memora.cli.story_play import model_loaded, note, review_lore, streamed, swipe
from memora.errors import ConfigError, InvalidOptionError
from memora.recurrent.storyfile import StoryFile, check_writable, file_errors
from memora.recurrent.types import Premise, Step, StoryOptions

__all__ = ["story", "write"]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

MENU = (
    "[1-3] follow a plan   e N: edit plan N   w: write your own   m: let the model choose\n"
    "u: undo   b ID: branch from step ID   q: quit"
)


def _progress(step: Step, done: int, total: int, *, lore: bool = False) -> str:
    stats = step.stats
    return (
        f"step {done}/{total} (#{step.id}, depth {step.depth}, {step.chosen_by}): "
        f"{len(step.paragraph.split())} words, {stats.evaluated_tokens} of "
        f"{stats.prompt_tokens} prompt tokens evaluated, {stats.completion_tokens} generated, "
        f"{stats.seconds:.1f} s"
        + (", memory kept" if stats.memory_kept else "")
        + (f", lore: {stats.lore_applied} applied, {stats.lore_rejected} rejected" if lore else "")
    )


def _ask_plan(engine: Any, head: Step) -> tuple[str | None, str] | None:
    """Ask a person what to do next; returns (plan, chosen_by), or None to quit. Undo and
    branch are done here and the question is asked again."""
    while True:
        out.print()
        for number, plan in enumerate(head.plans, start=1):
            click.echo(f"  {number}. {plan}")
        click.echo(MENU)
        answer = click.prompt("next", default="1").strip()
        command, _, argument = answer.partition(" ")
        if command in ("1", "2", "3"):
            return head.plans[int(command) - 1], "person"
        if command == "e" and argument in ("1", "2", "3"):
            text = click.prompt("plan", default=head.plans[int(argument) - 1])
            return text, "edited"
        if command == "w":
            return click.prompt("your plan"), "own"
        if command == "m":
            return None, "model"
        if command == "q":
            return None
        if command == "u":
            new_head = engine.undo()
            if new_head is None:
                out.print("undone: the story is empty again")
                return None
            head = new_head
            out.print(f"undone: back at step #{head.id}")
            continue
        if command == "b" and argument.isdigit():
            head = engine.branch(int(argument))
            out.print(f"branching from step #{head.id}")
            continue
        out.print(f"[yellow]unknown command {answer!r}[/]")


@click.command()
@click.option("--story", "story_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="the story file (created when missing, resumed otherwise)")  # fmt: skip
@click.option("--premise", default=None, help="what the story is about (new stories)")
@click.option("--title", default="")
@click.option("--genre", default="")
@click.option("--outline", default="", help="kept in every step's prompt")
@click.option("--steps", type=int, default=3, show_default=True, help="steps to write now")
@click.option("--model", "model_spec", default=None, help="name, .gguf path or openai:<model>")
@click.option("--interactive", is_flag=True, help="you pick, edit or write each plan")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--max-tokens", type=int, default=220, show_default=True, help="cap on each paragraph's tokens"
)
@click.option(
    "--threads",
    "n_threads",
    type=int,
    default=None,
    help="CPU threads for a local model (default: MEMORA_N_THREADS, else llama.cpp's)",
)
@click.option("--n-ctx", type=int, default=None,
              help="context length in tokens (default: MEMORA_N_CTX, else 4096)")  # fmt: skip
@click.option("--bible", type=click.Choice(["off", "auto"]), default="off", show_default=True,
              help="auto: the story bible proposes lorebook changes after each step; those "
                   "grounded in the paragraph are applied (with --interactive: you accept or "
                   "reject each)")  # fmt: skip
def write(story_path: Path, premise: str | None, steps: int, interactive: bool, seed: int,
          max_tokens: int, bible: str, **given: Any) -> None:  # fmt: skip
    """Write STEPS more paragraphs of a story, each streamed as it is written and saved as it
    completes."""
    # ``given``: --title, --genre, --outline (a new story) and --model, --threads, --n-ctx
    from memora.recurrent.budget import check_story_fits
    from memora.recurrent.engine import StoryEngine

    if steps < 1:
        raise InvalidOptionError(f"--steps must be at least 1, got {steps}")
    # with --interactive the person judges the bible's proposals, not the grounding check
    engine_bible = "auto" if bible == "auto" and not interactive else "off"
    options = StoryOptions.build(seed=seed, paragraph_tokens=max_tokens, bible=engine_bible)
    new = _new_story(story_path, premise, given["title"], given["genre"], given["outline"])
    with model_loaded(given["model_spec"], given["n_ctx"], given["n_threads"]) as (llm, embedder):
        if new is not None:  # before the file is created: a story that cannot fit never starts
            check_story_fits(llm, new, [], options)
        with file_errors(story_path), StoryEngine(
            llm, story_path, options=options, embedder=embedder
        ) as engine:  # fmt: skip
            if new is not None:
                engine.create(new)
            _write_steps(engine, story_path, steps, interactive, bible == "auto")


def _new_story(path: Path, premise: str | None, title: str, genre: str,
               outline: str) -> Premise | None:  # fmt: skip
    """The premise of a new story at ``path``, None to resume the one there; a file that is
    not a story, or a new story without ``--premise``, is refused before anything is loaded."""
    if StoryFile.probe(path) is not None:
        check_writable(path)
        if premise:
            err.print("[yellow]the story exists: resuming it, --premise is ignored[/]")
        return None
    if not premise:
        raise ConfigError(f"{path} holds no story yet: pass --premise to start one")
    return Premise(premise, title=title, genre=genre, outline=outline)


def _write_steps(engine: Any, path: Path, steps: int, interactive: bool, bible: bool) -> None:
    """``bible``: the story bible is on (with ``interactive``, the person reviews each step's
    proposals; without, the progress line counts the changes applied and rejected)."""
    done = 0
    try:
        while done < steps:
            head = engine.head
            plan: str | None = None
            chosen_by: Any = None
            if interactive and head is not None:
                asked = _ask_plan(engine, head)
                if asked is None:
                    break
                plan, chosen_by = asked
                if chosen_by == "model":
                    plan, chosen_by = None, None
            step = streamed(partial(engine.step, plan, chosen_by=chosen_by))
            done += 1
            err.print(f"[dim]{_progress(step, done, steps, lore=bible and not interactive)}[/]")
            if bible and interactive:
                review_lore(engine)
    except KeyboardInterrupt:
        click.echo()
        err.print(f"[yellow]interrupted: {done} completed steps are saved in {path}[/]")
        sys.exit(130)


@click.group()
def story() -> None:
    """Look at and manage story files."""


def _open(path: Path, *, readonly: bool) -> StoryFile:
    """The story file at ``path``, checked read-only first (see :meth:`StoryFile.open_story`)."""
    return StoryFile.open_story(path, readonly=readonly)


STORY_FILE = click.argument("path", type=click.Path(dir_okay=False, path_type=Path))


@story.command()
@STORY_FILE
def show(path: Path) -> None:
    """Every step (the tree of versions); * marks the current branch, > the head (with its
    version number when `story swipe` wrote others)."""
    with file_errors(path):
        file = _open(path, readonly=True)
        try:
            _show(file)
        finally:
            file.close()


def _show(file: StoryFile) -> None:
    premise = file.premise
    current = {s.id for s in file.path_to(file.head_id)}
    click.echo(f"{premise.title or 'Untitled'} - {premise.premise}")
    steps = file.steps()
    versions: dict[int | None, list[int]] = {}
    for step in steps:
        versions.setdefault(step.parent_id, []).append(step.id)
    for step in steps:
        mark = ">" if step.id == file.head_id else ("*" if step.id in current else " ")
        parent = f"<-{step.parent_id}" if step.parent_id else "root"
        siblings = versions[step.parent_id]
        version = ""
        if step.id == file.head_id and len(siblings) > 1:
            version = f" [version {siblings.index(step.id) + 1} of {len(siblings)}]"
        click.echo(
            f"{mark} #{step.id} {parent} depth {step.depth} ({step.chosen_by}){version} "
            f"{step.plan[:60]}"
        )
        click.echo(f"      {step.paragraph[:100]}")
    file.close()


@story.command()
@STORY_FILE
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def export(path: Path, output: Path | None) -> None:
    """The current branch as Markdown."""
    if output is not None and output.exists() and output.resolve() == path.resolve():
        raise InvalidOptionError(f"-o {output} is the story file itself; give a new file name")
    with file_errors(path):
        file = _open(path, readonly=True)
        text = file.export_markdown()
        file.close()
    if output is not None and output.exists() and output.read_bytes()[:16] == b"SQLite format 3\0":
        raise InvalidOptionError(f"-o {output} is a database; give a file name for the Markdown")
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")


@story.command()
@STORY_FILE
@click.argument("step_id", type=int)
def branch(path: Path, step_id: int) -> None:
    """Continue from STEP_ID next time (a new branch)."""
    with file_errors(path):
        file = _open(path, readonly=False)
        try:
            file.set_head(step_id)
        finally:
            file.close()
    out.print(f"head is now step #{step_id}")


@story.command()
@STORY_FILE
def undo(path: Path) -> None:
    """Move the head back one step (the step stays, as a branch)."""
    with file_errors(path):
        file = _open(path, readonly=False)
        try:
            head = file.head_id
            if head is None:
                raise ConfigError(f"the story in {path} is empty: nothing to undo")
            parent = file.step(head).parent_id
            file.set_head(parent)
        finally:
            file.close()
    out.print(f"head is now step #{parent}" if parent else "the story is empty again")


story.add_command(lore)
story.add_command(swipe)
story.add_command(note)

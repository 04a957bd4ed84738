"""``memora write`` and ``memora story ...``: the story engine from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from memora.errors import ConfigError
from memora.recurrent.storyfile import StoryFile
from memora.recurrent.types import Premise, Step, StepError

__all__ = ["story", "write"]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

MENU = (
    "[1-3] follow a plan   e N: edit plan N   w: write your own   m: let the model choose\n"
    "u: undo   b ID: branch from step ID   q: quit"
)


def _progress(step: Step, done: int, total: int) -> str:
    stats = step.stats
    return (
        f"step {done}/{total} (#{step.id}, depth {step.depth}, {step.chosen_by}): "
        f"{len(step.paragraph.split())} words, {stats.evaluated_tokens} of "
        f"{stats.prompt_tokens} prompt tokens evaluated, {stats.completion_tokens} generated, "
        f"{stats.seconds:.1f} s" + (", memory kept" if stats.memory_kept else "")
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
@click.option("--max-tokens", type=int, default=220, show_default=True,
              help="cap on each paragraph's tokens")  # fmt: skip
def write(story_path: Path, premise: str | None, title: str, genre: str, outline: str,
          steps: int, model_spec: str | None, interactive: bool, seed: int,
          max_tokens: int) -> None:  # fmt: skip
    """Write STEPS more paragraphs of a story, saving each as it completes."""
    from memora.embed import load_embedder
    from memora.llm.registry import load_model
    from memora.recurrent.engine import StoryEngine
    from memora.settings import load_settings

    if steps < 1:
        raise ConfigError("--steps must be at least 1")
    settings = load_settings(**({"model": model_spec} if model_spec else {}))
    embedder = load_embedder(settings.embedder)
    with load_model(settings.model, **settings.model_options()) as llm, StoryEngine(
        llm, story_path, seed=seed, paragraph_tokens=max_tokens, embedder=embedder
    ) as engine:  # fmt: skip
        if not engine.file.exists:
            if not premise:
                raise ConfigError(f"{story_path} is a new story: pass --premise")
            engine.create(Premise(premise, title=title, genre=genre, outline=outline))
        elif premise:
            err.print("[yellow]the story exists: resuming it, --premise is ignored[/]")
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
                step = _step_with_retry(engine, plan, chosen_by)
                done += 1
                click.echo(f"\n{step.paragraph}\n")
                err.print(f"[dim]{_progress(step, done, steps)}[/]")
        except KeyboardInterrupt:
            err.print(f"[yellow]interrupted: {done} completed steps are saved in {story_path}[/]")
            sys.exit(130)


def _step_with_retry(engine: Any, plan: str | None, chosen_by: Any) -> Step:
    """One step; when its output stays unusable, one more try with another seed."""
    try:
        step: Step = engine.step(plan, chosen_by=chosen_by)
        return step
    except StepError as exc:
        err.print(f"[yellow]{exc}; trying once more with another seed[/]")
        engine.configure(seed=engine.seed + 1000)
        step = engine.step(plan, chosen_by=chosen_by)
        return step


@click.group()
def story() -> None:
    """Look at and manage story files."""


def _open(path: Path) -> StoryFile:
    if not path.is_file():
        raise ConfigError(f"no story file at {path}; start one with `memora write`")
    return StoryFile(path)


STORY_FILE = click.argument("path", type=click.Path(dir_okay=False, path_type=Path))


@story.command()
@STORY_FILE
def show(path: Path) -> None:
    """Every step (the tree of versions); * marks the current branch, > the head."""
    file = _open(path)
    premise = file.premise
    current = {s.id for s in file.path_to(file.head_id)}
    click.echo(f"{premise.title or 'Untitled'} - {premise.premise}")
    for step in file.steps():
        mark = ">" if step.id == file.head_id else ("*" if step.id in current else " ")
        parent = f"<-{step.parent_id}" if step.parent_id else "root"
        click.echo(
            f"{mark} #{step.id} {parent} depth {step.depth} ({step.chosen_by}) {step.plan[:60]}"
        )
        click.echo(f"      {step.paragraph[:100]}")
    file.close()


@story.command()
@STORY_FILE
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def export(path: Path, output: Path | None) -> None:
    """The current branch as Markdown."""
    file = _open(path)
    text = file.export_markdown()
    file.close()
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
    file = _open(path)
    file.set_head(step_id)
    file.close()
    out.print(f"head is now step #{step_id}")


@story.command()
@STORY_FILE
def undo(path: Path) -> None:
    """Move the head back one step (the step stays, as a branch)."""
    file = _open(path)
    head = file.head_id
    if head is None:
        raise ConfigError("the story is empty: nothing to undo")
    parent = file.step(head).parent_id
    file.set_head(parent)
    file.close()
    out.print(f"head is now step #{parent}" if parent else "the story is empty again")

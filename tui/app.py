"""The story app: one screen over :class:`~memora.recurrent.StoryEngine`, built by
:func:`build_app` for the CLI and for the tests alike.

Generation runs in a thread worker; the UI thread only reads the story file and draws.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static, TextArea

from memora.embed import Embedder
from memora.errors import MemoraError
from memora.llm.base import LLM
from memora.recurrent.engine import StoryEngine
from memora.recurrent.types import ChosenBy, Premise, Step
from memora.settings import Settings

__all__ = ["EditScreen", "NewStoryScreen", "StoryApp", "build_app"]


class _Cancelled(Exception):
    """Raised from the streaming callback to stop a step when Esc was pressed."""


class NewStoryScreen(ModalScreen[Premise | None]):
    """Asks for a premise (required), a title and a genre."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "quit_app", "Quit")]

    def compose(self) -> ComposeResult:
        with Vertical(id="new-story"):
            yield Label("A new story", id="new-title")
            yield Input(placeholder="premise: one or two sentences (required)", id="premise")
            yield Input(placeholder="title (optional)", id="title")
            yield Input(placeholder="genre (optional)", id="genre")
            yield Label("", id="new-error")
            yield Button("Start (enter)", id="start", variant="primary")

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def start(self) -> None:
        premise = self.query_one("#premise", Input).value
        try:
            made = Premise(
                premise,
                title=self.query_one("#title", Input).value.strip(),
                genre=self.query_one("#genre", Input).value.strip(),
            )
        except MemoraError as exc:
            self.query_one("#new-error", Label).update(f"[red]{exc}[/]")
            return
        self.dismiss(made)

    def action_quit_app(self) -> None:
        self.app.exit()


class EditScreen(ModalScreen[str | None]):
    """Edit a text: ctrl+s returns it, esc returns None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "drop", "Drop"),
    ]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="editor"):
            yield Label(f"{self.title_text} (ctrl+s save, esc drop)")
            yield TextArea(self.text, id="edit-text", soft_wrap=True)

    def on_mount(self) -> None:
        self.query_one("#edit-text", TextArea).focus()

    def action_save(self) -> None:
        self.dismiss(self.query_one("#edit-text", TextArea).text)

    def action_drop(self) -> None:
        self.dismiss(None)


class StoryApp(App[None]):
    """Write a story: pick plans, steer the memory, undo, export."""

    TITLE = "memora story"
    CSS = """
    #main { height: 1fr; }
    #left { width: 2fr; }
    #story { height: 1fr; padding: 0 1; }
    #live { color: $text-muted; }
    #plans { height: auto; max-height: 7; border-top: solid $primary; padding: 0 1; }
    #prompt.hidden { display: none; }
    #side { width: 1fr; min-width: 26; border-left: solid $primary; padding: 0 1; }
    #side .heading { text-style: bold; color: $accent; margin-top: 1; }
    #memory { height: 6; border: none; padding: 0; }
    #status { height: 1; background: $boost; padding: 0 1; }
    NewStoryScreen, EditScreen { align: center middle; }
    #editor { width: 76; height: 20; border: thick $primary; padding: 0 1; }
    #edit-text { height: 1fr; }
    #new-story { width: 70; height: auto; border: thick $primary; padding: 1 2; }
    #new-story Input { margin-bottom: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "pick(1)", "Plan 1", show=False),
        Binding("2", "pick(2)", "Plan 2", show=False),
        Binding("3", "pick(3)", "Plan 3", show=False),
        Binding("m", "model_picks", "Model"),
        Binding("c", "continue_steps", "Go 3"),
        Binding("o", "own_plan", "Own"),
        Binding("e", "edit_memory", "Memory"),
        Binding("ctrl+s", "save_memory", "Save memory", show=False),
        Binding("p", "edit_plan", "Plan"),
        Binding("r", "rewrite", "Rewrite"),
        Binding("u", "undo", "Undo"),
        Binding("b", "branch", "Branch"),
        Binding("x", "export", "Export"),
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, engine: StoryEngine, *, continue_steps: int = 3) -> None:
        super().__init__()
        self.engine = engine
        self.continue_steps = continue_steps
        self.busy = False
        self._cancel = threading.Event()
        self._live = ""  # the paragraph being generated
        self._prompt_for: str = ""  # what the input line asks: "own" or "branch"
        self.sub_title = engine.file.path.name

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield VerticalScroll(Static(id="paragraphs"), Static(id="live"), id="story")
                yield Static(id="plans")
                yield Input(id="prompt", classes="hidden")
            with VerticalScroll(id="side"):
                yield Label("Memory", classes="heading")
                yield TextArea(id="memory", read_only=True, soft_wrap=True)
                yield Label("Retrieved", classes="heading")
                yield Static(id="retrieved")
                yield Label("Model", classes="heading")
                yield Static(id="stats")
        yield Static(id="status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#story").focus()
        if self.engine.file.exists:
            self.refresh_story()
            self.set_status(
                "press m to write the opening"
                if self.engine.head is None
                else "1-3 follow a plan; esc cancels writing"
            )
        else:
            self.refresh_story()
            self.push_screen(NewStoryScreen(), self._created)

    def _created(self, premise: Premise | None) -> None:
        if premise is None:
            return
        self.engine.create(premise)
        self.refresh_story()
        self.generate(None, None, 1)

    # -- drawing -------------------------------------------------------------------------

    def refresh_story(self) -> None:
        """Redraw everything from the story file (the one source of truth)."""
        path = self.engine.path() if self.engine.file.exists else []
        head = path[-1] if path else None
        title = self.engine.premise.title if self.engine.file.exists else ""
        text = "\n\n".join(f"[dim]#{s.id}[/] {_escape(s.paragraph)}" for s in path)
        self.query_one("#paragraphs", Static).update(
            (f"[b]{_escape(title)}[/]\n\n" if title else "")
            + (text or "[dim](no paragraphs yet)[/]")
        )
        self.query_one("#live", Static).update("")
        plans = (
            "\n".join(f"[b]{n}[/] {_escape(p)}" for n, p in enumerate(head.plans, 1))
            if head
            else ""
        )
        self.query_one("#plans", Static).update(plans or "[dim]no plans yet[/]")
        memory = self.query_one("#memory", TextArea)
        memory.load_text(head.memory if head else "")
        memory.read_only = True
        by_id = {s.id: s for s in path}
        retrieved = [by_id[i] for i in (head.retrieved if head else ()) if i in by_id]
        self.query_one("#retrieved", Static).update(
            "\n".join(f"[dim]#{s.id}[/] {_escape(_clip(s.paragraph, 60))}" for s in retrieved)
            or "[dim](none)[/]"
        )
        self.query_one("#stats", Static).update(self._stats(head))
        self.query_one("#story", VerticalScroll).scroll_end(animate=False)

    def _stats(self, head: Step | None) -> str:
        llm = self.engine.llm
        lines = [_escape(llm.name)]
        if head is not None:
            stats = head.stats
            speed = stats.completion_tokens / stats.seconds if stats.seconds else 0.0
            lines += [
                f"context {stats.prompt_tokens}/{llm.n_ctx}",
                f"wrote {stats.completion_tokens} tok",
                f"{stats.seconds:.1f} s, {speed:.1f} tok/s",
            ]
        return "\n".join(lines)

    def set_status(self, text: str, *, error: bool = False) -> None:
        self.query_one("#status", Static).update(f"[red]{_escape(text)}[/]" if error else text)

    # -- actions -------------------------------------------------------------------------

    def _head_if_idle(self) -> Step | None:
        """The head when a new step can start now; otherwise says why and returns None."""
        if self.busy:
            self.set_status("still writing: wait, or press Esc to cancel")
            return None
        head = self.engine.head if self.engine.file.exists else None
        return head

    def action_pick(self, number: int) -> None:
        head = self._head_if_idle()
        if head is None:
            if not self.busy and self.engine.file.exists:
                self.generate(None, None, 1)  # the opening
            return
        self.generate(head.plans[number - 1], "person", 1)

    def action_model_picks(self) -> None:
        if not self.busy and self.engine.file.exists:
            self.generate(None, None, 1)
        else:
            self._head_if_idle()

    def action_continue_steps(self) -> None:
        if not self.busy and self.engine.file.exists:
            self.generate(None, None, self.continue_steps)
        else:
            self._head_if_idle()

    def action_own_plan(self) -> None:
        if self._head_if_idle() is not None:
            self._ask("own", "your plan for the next paragraph (enter: write it, esc: back)")

    def action_branch(self) -> None:
        if self._head_if_idle() is not None:
            self._ask("branch", "continue from step # (enter: branch, esc: back)")

    def action_edit_plan(self) -> None:
        if self._head_if_idle() is not None:
            self._ask("edit-which", "edit which plan? 1, 2 or 3 (esc: back)")

    def action_rewrite(self) -> None:
        if self._head_if_idle() is not None:
            self._ask("rewrite", "rewrite the paragraph of step # (esc: back)")

    def _ask(self, what: str, placeholder: str, value: str = "") -> None:
        self._prompt_for = what
        prompt = self.query_one("#prompt", Input)
        prompt.value = value
        prompt.placeholder = placeholder
        prompt.remove_class("hidden")
        prompt.focus()

    def _close_prompt(self) -> None:
        self.query_one("#prompt", Input).add_class("hidden")
        self._prompt_for = ""
        self.query_one("#story").focus()

    @on(Input.Submitted, "#prompt")
    def prompt_submitted(self, event: Input.Submitted) -> None:
        what, value = self._prompt_for, event.value.strip()
        self._close_prompt()
        if not value:
            return
        head = self.engine.head
        if what in ("own", "edit"):
            self.generate(value, "own" if what == "own" else "edited", 1)
        elif what == "edit-which":
            if value not in ("1", "2", "3") or head is None:
                self.set_status(f"{value!r}: type 1, 2 or 3")
                return
            self._ask("edit", "the edited plan (enter: write it)", head.plans[int(value) - 1])
        elif not value.lstrip("#").isdigit():
            self.set_status(f"{value!r} is not a step number: the #N before each paragraph")
        elif what == "branch":
            self._safely(lambda: self.engine.branch(int(value.lstrip("#"))), "branched")
        elif what == "rewrite":
            self._open_editor(int(value.lstrip("#")))

    def _open_editor(self, step_id: int) -> None:
        try:
            step = self.engine.file.step(step_id)
        except MemoraError as exc:
            self.set_status(f"{type(exc).__name__}: {exc}", error=True)
            return

        def save(text: str | None) -> None:
            if text is not None:
                self._safely(
                    lambda: self.engine.edit_paragraph(step_id, text),
                    f"step #{step_id} rewritten: later steps read the new text",
                )

        self.push_screen(EditScreen(f"Paragraph #{step_id}", step.paragraph), save)

    def action_edit_memory(self) -> None:
        if self._head_if_idle() is None:
            self.set_status("there is no memory to edit yet")
            return
        memory = self.query_one("#memory", TextArea)
        memory.read_only = False
        memory.focus()
        self.set_status("editing the memory: ctrl+s saves it, esc drops the edit")

    def action_save_memory(self) -> None:
        memory = self.query_one("#memory", TextArea)
        if memory.read_only:
            return
        text = memory.text
        self._safely(lambda: self.engine.edit_memory(text), "memory saved: the next step reads it")

    def action_undo(self) -> None:
        if self._head_if_idle() is None:
            if not self.busy:
                self.set_status("nothing to undo")
            return
        self._safely(self.engine.undo, "undone (the step stays as a branch)")

    def action_export(self) -> None:
        if not self.engine.file.exists:
            return
        target = self.engine.file.path.with_suffix(".md")
        target.write_text(self.engine.export_markdown(), encoding="utf-8")
        self.set_status(f"exported to {target}")

    def action_cancel(self) -> None:
        if self._prompt_for:
            self._close_prompt()
        elif not self.query_one("#memory", TextArea).read_only:
            self.refresh_story()
            self.query_one("#story").focus()
            self.set_status("memory edit dropped")
        elif self.busy:
            self._cancel.set()
            self.set_status("cancelling...")

    def _safely(self, do: Any, done: str) -> None:
        try:
            do()
        except MemoraError as exc:
            self.set_status(f"{type(exc).__name__}: {exc}", error=True)
            return
        self.refresh_story()
        self.query_one("#story").focus()
        self.set_status(done)

    # -- generation ----------------------------------------------------------------------

    def generate(self, plan: str | None, chosen_by: ChosenBy | None, steps: int) -> None:
        self.busy = True
        self._cancel.clear()
        self.set_status("writing... (esc cancels)")
        self._write(plan, chosen_by, steps)

    @work(thread=True, exclusive=True, group="story")
    def _write(self, plan: str | None, chosen_by: ChosenBy | None, steps: int) -> None:
        done, message, error = 0, "", False
        try:
            for _ in range(steps):
                if self._cancel.is_set():
                    break
                self.call_from_thread(self._clear_live)
                step = self.engine.step(plan, chosen_by=chosen_by, on_text=self._on_text)
                plan, chosen_by, done = None, None, done + 1
                self.call_from_thread(self.refresh_story)
                message = f"step #{step.id} written" + (f" ({done}/{steps})" if steps > 1 else "")
            if self._cancel.is_set():
                message = f"cancelled after {done} of {steps} steps; finished steps are saved"
        except _Cancelled:
            message = f"cancelled: {done} finished steps are saved, the unfinished one dropped"
        except MemoraError as exc:
            message, error = f"{type(exc).__name__}: {exc}", True
        self.call_from_thread(self._finished, message, error)

    def _on_text(self, piece: str) -> None:
        if self._cancel.is_set():
            raise _Cancelled
        self.call_from_thread(self._append_live, piece)

    def _append_live(self, piece: str) -> None:
        self._live += piece
        self.query_one("#live", Static).update(_escape(self._live))
        self.query_one("#story", VerticalScroll).scroll_end(animate=False)

    def _clear_live(self) -> None:
        self._live = ""
        self.query_one("#live", Static).update("")

    def _finished(self, message: str, error: bool) -> None:
        self.busy = False
        self.refresh_story()
        self.set_status(message, error=error)

    def on_unmount(self) -> None:
        self._cancel.set()


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def build_app(
    story_path: str | Path,
    llm: LLM | None = None,
    embedder: Embedder | None = None,
    settings: Settings | None = None,
    **engine_options: Any,
) -> StoryApp:
    """The app over the story file at ``story_path`` (new or existing). Without ``llm``, the
    model named in ``settings`` (default: from the environment) is loaded."""
    if llm is None:
        from memora.llm.registry import load_model
        from memora.settings import load_settings

        settings = settings or load_settings()
        options = {k: v for k, v in settings.model_options().items() if v is not None}
        llm = load_model(settings.model, **options)
        try:
            return StoryApp(StoryEngine(llm, story_path, embedder=embedder, **engine_options))
        except BaseException:
            llm.close()
            raise
    return StoryApp(StoryEngine(llm, story_path, embedder=embedder, **engine_options))

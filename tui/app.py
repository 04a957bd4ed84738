"""The story app: one screen over :class:`~memora.recurrent.StoryEngine`, built by
:func:`build_app` for the CLI and for the tests alike.

Generation and model loading run in thread workers; the UI thread only reads the story file
and draws. The story file is the one source of truth: every finished step is saved as it
completes, so there is no "save"; ``a`` saves a copy under another name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from memora.tui.files import OpenScreen, copy_story, probe
from memora.tui.screens import EditScreen, KeysScreen, NewStory, NewStoryScreen
from memora.tui.settings import SettingsScreen, TuiConfig, config_path, load_llm
from memora.tui.tree import BranchScreen, TreeChoice
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Input, Label, Static, TextArea

from memora.embed import Embedder, load_embedder
from memora.errors import MemoraError
from memora.llm.base import LLM
from memora.recurrent.engine import StoryEngine
from memora.recurrent.types import ChosenBy, Step
from memora.settings import Settings, load_settings

__all__ = ["EditScreen", "NewStoryScreen", "StoryApp", "build_app"]

MAX_CONTINUE = 50


class _Cancelled(Exception):
    """Raised from the streaming callbacks to stop a step when Esc was pressed."""


class StoryApp(App[None]):
    """Write a story: pick plans, steer the memory, undo, branch, export."""

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
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "pick(1)", "Plan 1", show=False, tooltip="write the next paragraph on plan 1"),
        Binding("2", "pick(2)", "Plan 2", show=False, tooltip="... on plan 2"),
        Binding("3", "pick(3)", "Plan 3", show=False, tooltip="... on plan 3"),
        Binding("m", "model_picks", "Model", tooltip="let the model choose a plan and write"),
        Binding("c", "continue_steps", "Go N", tooltip="continue N steps, the model choosing"),
        Binding("o", "own_plan", "Own", tooltip="write your own plan for the next paragraph"),
        Binding("p", "edit_plan", "Plan", tooltip="edit one of the three plans, then write"),
        Binding("e", "edit_memory", "Memory", tooltip="edit the short-term memory"),
        Binding("ctrl+s", "save_memory", "Save", show=False, tooltip="save the memory edit"),
        Binding("r", "rewrite", "Rewrite", tooltip="rewrite the latest paragraph"),
        Binding("u", "undo", "Undo", tooltip="undo the last step (it stays as a branch)"),
        Binding(
            "b", "branches", "Branches", tooltip="branch tree: switch branch, rewrite any paragraph"
        ),
        Binding("x", "export", "Export", tooltip="export the story to Markdown"),
        Binding("a", "save_as", "Save as", show=False, tooltip="save a copy, continue in it"),
        Binding("ctrl+n", "new_story", "New", show=False, tooltip="start a new story"),
        Binding("ctrl+o", "open_story", "Open", show=False, tooltip="open another story file"),
        Binding(
            "s",
            "settings",
            "Settings",
            show=False,
            tooltip="model, temperature, context size, GPU layers",
        ),
        Binding("question_mark", "keys", "Keys", tooltip="this list"),
        Binding(
            "escape",
            "cancel",
            "Cancel",
            show=False,
            tooltip="stop writing (finished steps stay), close a prompt",
        ),
        Binding("q", "quit", "Quit", tooltip="quit (the story is saved as it is written)"),
    ]

    def __init__(
        self,
        engine: StoryEngine,
        *,
        config: TuiConfig | None = None,
        settings: Settings | None = None,
        config_file: Path | None = None,
        owns_llm: bool = False,
        **engine_options: Any,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.settings = settings or load_settings()
        self.config = config or TuiConfig.from_settings(self.settings).model_copy(
            update={"temperature": engine.temperature}
        )
        self.config_file = config_file
        self.owns_llm = owns_llm
        self.engine_options = engine_options
        self.embedder = engine.store.embedder
        self.busy = False
        self._cancel = threading.Event()
        self._live = ""  # the paragraph being generated
        self._planned = 0  # characters of the plans call so far
        self._prompt_for: str = ""  # what the input line asks for
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
        self._opened(first=True)

    def _opened(self, *, first: bool = False) -> None:
        """Draw the story just opened, or ask for a premise when the file holds none yet (esc
        then quits when this is the app's first story: there is nothing to go back to)."""
        self.sub_title = self.engine.file.path.name
        self.refresh_story()
        if not self.engine.file.exists:
            self.push_screen(NewStoryScreen(self.config.model, quit_on_escape=first), self._created)
        elif self.engine.head is None:
            self.set_status("press m to write the opening; ? lists the keys")
        else:
            self.set_status("1-3 follow a plan, m lets the model pick; ? lists the keys")

    def _created(self, new: NewStory | None) -> None:
        if new is None:
            self.set_status("no story started: ctrl+n starts one, ctrl+o opens one")
            return

        def start() -> None:
            if new.path is not None and not self._switch(new.path):
                return
            if self.engine.file.exists:
                self.set_status(f"{self.engine.file.path} holds a story already; opened it")
                self.refresh_story()
                return
            self.engine.create(new.premise)
            self.refresh_story()
            self.generate(None, None, 1)

        if new.model != self.config.model:
            self.reload(self.config.model_copy(update={"model": new.model}), then=start)
        else:
            start()

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
        lines = [_escape(llm.name), f"temperature {self.engine.temperature:g}"]
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

    def _error(self, exc: MemoraError) -> None:
        self.set_status(f"{type(exc).__name__}: {exc}", error=True)

    # -- actions -------------------------------------------------------------------------

    def _idle(self) -> bool:
        """Whether something new can start now; otherwise says why."""
        if self.busy:
            self.set_status("busy: wait, or press Esc to cancel")
            return False
        return True

    def _head_if_idle(self) -> Step | None:
        """The head when the story has one and nothing runs; otherwise None (and says why)."""
        if not self._idle():
            return None
        head = self.engine.head if self.engine.file.exists else None
        if head is None:
            self.set_status(
                "no paragraphs yet: press m to write the opening"
                if self.engine.file.exists
                else "no story open: ctrl+n starts one, ctrl+o opens one"
            )
        return head

    def action_pick(self, number: int) -> None:
        if not self._idle() or not self.engine.file.exists:
            return
        head = self.engine.head
        if head is None:
            self.generate(None, None, 1)  # the opening
        else:
            self.generate(head.plans[number - 1], "person", 1)

    def action_model_picks(self) -> None:
        if self._idle() and self.engine.file.exists:
            self.generate(None, None, 1)

    def action_continue_steps(self) -> None:
        if self._idle() and self.engine.file.exists:
            self._ask("continue", f"how many steps, the model choosing? 1-{MAX_CONTINUE} "
                      "(enter: write them, esc: back)", "3")  # fmt: skip

    def action_own_plan(self) -> None:
        if self._head_if_idle() is not None:
            self._ask("own", "your plan for the next paragraph (enter: write it, esc: back)")

    def action_edit_plan(self) -> None:
        if self._head_if_idle() is not None:
            self._ask("edit-which", "edit which plan? 1, 2 or 3 (esc: back)")

    def action_rewrite(self) -> None:
        head = self._head_if_idle()
        if head is not None:
            self._open_editor(head.id)

    def action_branches(self) -> None:
        if self._idle() and self.engine.file.exists:
            self.push_screen(BranchScreen(self.engine.file), self._tree_choice)

    def _tree_choice(self, choice: TreeChoice | None) -> None:
        if choice is None:
            return
        if choice.action == "rewrite":
            self._open_editor(choice.step_id)
        else:
            self._safely(
                lambda: self.engine.branch(choice.step_id),
                f"continuing from #{choice.step_id}: the next step starts a branch there",
            )

    def action_save_as(self) -> None:
        if self._idle() and self.engine.file.exists:
            path = self.engine.file.path
            self._ask("save-as", "save a copy as (enter: save it and continue in the copy)",
                      str(path.with_name(f"{path.stem}-copy{path.suffix}")))  # fmt: skip

    def action_new_story(self) -> None:
        if self._idle():
            folder = self.engine.file.path.parent
            self.push_screen(
                NewStoryScreen(
                    self.config.model, path=_free_name(folder / "story.db"), quit_on_escape=False
                ),
                self._created,
            )

    def action_open_story(self) -> None:
        if self._idle():
            current = self.engine.file.path
            self.push_screen(OpenScreen(current.parent, current), self._open_picked)

    def _open_picked(self, path: Path | None) -> None:
        if path is not None and self._switch(path):
            self._opened()

    def _switch(self, path: Path) -> bool:
        """Close the story file and open ``path`` (with the same model); False on failure."""
        if path.resolve() == self.engine.file.path.resolve():
            return True
        try:
            probe(path)
            engine = StoryEngine(
                self.engine.llm, path, embedder=self.embedder, **self.engine_options
            )
        except MemoraError as exc:
            self._error(exc)
            return False
        self.engine.close()
        self.engine = engine
        self.sub_title = path.name
        return True

    def action_settings(self) -> None:
        if self._idle():
            self.push_screen(SettingsScreen(self.config), self._settings_saved)

    def _settings_saved(self, config: TuiConfig | None) -> None:
        if config is None:
            return
        if config.needs_reload(self.config):
            self.reload(config)
        else:
            self._apply(config, None)
            self.set_status("settings saved")

    def action_keys(self) -> None:
        keys = [
            (self.get_key_display(b), b.tooltip or b.description)
            for b in self.BINDINGS
            if isinstance(b, Binding)
        ]
        self.push_screen(KeysScreen(keys))

    def _ask(self, what: str, placeholder: str, value: str = "") -> None:
        self._prompt_for = what
        prompt = self.query_one("#prompt", Input)
        prompt.value = value
        prompt.placeholder = placeholder
        prompt.remove_class("hidden")
        prompt.focus()
        self.set_status(placeholder)

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
        elif what == "continue":
            if not value.isdigit() or not 1 <= int(value) <= MAX_CONTINUE:
                self.set_status(f"{value!r}: type a number of steps from 1 to {MAX_CONTINUE}")
                return
            self.generate(None, None, int(value))
        elif what == "save-as":
            self._save_as(Path(value).expanduser())

    def _save_as(self, target: Path) -> None:
        try:
            copy_story(self.engine.file.path, target)
        except (MemoraError, OSError) as exc:
            self.set_status(f"not saved: {exc}", error=True)
            return
        if self._switch(target):
            self._opened()
            self.set_status(f"saved a copy as {target}; writing on in the copy")

    def _open_editor(self, step_id: int) -> None:
        try:
            step = self.engine.file.step(step_id)
        except MemoraError as exc:
            self._error(exc)
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
        if self._head_if_idle() is not None:
            self._safely(self.engine.undo, "undone (the step stays as a branch: b shows it)")

    def action_export(self) -> None:
        if not self.engine.file.exists:
            return
        target = self.engine.file.path.with_suffix(".md")
        try:
            target.write_text(self.engine.export_markdown(), encoding="utf-8")
        except OSError as exc:
            self.set_status(f"not exported: {exc}", error=True)
            return
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

    def _safely(self, do: Callable[[], object], done: str) -> None:
        try:
            do()
        except MemoraError as exc:
            self._error(exc)
            return
        self.refresh_story()
        self.query_one("#story").focus()
        self.set_status(done)

    # -- the model -----------------------------------------------------------------------

    def reload(self, config: TuiConfig, then: Callable[[], None] | None = None) -> None:
        """Load the model ``config`` names in a worker; on success swap it in, save the
        settings and run ``then``. On failure the old model stays."""
        self.busy = True
        self.set_status(f"loading {config.model}...")
        self._load(config, then)

    @work(thread=True, exclusive=True, group="model")
    def _load(self, config: TuiConfig, then: Callable[[], None] | None) -> None:
        try:
            llm = load_llm(config, self.settings)
        except MemoraError as exc:
            self.call_from_thread(self._load_failed, exc)
            return
        self.call_from_thread(self._apply, config, llm, then)

    def _load_failed(self, exc: MemoraError) -> None:
        self.busy = False
        self.set_status(f"{type(exc).__name__}: {exc} (the model in use stays)", error=True)

    def _apply(
        self, config: TuiConfig, llm: LLM | None, then: Callable[[], None] | None = None
    ) -> None:
        """Use ``config`` from now on (and ``llm``, when the model was reloaded); persist it."""
        self.busy = False
        if llm is not None:
            old = self.engine.llm
            self.engine.configure(llm=llm)
            if self.owns_llm:
                old.close()
            self.owns_llm = True
        self.config = config
        self.engine.configure(temperature=config.temperature)
        self.engine_options["temperature"] = config.temperature
        message = f"using {self.engine.llm.name}"
        if self.config_file is not None:
            env_key = self.settings.openai_api_key
            if env_key is not None and config.openai_api_key == env_key:
                config = config.model_copy(update={"openai_api_key": None})  # stays in the env
            try:
                config.save(self.config_file)
                message += f"; settings saved to {self.config_file}"
            except (MemoraError, OSError) as exc:
                message += f"; settings not saved: {exc}"
        self.query_one("#stats", Static).update(self._stats(self.engine.head))
        self.set_status(message)
        if then is not None:
            then()

    def close(self) -> None:
        """Close the story file, and the model when the app loaded it."""
        self.engine.close()
        if self.owns_llm:
            self.engine.llm.close()

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
                step = self.engine.step(
                    plan, chosen_by=chosen_by, on_text=self._on_text, on_plan_text=self._on_plan
                )
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

    def _on_plan(self, piece: str) -> None:
        if self._cancel.is_set():
            raise _Cancelled
        self._planned += len(piece)
        self.call_from_thread(
            self.set_status, f"planning the next steps... {self._planned} chars (esc cancels)"
        )

    def _append_live(self, piece: str) -> None:
        self._live += piece
        self.query_one("#live", Static).update(_escape(self._live))
        self.query_one("#story", VerticalScroll).scroll_end(animate=False)

    def _clear_live(self) -> None:
        self._live = ""
        self._planned = 0
        self.query_one("#live", Static).update("")
        self.set_status("writing... (esc cancels)")

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


def _free_name(path: Path) -> Path:
    """``path``, or ``stem-2``, ``stem-3``... when taken."""
    n = 2
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


_DEFAULT_CONFIG = Path("<settings>")


def build_app(
    story_path: str | Path,
    llm: LLM | None = None,
    embedder: Embedder | None = None,
    settings: Settings | None = None,
    *,
    model: str | None = None,
    config_file: Path | None = _DEFAULT_CONFIG,
    **engine_options: Any,
) -> StoryApp:
    """The app over the story file at ``story_path`` (new or existing).

    The model and sampling settings come from the settings file the settings screen saves
    (``config_file``; default ``<data_dir>/tui.json``; None: neither read nor saved), else
    from ``settings`` (default: the ``MEMORA_*`` environment); ``model`` overrides both for
    this run. Without ``llm`` that model is loaded (and closed by :meth:`StoryApp.close`).
    A file that is not a story raises :class:`ConfigError` before anything is written.
    """
    settings = settings or load_settings()
    file = config_path(settings) if config_file == _DEFAULT_CONFIG else config_file
    config = (
        TuiConfig.load(file) if file is not None and file.exists()
        else TuiConfig.from_settings(settings)
    )  # fmt: skip
    if model:
        config = config.model_copy(update={"model": model})
    engine_options.setdefault("temperature", config.temperature)
    path = Path(story_path)
    probe(path)
    embedder = embedder if embedder is not None else load_embedder(settings.embedder)
    owns = llm is None
    if llm is None:
        llm = load_llm(config, settings)
    try:
        engine = StoryEngine(llm, path, embedder=embedder, **engine_options)
    except BaseException:
        if owns:
            llm.close()
        raise
    return StoryApp(engine, config=config, settings=settings, config_file=file, owns_llm=owns,
                    **engine_options)  # fmt: skip

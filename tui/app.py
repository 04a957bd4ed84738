"""The story app: one screen over :class:`~memora.recurrent.StoryEngine`, built by
:func:`build_app` for the CLI and for the tests alike.

The app draws its first frame before anything slow is imported: with ``background``, the model,
the embedder and the story load after it, off the UI thread. Generation and model loading run
in thread workers; the UI thread only reads the story file and draws. The story file is the
one source of truth: every finished step is saved as it completes, so there is no "save";
``a`` saves a copy under another name.

This module holds the layout, the keys and the few actions of the app as a whole; the rest
stands in layers below it, none of which imports this one: :mod:`~memora.tui.story_actions`,
:mod:`~memora.tui.file_actions` and :mod:`~memora.tui.tools` (what the keys do; the lorebook's
screens in :mod:`~memora.tui.lore` and :mod:`~memora.tui.proposals`), :mod:`~memora.tui.base`
(state, drawing, the workers), :mod:`~memora.tui.prompt` (the input line's modes),
:mod:`~memora.tui.writer` and :mod:`~memora.tui.view` (writing steps, the story as markup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from memora.tui.file_actions import FileActions
from memora.tui.files import probe
from memora.tui.prompt import InputMode, PromptLine, answer
from memora.tui.screens import EditScreen, KeysScreen, NewStoryScreen
from memora.tui.settings import SettingsScreen, TuiConfig, config_path
from memora.tui.startup import Startup
from memora.tui.story_actions import StoryActions
from memora.tui.tools import ToolActions
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Input, Label, Static, TextArea

from memora.embed import Embedder
from memora.llm.base import LLM
from memora.settings import Settings, load_settings

__all__ = ["EditScreen", "NewStoryScreen", "StoryApp", "build_app"]


class StoryApp(StoryActions, FileActions, ToolActions):
    """Write a story: pick plans, steer the memory, undo, branch, export."""

    TITLE = "memora story"
    CSS = """
    #main { height: 1fr; }
    #left { width: 2fr; }
    #story { height: 1fr; padding: 0 1; }
    #live { color: $text-muted; }
    #plans-box { height: auto; max-height: 40%; border-top: solid $primary; padding: 0 1; }
    #plans { height: auto; }
    #prompt.hidden { display: none; }
    #side { width: 1fr; min-width: 26; border-left: solid $primary; padding: 0 1; }
    #side .heading { text-style: bold; color: $accent; margin-top: 1; }
    #memory { height: 6; border: none; padding: 0; }
    #status { height: auto; max-height: 8; background: $boost; padding: 0 1; }
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
        Binding("w", "swipe", "Swipe", tooltip="write another version of the latest paragraph"),
        Binding("left_square_bracket", "flick(-1)", "Prev", tooltip="the version before"),
        Binding("right_square_bracket", "flick(1)", "Next", tooltip="the version after"),
        Binding("n", "author_note", "Note", tooltip="the author's note (read for each paragraph)"),
        Binding("l", "lore", "Lore", tooltip="the lorebook: add, edit, remove, undo"),
        Binding("L", "propose_lore", "Bible", tooltip="lorebook changes the story bible proposes"),
    ]

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield VerticalScroll(Static(id="paragraphs"), Static(id="live"), id="story")
                plans = VerticalScroll(Static(id="plans"), id="plans-box")
                plans.can_focus = False  # scrolled with the mouse; keys stay with the story
                yield plans
                yield PromptLine(id="prompt", classes="hidden")
            with VerticalScroll(id="side"):
                yield Label("Memory", classes="heading")
                yield TextArea(id="memory", read_only=True, soft_wrap=True)
                yield Label("Author's note", classes="heading note")
                yield Static(id="note", classes="note")
                yield Label("Retrieved", classes="heading")
                yield Static(id="retrieved")
                yield Label("Model", classes="heading")
                yield Static(id="stats")
        yield Static(id="status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#story").focus()
        if self.loaded:
            self.opened(first=True)
        else:
            self.start_loading()  # after this first frame

    def loaded_story(self) -> None:
        self.opened(first=True)

    # -- the app as a whole --------------------------------------------------------------

    def action_settings(self) -> None:
        start_failed = not self.loaded and not self.loading  # then: choose another model
        if start_failed or self.idle():
            self.push_screen(SettingsScreen(self.config), self._settings_saved)

    def _settings_saved(self, config: TuiConfig | None) -> None:
        if config is None:
            return
        if not self.loaded:
            self.start_loading(config)  # the model the start failed on, replaced
        elif config.needs_reload(self.config):
            self.reload(config)
        else:
            self.apply_config(config, None)
            self.set_status("settings saved")

    def action_keys(self) -> None:
        keys = [
            (self.get_key_display(b), b.tooltip or b.description)
            for b in self.BINDINGS
            if isinstance(b, Binding)
        ]
        self.push_screen(KeysScreen(keys))

    def action_cancel(self) -> None:
        if self.prompt.mode is not None:
            self.close_prompt()
        elif self.editing_memory():
            self.drop_memory_edit()
        elif self.busy:
            self.cancel_writing()
            self.set_status("cancelling...")

    @on(Input.Submitted, "#prompt")
    def prompt_submitted(self, event: Input.Submitted) -> None:
        mode, value = self.close_prompt(), event.value.strip()
        if mode is not None and (value or mode is InputMode.AUTHOR_NOTE):
            answer(self, mode, value)


_DEFAULT_CONFIG = Path("<settings>")


def build_app(
    story_path: str | Path,
    llm: LLM | None = None,
    embedder: Embedder | None = None,
    settings: Settings | None = None,
    *,
    model: str | None = None,
    config_file: Path | None = _DEFAULT_CONFIG,
    background: bool = False,
    **engine_options: Any,
) -> StoryApp:
    """The app over the story file at ``story_path`` (new or existing).

    The model and sampling settings come from the settings file the settings screen saves
    (``config_file``; default ``<data_dir>/tui.json``; None: neither read nor saved), else
    from ``settings`` (default: the ``MEMORA_*`` environment); ``model`` overrides both for
    this run only (saving the settings keeps the file's model). Without ``llm`` that model is
    loaded (and closed by :meth:`StoryApp.close`), without ``embedder`` the settings' one:
    here, or with ``background`` in a worker once the app has drawn its first frame (the
    status line says what loads; a load error shows there). A file that is not a story
    raises a :class:`MemoraError` naming the fix (:class:`NoStoryError`,
    :class:`NotMemoraFileError`, :class:`DamagedFileError`) before anything is written or
    loaded.
    """
    settings = settings or load_settings()
    file = config_path(settings) if config_file == _DEFAULT_CONFIG else config_file
    config = (
        TuiConfig.load(file) if file is not None and file.exists()
        else TuiConfig.from_settings(settings)
    )  # fmt: skip
    saved_model = config.model if model and model != config.model else None
    if model:
        config = config.model_copy(update={"model": model})
    engine_options.setdefault("temperature", config.temperature)
    path = Path(story_path)
    probe(path)
    startup = Startup(path, config, settings, llm, embedder, dict(engine_options))
    if background and not startup.ready:
        return StoryApp(startup, config=config, settings=settings, config_file=file,
                        saved_model=saved_model, **engine_options)  # fmt: skip
    engine, owns = startup.load()
    return StoryApp(engine, config=config, settings=settings, config_file=file, owns_llm=owns,
                    saved_model=saved_model, **engine_options)  # fmt: skip

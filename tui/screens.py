"""The story app's small pop-ups: a new story, and a text editor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea

from memora.errors import MemoraError
from memora.recurrent.types import Premise

__all__ = ["EditScreen", "KeysScreen", "NewStory", "NewStoryScreen"]


@dataclass(frozen=True)
class NewStory:
    premise: Premise
    path: Path | None  # None: the story file the app has open
    model: str


class NewStoryScreen(ModalScreen[NewStory | None]):
    """Asks for a premise (required), a title, a genre and the model; with ``path``, also the
    file to write the story to. Esc goes back (or, when ``quit_on_escape``, quits: there is no
    story to go back to)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]
    DEFAULT_CSS = """
    NewStoryScreen { align: center middle; }
    #new-story { width: 76; height: auto; max-height: 24; border: thick $primary; padding: 0 1; }
    #new-story .row { height: 1; margin-top: 1; }
    #new-story .field { width: 10; }
    #new-story Input { width: 1fr; background: $boost; }
    #new-story Input:focus { background: $primary 40%; }
    #new-error { color: $error; margin-top: 1; }
    #new-keys { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, model: str, *, path: Path | None = None, quit_on_escape: bool = True):
        super().__init__()
        self.model = model
        self.path = path
        self.quit_on_escape = quit_on_escape

    def compose(self) -> ComposeResult:
        fields = [
            ("premise", "Premise", "", "one or two sentences (required)"),
            ("title", "Title", "", "optional"),
            ("genre", "Genre", "", "optional"),
            ("new-model", "Model", self.model, "default, a .gguf path, or openai:<name>"),
        ]
        if self.path is not None:
            fields.append(("new-path", "File", str(self.path), "the story file to write"))
        with Vertical(id="new-story") as box:
            box.border_title = "A new story"
            for wid, label, value, hint in fields:
                with Horizontal(classes="row"):
                    yield Label(label, classes="field")
                    yield Input(value, placeholder=hint, id=wid, compact=True)
            yield Label("", id="new-error")
            esc = "quit" if self.quit_on_escape else "back"
            yield Label(f"enter: start writing · tab: next field · esc: {esc}", id="new-keys")

    @on(Input.Submitted)
    def start(self) -> None:
        try:
            made = Premise(
                self.query_one("#premise", Input).value,
                title=self.query_one("#title", Input).value.strip(),
                genre=self.query_one("#genre", Input).value.strip(),
            )
        except MemoraError as exc:
            self.query_one("#new-error", Label).update(str(exc))
            self.query_one("#premise", Input).focus()
            return
        model = self.query_one("#new-model", Input).value.strip() or self.model
        path = None
        if self.path is not None:
            typed = self.query_one("#new-path", Input).value.strip()
            if not typed:
                self.query_one("#new-error", Label).update("give the story a file name")
                return
            path = Path(typed).expanduser()
        self.dismiss(NewStory(made, path, model))

    def action_back(self) -> None:
        if self.quit_on_escape:
            self.app.exit()
        else:
            self.dismiss(None)


class EditScreen(ModalScreen[str | None]):
    """Edit a text: ctrl+s returns it, esc returns None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "drop", "Drop"),
    ]
    DEFAULT_CSS = """
    EditScreen { align: center middle; }
    #editor { width: 76; height: 20; border: thick $primary; padding: 0 1; }
    #edit-text { height: 1fr; }
    """

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


class KeysScreen(ModalScreen[None]):
    """Every key of the story screen and what it does; the arrows and the page keys scroll a
    list taller than the screen, any other key closes it."""

    DEFAULT_CSS = """
    KeysScreen { align: center middle; }
    #keys {
        width: 66; height: auto; max-height: 22; border: thick $primary; padding: 0 1;
        scrollbar-size-vertical: 0;
    }
    """
    SCROLL_KEYS: ClassVar[dict[str, str]] = {
        "down": "scroll_down", "up": "scroll_up", "pagedown": "scroll_page_down",
        "pageup": "scroll_page_up", "end": "scroll_end", "home": "scroll_home",
    }  # fmt: skip

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        width = max(len(key) for key, _ in self.keys)
        lines = [f"[b]{key.rjust(width)}[/]  {what}" for key, what in self.keys]
        with VerticalScroll(id="keys"):
            yield Static("\n".join(lines), id="keys-list")

    def on_key(self, event: Key) -> None:
        scroll = self.SCROLL_KEYS.get(event.key)
        if scroll is None:
            self.dismiss(None)
            return
        event.stop()
        getattr(self.query_one("#keys", VerticalScroll), scroll)(animate=False)

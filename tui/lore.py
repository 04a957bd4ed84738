"""The lorebook screen: every entry (name, keys, priority, always), a small form to add or
edit one, removing one, and undoing the last change. Bad input is a message on the form or the
screen; nothing is stored then (:class:`~memora.recurrent.lore.Lorebook` checks it all)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from memora.tui.view import clip, escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label

from memora.cli.boundary import as_memora_error
from memora.recurrent.lore import Lorebook, LoreEntry

__all__ = ["LoreForm", "LoreScreen", "parse_keys"]


def parse_keys(text: str) -> list[str]:
    """The keys typed in the form: comma-separated, a ``/regex/`` kept whole."""
    return [k.strip() for k in text.split(",") if k.strip()]


class LoreForm(ModalScreen[bool]):
    """Add an entry (``entry`` None) or edit ``entry``; enter stores it and returns True, esc
    returns False. A refused entry keeps the form open with the reason."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]
    DEFAULT_CSS = """
    LoreForm { align: center middle; }
    #lore-form { width: 76; height: auto; max-height: 22; border: thick $primary; padding: 0 1; }
    #lore-form .row { height: 1; margin-top: 1; }
    #lore-form .field { width: 10; }
    #lore-form Input { width: 1fr; background: $boost; }
    #lore-form Input:focus { background: $primary 40%; }
    #lore-form-error { color: $error; margin-top: 1; }
    #lore-form-keys { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, book: Lorebook, entry: LoreEntry | None = None) -> None:
        super().__init__()
        self.book = book
        self.entry = entry

    def compose(self) -> ComposeResult:
        e = self.entry
        fields = [
            ("lore-name", "Name", e.name if e else "", "who or what (required)"),
            ("lore-keys", "Keys", ", ".join(e.keys) if e else "", "words or /regex/, commas"),
            ("lore-text", "Text", e.text if e else "", "what the story should know (required)"),
            ("lore-priority", "Priority", str(e.priority) if e else "0", "a whole number"),
            ("lore-always", "Always", "yes" if e and e.always else "no", "yes: in every prompt"),
        ]
        with Vertical(id="lore-form") as box:
            box.border_title = f"Lore entry {e.id}" if e else "A new lore entry"
            for wid, label, value, hint in fields:
                with Horizontal(classes="row"):
                    yield Label(label, classes="field")
                    yield Input(value, placeholder=hint, id=wid, compact=True)
            yield Label("", id="lore-form-error")
            yield Label("enter: store it · tab: next field · esc: back", id="lore-form-keys")

    def _value(self, wid: str) -> str:
        return self.query_one(f"#{wid}", Input).value.strip()

    @on(Input.Submitted)
    def store(self) -> None:
        priority, always = self._value("lore-priority") or "0", self._value("lore-always")
        if not priority.lstrip("-").isdigit():
            self._refuse(f"priority {priority!r}: type a whole number")
            return
        if always.casefold() not in ("yes", "no", "y", "n", ""):
            self._refuse(f"always {always!r}: type yes or no")
            return
        name, text = self._value("lore-name"), self._value("lore-text")
        keys = self._value("lore-keys")
        rank, on = int(priority), always.casefold().startswith("y")
        entry = self.entry
        if entry is None:
            done = _attempt(
                lambda: self.book.add(name, text, keys=parse_keys(keys), priority=rank, always=on)
            )
        else:
            done = _attempt(lambda: self.book.edit(entry.id, name=name, text=text,
                                                   keys=parse_keys(keys), priority=rank,
                                                   always=on))  # fmt: skip
        if done is not None:
            self._refuse(done)
        else:
            self.dismiss(True)

    def _refuse(self, reason: str) -> None:
        self.query_one("#lore-form-error", Label).update(escape(reason))

    def action_back(self) -> None:
        self.dismiss(False)


class LoreScreen(ModalScreen[None]):
    """The lorebook's entries in a table: a adds, enter or e edits, d removes, u undoes the
    last change, esc goes back to the story."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("d", "remove", "Remove"),
        Binding("u", "undo", "Undo"),
        Binding("escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    LoreScreen { align: center middle; }
    #lore { width: 78; height: 22; border: thick $primary; padding: 0 1; }
    #lore-table { height: 1fr; }
    #lore-message { height: auto; margin-top: 1; }
    #lore-keys { color: $text-muted; }
    """

    def __init__(self, book: Lorebook) -> None:
        super().__init__()
        self.book = book

    def compose(self) -> ComposeResult:
        with Vertical(id="lore") as box:
            box.border_title = "Lorebook"
            yield DataTable(id="lore-table", cursor_type="row", zebra_stripes=True)
            yield Label("", id="lore-message")
            yield Label("a add · e edit · d remove · u undo the last change · esc back",
                        id="lore-keys")  # fmt: skip

    def on_mount(self) -> None:
        table = self.query_one("#lore-table", DataTable)
        table.add_columns("Name", "Keys", "Priority", "Always", "Text")
        self.fill()
        table.focus()

    def fill(self) -> None:
        """Redraw the table from the lorebook."""
        table = self.query_one("#lore-table", DataTable)
        row = table.cursor_row
        table.clear()
        for e in self.book.entries():
            table.add_row(
                clip(e.name, 18), clip(", ".join(e.keys), 18), str(e.priority),
                "yes" if e.always else "", clip(e.text, 24), key=str(e.id),
            )  # fmt: skip
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        else:
            self.say("no entries yet: a adds one")

    def say(self, text: str, *, error: bool = False) -> None:
        self.query_one("#lore-message", Label).update(
            f"[red]{escape(text)}[/]" if error else escape(text)
        )

    def selected(self) -> LoreEntry | None:
        entries = self.book.entries()
        row = self.query_one("#lore-table", DataTable).cursor_row
        return entries[row] if 0 <= row < len(entries) else None

    @on(DataTable.RowSelected)
    def _row_chosen(self) -> None:  # enter on a row
        self.action_edit()

    def action_add(self) -> None:
        self.app.push_screen(LoreForm(self.book), self._stored("added"))

    def action_edit(self) -> None:
        entry = self.selected()
        if entry is None:
            self.say("no entry to edit: a adds one", error=True)
            return
        self.app.push_screen(LoreForm(self.book, entry), self._stored(f"{entry.name} edited"))

    def _stored(self, done: str) -> Callable[[bool | None], None]:
        def after(stored: bool | None) -> None:
            self.fill()
            self.say(done if stored else "nothing changed")

        return after

    def action_remove(self) -> None:
        entry = self.selected()
        if entry is None:
            self.say("no entry to remove", error=True)
            return
        self._act(lambda: self.book.remove(entry.id), f"{entry.name} removed (u brings it back)")

    def action_undo(self) -> None:
        history = self.book.history()
        if not history:
            self.say("no changes to undo", error=True)
            return
        last = history[-1]
        done = f"undone: the {last.action} of entry {last.entry_id}"
        self._act(lambda: self.book.undo(last.id), done)

    def _act(self, do: Callable[[], object], done: str) -> None:
        refused = _attempt(do)
        self.fill()
        self.say(refused or done, error=refused is not None)

    def action_back(self) -> None:
        self.dismiss(None)


def _attempt(do: Callable[[], object]) -> str | None:
    """Run ``do``; None, or what the error it raised says (a bug is raised)."""
    try:
        do()
    except Exception as exc:  # the same boundary as the command line's
        error = as_memora_error(exc)
        if error is None:
            raise
        return f"{type(error).__name__}: {error}"
    return None

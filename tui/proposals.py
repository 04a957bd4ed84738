"""The story bible's proposals, one at a time: each proposed lorebook change (add or update,
the name, the text) to accept (y) or reject (n). The screen returns the accepted ones, which
the app applies (:meth:`~memora.recurrent.engine.StoryEngine.apply_lore`); esc drops them all."""

from __future__ import annotations

from typing import ClassVar

from memora.tui.view import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from memora.recurrent.bible import LoreChange

__all__ = ["ProposalsScreen", "describe"]


def describe(change: LoreChange) -> str:
    """One change as markup: what it does, to which entry, and its text."""
    what = "add a new entry" if change.action == "add" else "add to the entry"
    keys = f"\n[dim]keys:[/] {escape(', '.join(change.keys))}" if change.keys else ""
    return f"[b]{what}[/] [b]{escape(change.name)}[/]{keys}\n\n{escape(change.text)}"


class ProposalsScreen(ModalScreen[list[LoreChange] | None]):
    """Each change in turn: y accepts it, n rejects it; after the last, the accepted ones are
    returned. Esc returns None (none applied)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "decide(True)", "Accept"),
        Binding("n", "decide(False)", "Reject"),
        Binding("escape", "drop", "Drop all"),
    ]
    DEFAULT_CSS = """
    ProposalsScreen { align: center middle; }
    #proposals { width: 70; height: auto; max-height: 20; border: thick $primary; padding: 0 1; }
    #proposal { height: auto; margin: 1 0; }
    #proposal-keys { color: $text-muted; }
    """

    def __init__(self, changes: list[LoreChange]) -> None:
        super().__init__()
        self.changes = changes
        self.at = 0
        self.accepted: list[LoreChange] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="proposals") as box:
            box.border_title = "The story bible proposes"
            yield Label("", id="proposal-count")
            yield Static("", id="proposal")
            yield Label("y accept · n reject · esc drop them all", id="proposal-keys")

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        change = self.changes[self.at]
        self.query_one("#proposal-count", Label).update(
            f"change {self.at + 1} of {len(self.changes)} · {len(self.accepted)} accepted"
        )
        self.query_one("#proposal", Static).update(describe(change))

    def action_decide(self, accept: bool) -> None:
        if accept:
            self.accepted.append(self.changes[self.at])
        self.at += 1
        if self.at == len(self.changes):
            self.dismiss(self.accepted)
        else:
            self.show()

    def action_drop(self) -> None:
        self.dismiss(None)

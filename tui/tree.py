"""The story's branch tree: every step of every branch, to continue from one or rewrite it.

Undo and branching keep old steps as side branches, so the steps of a story form a forest by
``parent_id``. A literal tree would indent a 40-step story by 40 levels, so the screen draws
*lines* of paragraphs instead: a step and its continuation sit at the same level, one under
the other, and the other children of a step (its side branches) hang under it, each a line of
its own whose first step is marked ``↳``. The continuation of a step is its child on the
current path (root → head), else its latest child. ``↳`` at the top level is another opening.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar, Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static, Tree
from textual.widgets.tree import TreeNode

from memora.recurrent.storyfile import StoryFile
from memora.recurrent.types import Step

__all__ = ["BRANCH_MARK", "HEAD_MARK", "BranchScreen", "TreeChoice"]

BRANCH_MARK = "↳"
"""Marks the first step of a side branch (or of another opening at the top level)."""
HEAD_MARK = "◀ head"
"""Ends the label of the head step."""
_GUIDE = 3  # cells of indentation per level
_WIDTH = 78  # of the modal, at most


@dataclass(frozen=True)
class TreeChoice:
    """What the writer picked: continue from a step (``switch``) or rewrite its paragraph."""

    action: Literal["switch", "rewrite"]
    step_id: int


class BranchScreen(ModalScreen[TreeChoice | None]):
    """All the steps of a story as a tree, a preview of the highlighted one, and a choice.

    Dismisses with ``TreeChoice("switch", id)`` on enter, ``TreeChoice("rewrite", id)`` on
    ``r``, and ``None`` on esc.
    """

    DEFAULT_CSS = """
    BranchScreen { align: center middle; }
    #branches { width: 78; max-width: 100%; height: 22; max-height: 100%;
        border: thick $primary; padding: 0 1; }
    #branch-tree { height: 1fr; overflow-x: hidden; scrollbar-size-vertical: 1; }
    #branch-preview-box { height: 8; border-top: solid $primary; scrollbar-size-vertical: 1; }
    #branch-hint { height: 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "choose('switch')", "Continue from here", priority=True),
        Binding("r", "choose('rewrite')", "Rewrite"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, file: StoryFile) -> None:
        super().__init__()
        self.steps: list[Step] = file.steps()
        self.head_id: int | None = file.head_id
        by_id = {s.id: s for s in self.steps}
        self.path_ids: set[int] = set()
        step_id = self.head_id
        while step_id is not None and step_id in by_id and step_id not in self.path_ids:
            self.path_ids.add(step_id)
            step_id = by_id[step_id].parent_id
        self.by_parent: dict[int | None, list[Step]] = defaultdict(list)
        for step in self.steps:  # ordered by id: oldest first
            self.by_parent[step.parent_id].append(step)
        self.tree_nodes: dict[int, TreeNode[Step]] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="branches"):
            tree: Tree[Step] = Tree("steps", id="branch-tree")
            tree.show_root = False
            tree.auto_expand = False
            tree.guide_depth = _GUIDE
            yield tree
            with VerticalScroll(id="branch-preview-box"):
                yield Static(id="branch-preview")
            yield Label(
                f"↑↓ move · enter continue from here · r rewrite · esc back · {BRANCH_MARK} branch",
                id="branch-hint",
            )

    def on_mount(self) -> None:
        self.query_one("#branches").border_title = "Story branches"
        tree = self.query_one("#branch-tree", Tree)
        width = min(_WIDTH, self.app.size.width) - 5  # border, padding, scrollbar
        for root in self.by_parent[None]:
            self._add_line(tree.root, root, 0, width, first=root is self.by_parent[None][0])
        tree.focus()
        if not self.steps:
            self._preview(None)
            return
        start = self.tree_nodes.get(self.head_id) if self.head_id is not None else None
        self.call_after_refresh(self._place_cursor, start or tree.root.children[0])

    def _place_cursor(self, node: TreeNode[Step]) -> None:
        """Put the cursor on ``node`` and scroll it into view (once the tree has a size)."""
        tree = self.query_one("#branch-tree", Tree)
        tree.move_cursor(node)
        self._preview(node.data)

    def _add_line(
        self, parent: TreeNode[Step], start: Step, level: int, width: int, *, first: bool
    ) -> None:
        """Add ``start`` and its continuations under ``parent``; side branches nest deeper."""
        step: Step | None = start
        while step is not None:
            mark = BRANCH_MARK if step is start and not first else ""
            label = self._label(step, mark, width - level * _GUIDE)
            node = parent.add(label, data=step, expand=True, allow_expand=False)
            self.tree_nodes[step.id] = node
            kids = self.by_parent.get(step.id, [])
            on_path = [k for k in kids if k.id in self.path_ids]
            follow = on_path[0] if on_path else (kids[-1] if kids else None)
            for kid in kids:
                if kid is not follow:
                    self._add_line(node, kid, level + 1, width, first=False)
            step = follow

    def _label(self, step: Step, mark: str, width: int) -> Text:
        """``#id [↳] paragraph… [◀ head]``, clipped to ``width`` cells."""
        current = step.id in self.path_ids
        head = f" {HEAD_MARK}" if step.id == self.head_id else ""
        prefix = f"#{step.id} " + (f"{mark} " if mark else "")
        body = Text(" ".join(step.paragraph.split()), style="bold" if current else "")
        body.truncate(max(width - len(prefix) - len(head), 8), overflow="ellipsis")
        return Text.assemble((prefix, "bold" if current else "dim"), body, (head, "bold reverse"))

    @on(Tree.NodeHighlighted, "#branch-tree")
    def highlighted(self, event: Tree.NodeHighlighted[Step]) -> None:
        """The cursor moved (keys or a click): show that step; a click never picks it."""
        self._preview(event.node.data)

    def _preview(self, step: Step | None) -> None:
        """Show the whole paragraph of ``step`` and the plan it followed."""
        preview = self.query_one("#branch-preview", Static)
        if step is None:
            preview.update(Text("(no paragraphs yet)", style="dim"))
            return
        how = "opening" if step.chosen_by == "opening" else f"plan, {step.chosen_by}"
        state = " (head)" if step.id == self.head_id else ""
        state = state or (" (on the path)" if step.id in self.path_ids else " (side branch)")
        preview.update(
            Text.assemble(
                (f"#{step.id}{state} ", "bold"),
                (f"{how}: ", "dim"),
                (step.plan or "—", "italic"),
                "\n",
                step.paragraph,
            )
        )
        self.query_one("#branch-preview-box", VerticalScroll).scroll_home(animate=False)

    def action_choose(self, action: Literal["switch", "rewrite"]) -> None:
        """Dismiss with the step under the cursor; nothing happens when there is none."""
        node = self.query_one("#branch-tree", Tree).cursor_node
        if node is not None and isinstance(node.data, Step):
            self.dismiss(TreeChoice(action, node.data.id))

    def action_back(self) -> None:
        """Close without a choice."""
        self.dismiss(None)

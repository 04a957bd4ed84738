"""The branch tree screen, mounted in a tiny host app over story files written directly."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from rich.text import Text

pytest.importorskip("textual")

from memora.tui.tree import BRANCH_MARK, HEAD_MARK, BranchScreen, TreeChoice
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from memora.recurrent import Premise
from memora.recurrent.storyfile import StoryFile
from memora.recurrent.types import Step

SIZE = (80, 24)
PARAGRAPH = (
    "Mara climbed the spiral stairs of the lighthouse at dusk, as she had every evening for "
    "eleven years. The lamp [hummed]. On the rocks below, something glinted in the last light: "
    "a green bottle, corked and sealed with wax, lodged between two stones where the tide had "
    "left it."
)
# (parent index or None, first word): step n+1 is the n-th entry
BRANCHING = [(None, "One"), (1, "Two"), (2, "Three"), (2, "Four")]  # head: 4
FOREST = [*BRANCHING, (3, "Five"), (3, "Six"), (None, "Seven"), (7, "Eight"), (6, "Nine")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _story(path: Path, spec: list[tuple[int | None, str]], head: int | None) -> StoryFile:
    """Steps written straight into a story file: ``spec`` gives each step's parent id."""
    file = StoryFile(path)
    file.init(Premise("A keeper finds a bottle.", title="The Bottle"), "tree")
    for parent, word in spec:
        depth = 1 if parent is None else file.step(parent).depth + 1
        file.add_step(Step(
            id=0, parent_id=parent, depth=depth, plan=f"The {word.lower()} plan.",
            chosen_by="opening" if parent is None else "person",
            paragraph=f"{word}. {PARAGRAPH}", memory="m", plans=("a", "b", "c"),
        ))  # fmt: skip
    file.set_head(head)
    return file


class Host(App[None]):
    """Pushes the screen at once and keeps what it was dismissed with."""

    def __init__(self, file: StoryFile) -> None:
        super().__init__()
        self.file = file
        self.results: list[TreeChoice | None] = []

    def on_mount(self) -> None:
        self.push_screen(BranchScreen(self.file), self.results.append)


def _tree(app: Host) -> Tree[Step]:
    return app.screen.query_one("#branch-tree", Tree)


def _preview(app: Host) -> str:
    return str(app.screen.query_one("#branch-preview", Static).content)


def _cursor_id(app: Host) -> int | None:
    node = _tree(app).cursor_node
    return None if node is None or node.data is None else node.data.id


def _label_id(node: TreeNode[Step]) -> int:
    match = re.match(r"#(\d+) ", str(node.label))
    assert match, node.label
    return int(match.group(1))


def _drawn_parents(tree: Tree[Step]) -> dict[int, int | None]:
    """The parent of every step as the tree shows it: a node continues the one above it at
    its level, unless it is the first there or marked as a branch start, when it hangs from
    the node it is nested under (from nothing at the top level)."""
    parents: dict[int, int | None] = {}

    def walk(node: TreeNode[Step], owner: int | None) -> None:
        above: int | None = None
        for child in node.children:
            step_id = _label_id(child)
            assert child.data is not None and child.data.id == step_id
            starts = above is None or str(child.label).startswith(f"#{step_id} {BRANCH_MARK}")
            assert step_id not in parents, f"#{step_id} drawn twice"
            parents[step_id] = owner if starts else above
            walk(child, step_id)
            above = step_id

    walk(tree.root, None)
    return parents


@pytest.mark.anyio
@pytest.mark.parametrize(("spec", "head"), [(BRANCHING, 4), (FOREST, 9), (FOREST, None)])
async def test_every_step_appears_once_with_its_parent(
    tmp_path: Path, spec: list[tuple[int | None, str]], head: int | None
) -> None:
    file = _story(tmp_path / "s.db", spec, head)
    app = Host(file)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tree = _tree(app)
        lines = [tree.get_node_at_line(i) for i in range(tree.last_line + 1)]
        drawn = Counter(_label_id(n) for n in lines if n is not None)
        assert drawn == Counter(s.id for s in file.steps())  # every step once, all expanded
        assert _drawn_parents(tree) == {s.id: s.parent_id for s in file.steps()}
        path = {s.id for s in file.path_to(head)}
        for node in lines:
            assert node is not None and node.data is not None
            label = node.label
            assert isinstance(label, Text)
            assert (HEAD_MARK in str(label)) == (node.data.id == head)
            bold = any("bold" in str(span.style) for span in label.spans)
            assert bold == (node.data.id in path), str(label)
    file.close()


@pytest.mark.anyio
async def test_cursor_starts_on_the_head_and_moves_the_preview(tmp_path: Path) -> None:
    file = _story(tmp_path / "s.db", BRANCHING, 4)
    app = Host(file)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, BranchScreen)
        assert _cursor_id(app) == 4
        assert f"Four. {PARAGRAPH}" in _preview(app)  # whole, with its brackets
        assert "The four plan." in _preview(app)
        await pilot.press("up")
        assert _cursor_id(app) == 3 and f"Three. {PARAGRAPH}" in _preview(app)
        await pilot.press("up")
        assert _cursor_id(app) == 2 and "Two. " in _preview(app)
        await pilot.press("down", "down")
        assert _cursor_id(app) == 4 and "Four. " in _preview(app)
        await pilot.click("#branch-tree", offset=(4, 0))  # a click highlights, never picks
        await pilot.pause()
        assert _cursor_id(app) == 1 and "One. " in _preview(app)
        assert isinstance(app.screen, BranchScreen) and app.results == []
    file.close()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("keys", "result"),
    [
        (("up", "enter"), TreeChoice("switch", 3)),
        (("enter",), TreeChoice("switch", 4)),
        (("up", "up", "r"), TreeChoice("rewrite", 2)),
        (("up", "escape"), None),
    ],
)
async def test_keys_dismiss_with_the_choice(
    tmp_path: Path, keys: tuple[str, ...], result: TreeChoice | None
) -> None:
    file = _story(tmp_path / "s.db", BRANCHING, 4)
    app = Host(file)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()
        assert app.results == [result]
        assert not isinstance(app.screen, BranchScreen)
    file.close()


@pytest.mark.anyio
async def test_an_empty_story_picks_nothing(tmp_path: Path) -> None:
    file = _story(tmp_path / "s.db", [], None)
    app = Host(file)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "(no paragraphs yet)" in _preview(app)
        await pilot.press("enter", "r", "up", "enter")
        await pilot.pause()
        assert isinstance(app.screen, BranchScreen) and app.results == []
        await pilot.press("escape")
        await pilot.pause()
        assert app.results == [None] and not isinstance(app.screen, BranchScreen)
    file.close()


@pytest.mark.anyio
async def test_a_deep_story_scrolls_to_the_head(tmp_path: Path) -> None:
    spec: list[tuple[int | None, str]] = [(None, "S1"), *((n, f"S{n + 1}") for n in range(1, 40))]
    file = _story(tmp_path / "s.db", spec, 40)
    app = Host(file)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tree = _tree(app)
        assert _cursor_id(app) == 40 and tree.cursor_line == 39
        top = tree.scroll_offset.y
        assert top > 0 and top <= tree.cursor_line < top + tree.scrollable_content_region.height
        assert tree.virtual_size.width <= tree.scrollable_content_region.width  # all clipped
        await pilot.press("up")
        assert _cursor_id(app) == 39 and "S39. " in _preview(app)
    file.close()


def test_branch_tree_snapshot(tmp_path: Path, snap_compare: object) -> None:
    file = _story(tmp_path / "s.db", BRANCHING, 4)

    async def settled(pilot: Pilot[None]) -> None:
        await pilot.pause()

    assert snap_compare(Host(file), terminal_size=SIZE, run_before=settled)  # type: ignore[operator]
    file.close()

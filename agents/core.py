"""Core memory: a few named blocks of pinned text (Letta-style) that go into every prompt, each
with a size limit, editable by the user and by the agent (as tools)."""

from __future__ import annotations

from collections.abc import Mapping

from memora import templates
from memora.errors import CoreMemoryError
from memora.memory.types import Scope

from .journal import Journal

__all__ = ["DEFAULT_BLOCKS", "CoreMemory"]

#: Blocks every agent starts with: label -> size limit in characters.
DEFAULT_BLOCKS: Mapping[str, int] = {"persona": 600, "human": 600}


class CoreMemory:
    """The core blocks of one user and agent; edits are saved at once, in the store's file."""

    def __init__(self, journal: Journal, scope: Scope, blocks: Mapping[str, int]) -> None:
        self.journal = journal
        self.scope = scope
        existing = journal.core_blocks(scope)
        for label, limit in blocks.items():
            _check_label(label)
            if limit < 1:
                raise CoreMemoryError(f"block {label!r}: the size limit must be >= 1 character")
            if label not in existing:
                journal.set_core(scope, label, "", limit)

    def blocks(self) -> dict[str, str]:
        """Every block's text, in creation order."""
        return {label: value for label, (value, _) in self.journal.core_blocks(self.scope).items()}

    def limit(self, label: str) -> int:
        return self._block(label)[1]

    def get(self, label: str) -> str:
        return self._block(label)[0]

    def set(self, label: str, text: str) -> None:
        """Replace a block's text."""
        limit = self._block(label)[1]
        text = text.strip()
        if len(text) > limit:
            raise CoreMemoryError(
                f"block {label!r} holds at most {limit} characters; the new text has {len(text)}. "
                "Shorten it, move details to the memory store (agent.remember), or raise the "
                "block's limit (add_block)"
            )
        self.journal.set_core(self.scope, label, text, limit)

    def append(self, label: str, text: str) -> None:
        """Add a line to a block."""
        old = self.get(label)
        self.set(label, f"{old}\n{text.strip()}" if old else text)

    def replace(self, label: str, old: str, new: str) -> None:
        """Replace the exact text ``old`` in a block with ``new``."""
        value = self.get(label)
        if not old or old not in value:
            raise CoreMemoryError(
                f"block {label!r} does not contain {old!r}; copy the exact text to replace "
                "from the block"
            )
        self.set(label, value.replace(old, new, 1))

    def add_block(self, label: str, limit: int, text: str = "") -> None:
        """Create a block (or change an existing block's limit, keeping its text)."""
        _check_label(label)
        current = self.journal.core_blocks(self.scope).get(label, ("", limit))[0]
        if len(current) > limit:
            raise CoreMemoryError(
                f"block {label!r} already holds {len(current)} characters, more than {limit}"
            )
        self.journal.set_core(self.scope, label, current, limit)
        if text:
            self.set(label, text)

    def render(self) -> str:
        """The blocks as prompt text (empty blocks left out)."""
        return "\n".join(
            templates.render("memora.agents", "core_block", label=label, value=value)
            for label, value in self.blocks().items()
            if value
        )

    def _block(self, label: str) -> tuple[str, int]:
        blocks = self.journal.core_blocks(self.scope)
        if label not in blocks:
            raise CoreMemoryError(
                f"there is no core block {label!r}; blocks: {', '.join(blocks) or '(none)'}. "
                "Create it with add_block(label, limit)"
            )
        return blocks[label]


def _check_label(label: str) -> None:
    if not label.isidentifier():
        raise CoreMemoryError(f"block label {label!r}: use letters, digits and _ (e.g. 'human')")

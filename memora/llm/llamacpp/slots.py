"""KV cache slots: named sequences of a unified KV cache that keep their prompt across calls.

Every plain or chat call runs in a slot (``cache_slot=`` in the sampling options; calls that
name none share ``"default"``). A slot is one KV sequence holding the tokens its last call
evaluated and generated; a call evaluates only what follows the longest prefix it shares with
*any* slot: the shared cells are given to its own sequence (``llama_memory_seq_cp``, metadata
only in a unified cache), so a summary call that starts like the writer's prompt reuses it, and
alternating roles (writer, planner, chooser) no longer evict each other's prefix.

:class:`SlotTable` keeps the bookkeeping (which slot holds which tokens, least recently used
first); :class:`SlotCache` moves the cells of one context to match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from memora.llm.llamacpp.native import NativeContext

__all__ = ["DEFAULT_SLOT", "DEFAULT_SLOTS", "Slot", "SlotCache", "SlotTable", "common_prefix"]

DEFAULT_SLOT = "default"
#: Slots of a model made with ``reuse_prefix=True``.
DEFAULT_SLOTS = 4


@dataclass
class Slot:
    """One KV sequence: ``tokens`` are the tokens whose cells it holds, positions 0.."""

    seq: int
    name: str | None = None
    tokens: list[int] = field(default_factory=list)
    used: int = 0  # when it was last used (a counter)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    same = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        same += 1
    return same


class SlotTable:
    """``n`` slots on sequences ``0..n-1``, given to names on first use; when every slot is
    taken, the least recently used one goes to the new name (its cells must be dropped)."""

    def __init__(self, n: int) -> None:
        self.slots = [Slot(seq) for seq in range(n)]
        self._clock = 0

    def __len__(self) -> int:
        return len(self.slots)

    def acquire(self, name: str) -> tuple[Slot, bool]:
        """The slot of ``name`` (marked used) and whether it was taken from another name (the
        caller drops its cells)."""
        self._clock += 1
        for slot in self.slots:
            if slot.name == name:
                slot.used = self._clock
                return slot, False
        slot = min(self.slots, key=lambda s: (s.name is not None, s.used))
        stolen = slot.name is not None or bool(slot.tokens)
        slot.name, slot.tokens, slot.used = name, [], self._clock
        return slot, stolen

    def best_source(self, tokens: Sequence[int], slot: Slot) -> tuple[Slot, int]:
        """The slot sharing the longest prefix with ``tokens`` (``slot`` itself on ties)."""
        best, length = slot, common_prefix(slot.tokens, tokens)
        for other in self.slots:
            if other is not slot:
                shared = common_prefix(other.tokens, tokens)
                if shared > length:
                    best, length = other, shared
        return best, length

    def evictable(self, keep: Slot | None) -> Slot | None:
        """The least recently used slot holding cells, other than ``keep``."""
        held = [s for s in self.slots if s is not keep and s.tokens]
        return min(held, key=lambda s: s.used) if held else None

    def forget(self) -> None:
        """Every slot empty (after the cache was cleared); names stay."""
        for slot in self.slots:
            slot.tokens = []

    @property
    def cells(self) -> int:
        """Tokens held over all slots (cells shared between slots count once per slot)."""
        return sum(len(s.tokens) for s in self.slots)


class SlotCache:
    """The slots of one llama.cpp context: :class:`SlotTable` and the cell moves that keep the
    context's sequences ``0..n-1`` equal to it."""

    def __init__(self, context: NativeContext, n: int) -> None:
        self.context = context  # replaced when the context is rebuilt (then :meth:`forget`)
        self.table = SlotTable(n)
        self.active: Slot | None = None  # the slot of the call running now

    def __len__(self) -> int:
        return len(self.table)

    def take(self, name: str | None) -> Slot:
        """The slot of ``name`` (None: the default slot), emptied when it was another's."""
        slot, stolen = self.table.acquire(name or DEFAULT_SLOT)
        if stolen:
            self.context.remove(slot.seq, 0, -1)
        return slot

    def reuse(self, slot: Slot, tokens: Sequence[int]) -> int:
        """Give ``slot`` the longest prefix of ``tokens`` that any slot holds; returns how many
        of its cells to keep (at least one token is always evaluated again, for fresh
        logits)."""
        source, shared = self.table.best_source(tokens, slot)
        keep = min(shared, len(tokens) - 1)
        if source is not slot:
            self.context.remove(slot.seq, 0, -1)
            if keep:
                self.context.copy(source.seq, slot.seq, 0, keep)
            slot.tokens = list(tokens[:keep])
        return keep

    def truncate(self, slot: Slot, keep: int) -> None:
        """Drop ``slot``'s cells from position ``keep`` on (also those of a stopped decode)."""
        self.context.remove(slot.seq, keep, -1)
        del slot.tokens[keep:]

    def make_room(self) -> bool:
        """Drop the least recently used slot other than the running call's (False: none)."""
        victim = self.table.evictable(self.active)
        if victim is None:
            return False
        self.context.remove(victim.seq, 0, -1)
        victim.tokens = []
        return True

    def drop(self, seqs: range) -> None:
        """Empty sequences ``seqs`` (not slots: those of a :meth:`sequences` block)."""
        for seq in seqs:
            self.context.remove(seq, 0, -1)

    def clear(self) -> None:
        """Forget every cell of the context."""
        self.context.clear()
        self.table.forget()

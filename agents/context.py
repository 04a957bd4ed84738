"""A turn's context: the memories retrieved for the message, and the prompt assembled from them
within a token budget.

Retrieval: hybrid search (optionally the neural memory's expansion), then optionally a
reranker, then one hit per distinct text. The prompt: the system text, today's date and core
blocks first; this session's recent turns; then the memories as quoted notes, each with the day
it happened, in the last user message, right before the message itself (small models read
notes there and mostly ignore them in the system text: measured in bench/agent_memory.py).
Every piece of prompt text is a template of ``agents/prompts/``; user text goes in as values,
never scanned for placeholders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from memora import templates
from memora.errors import ContextOverflowError
from memora.llm.base import LLM
from memora.memory.store import MemoryStore
from memora.memory.types import Scope, SearchHit, normalize_text

from .abstain import abstains
from .config import AgentConfig
from .core import CoreMemory
from .journal import Journal, Turn

__all__ = ["Fitted", "TurnContext", "day", "today"]

PACKAGE = "memora.agents"


@dataclass(frozen=True)
class Fitted:
    """A turn's prompt fitted to the budget: its messages, their tokens and the memories it
    kept."""

    messages: list[dict[str, str]]
    tokens: int
    hits: list[SearchHit]


class TurnContext:
    """Retrieval and prompt assembly for the turns of one user, agent and session (``scope``).

    ``budget``: prompt + answer tokens (``config.context_budget``, else the model's context).
    """

    def __init__(
        self,
        llm: LLM,
        store: MemoryStore,
        journal: Journal,
        core: CoreMemory,
        scope: Scope,
        config: AgentConfig,
    ) -> None:
        self.llm = llm
        self.store = store
        self.journal = journal
        self.core = core
        self.scope = scope
        self.memory_scope = Scope(user_id=scope.user_id, agent_id=scope.agent_id)
        self.config = config
        self.budget = config.context_budget or llm.n_ctx

    def recall(
        self, query: str, k: int | None = None, *, now: float | None = None
    ) -> list[SearchHit]:
        """The memories for ``query``: this user's facts and past messages, best first.
        ``now``: when it is asked (default: the clock), for the times it names ("last
        week")."""
        config = self.config
        k = k or config.k
        hits = self.store.search(
            query, self.memory_scope, k=max(config.candidates, k), mode=config.mode,
            neural_weight=config.neural_weight, now=now, neighbours=config.neighbours,
        )  # fmt: skip
        if config.reranker is not None and len(hits) > 1:
            from memora.rank.types import Doc

            docs = [Doc(id=str(i), text=h.record.text) for i, h in enumerate(hits)]
            order = config.reranker.rank(query, docs).ids  # a model serializes its own calls
            hits = [hits[int(i)] for i in order]
        unique: list[SearchHit] = []
        seen: set[str] = set()
        for hit in hits:  # a fact can repeat a message word for word: show it once
            key = normalize_text(hit.record.text)
            if key not in seen and len(unique) < k:
                seen.add(key)
                unique.append(hit)
        if not config.neighbours:
            return unique
        around = [
            h
            for hit in unique
            for h in (
                hit,
                *(  # the turns around, after it
                    SearchHit(record=r, score=hit.score, similarity=None) for r in hit.context
                ),
            )
        ]
        return list({h.record.id: h for h in around}.values())  # fmt: skip

    def abstains(self, message: str, hits: list[SearchHit], *, now: float | None = None) -> bool:
        """Whether ``message`` is a question about the user's past that nothing in reach
        answers (:func:`~memora.agents.abstain.abstains`): then the agent says so instead of
        asking the model."""
        config = self.config
        if not config.abstain:
            return False

        def others() -> list[str]:
            turns = self.journal.turns(self.scope, session=True, last=config.recent_turns)
            core = [line for value in self.core.blocks().values() for line in value.splitlines()]
            return core + [t.user_text for t in turns] if config.recent_turns else core

        return abstains(message, hits, config.abstain_below, others, self.store.embed, now)

    def fit(self, message: str, hits: list[SearchHit], *, now: float | None = None) -> Fitted:
        """The messages for one turn, fitted to the token budget: the oldest turns go first,
        then the lowest-ranked memories; never the system text, core blocks or message.
        ``now``: the time of the turn, stated as today's date (None: no date stated)."""
        max_tokens = self.config.max_tokens
        turns = self.journal.turns(self.scope, session=True, last=self.config.recent_turns)
        kept_hits = list(hits)
        budget = self.budget - max_tokens
        while True:
            messages = self.messages(message, kept_hits, turns, now=now)
            tokens = self.llm.count_tokens(messages)
            if tokens <= budget:
                return Fitted(messages, tokens, kept_hits)
            if turns:
                turns = turns[1:]
            elif kept_hits:
                kept_hits = kept_hits[:-1]
            else:
                raise ContextOverflowError(
                    f"the system text, core memory and message alone take more than "
                    f"{budget} tokens (context budget {self.budget} minus max_tokens "
                    f"{max_tokens}). Shorten the message or the core blocks, lower "
                    "max_tokens, or use a model with a larger context",
                    prompt_tokens=tokens,
                    max_tokens=max_tokens,
                    n_ctx=self.budget,
                )

    def messages(
        self, message: str, hits: list[SearchHit], turns: list[Turn], *, now: float | None = None
    ) -> list[dict[str, str]]:
        """The prompt of one turn, unfitted: system text, today's date (when ``now`` is given)
        and core blocks, ``turns``, then ``hits`` as notes before ``message``."""
        system = self.config.system
        if now is not None:
            system = templates.render(PACKAGE, "system_with_today", system=system,
                                      today=today(now))  # fmt: skip
        core = self.core.render()
        if core:
            system = templates.render(PACKAGE, "system_with_core", system=system, core=core)
        messages = [{"role": "system", "content": system}]
        for turn in turns:
            messages.append({"role": "user", "content": turn.user_text})
            messages.append({"role": "assistant", "content": turn.reply_text})
        if hits:
            message = templates.render(PACKAGE, "notes", notes=notes(hits), message=message)
        messages.append({"role": "user", "content": message})
        return messages


def notes(hits: list[SearchHit]) -> str:
    """The memories as quoted data, one line each with the day it happened, oldest first
    (the same text for every order of ``hits``)."""
    ordered = sorted(hits, key=lambda h: (h.record.when, h.record.created_at, h.record.id))
    return "\n".join(
        templates.render(PACKAGE, "note", day=day(h.record.when), text=json.dumps(h.record.text))
        for h in ordered
    )


def day(timestamp: float) -> str:
    """The UTC day of ``timestamp`` as the prompt shows it: ``2024-03-03`` (the calendar the
    store resolves "last week" in)."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")


def today(timestamp: float) -> str:
    """The day of ``timestamp`` with its weekday: ``2024-03-03 (Sunday)``."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d (%A)")

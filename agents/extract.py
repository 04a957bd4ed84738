"""Fact extraction: one JSON-schema-constrained call per turn that returns facts, each with an
action against the nearest existing memories (add, update naming the id, or nothing).

Small local models are the reason for the shape of this: the existing memories get short ids
(``m1``...) that the schema allows by enum, every fact is checked, a refused answer is retried
with the reason, and a turn whose answer stays unusable raises :class:`ExtractionError` (the
caller keeps the turn, marked failed): nothing is dropped in silence.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from memora import templates
from memora.errors import ExtractionError, OutputValidationError
from memora.llm.base import LLM
from memora.llm.structured import repair_messages
from memora.memory import grounding
from memora.memory.types import MemoryRecord, normalize_text

__all__ = ["Action", "Extraction", "Extractor", "Proposal", "extraction_schema", "grounded"]

MAX_FACTS = 3
MAX_FACT_CHARS = 120

PACKAGE = "memora.agents"

#: The extraction prompt's system text (``agents/prompts/extract_system.txt``).
SYSTEM: str = templates.template(PACKAGE, "extract_system")


@dataclass(frozen=True)
class Action:
    """One fact of a turn: ``kind`` add / update / none (already known), or rejected (not
    grounded in what the user said; kept here, not stored), with the record it wrote or
    matched."""

    kind: Literal["add", "update", "none", "rejected"]
    text: str
    record_id: str | None = None
    old_text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "record_id": self.record_id,
            "old_text": self.old_text,
        }


@dataclass(frozen=True)
class Extraction:
    """What one turn's extraction did."""

    turn_id: int
    actions: list[Action] = field(default_factory=list)
    attempts: int = 1

    @property
    def added(self) -> list[Action]:
        return [a for a in self.actions if a.kind == "add"]

    @property
    def updated(self) -> list[Action]:
        return [a for a in self.actions if a.kind == "update"]


def extraction_schema(ids: list[str]) -> dict[str, Any]:
    """The answer's JSON schema: the fact's text first, then its action; ``update`` and
    ``none`` exist only when there are memories (``ids``) to name."""
    fact: dict[str, Any] = {
        "text": {"type": "string", "minLength": 3, "maxLength": MAX_FACT_CHARS},
        "action": {"type": "string", "enum": ["add", "update", "none"] if ids else ["add"]},
    }
    if ids:
        fact["id"] = {"type": "string", "enum": [*ids, ""]}
    return {
        "type": "object",
        "properties": {
            "facts": {
                "type": "array",
                "maxItems": MAX_FACTS,
                "items": {
                    "type": "object",
                    "properties": fact,
                    "required": list(fact),
                    "additionalProperties": False,
                },
            }
        },
        "required": ["facts"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class Proposal:
    """One checked fact of the model's answer, before it is applied: its action and the
    existing memory it names (``target``)."""

    action: Literal["add", "update", "none", "rejected"]
    text: str
    target: MemoryRecord | None


class Extractor:
    """Turns a conversation turn into checked fact proposals.

    Args:
        llm: the model that extracts (JSON-schema output).
        max_retries: repair attempts after a refused answer.
        max_tokens: the answer's token cap.
    """

    def __init__(self, llm: LLM, *, max_retries: int = 2, max_tokens: int = 256) -> None:
        self.llm = llm
        self.max_retries = max_retries
        self.max_tokens = max_tokens

    def messages(self, user: str, nearest: list[MemoryRecord]) -> list[dict[str, str]]:
        """The extraction prompt. The assistant's reply is left out on purpose: small models
        copy it into facts (measured with SmolLM2-135M), and facts about the user come from
        what the user says."""
        wording = templates.data(PACKAGE, "extract")
        known = "\n".join(
            templates.render(PACKAGE, "extract_memory", id=f"m{i}", text=json.dumps(r.text))
            for i, r in enumerate(nearest, 1)
        )
        turn = templates.render(
            PACKAGE, "extract_turn", memories=known or wording["no_memories"],
            user=json.dumps(user),
            answer_format=wording["answer_format_with_ids" if nearest else "answer_format"],
        )  # fmt: skip
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": turn}]

    def propose(
        self, turn_id: int, user: str, nearest: list[MemoryRecord]
    ) -> tuple[list[Proposal], int]:
        """The checked proposals and the number of attempts; raises ExtractionError."""
        ids = [f"m{i}" for i in range(1, len(nearest) + 1)]
        schema = extraction_schema(ids)
        base = self.messages(user, nearest)
        messages = list(base)
        outputs: list[str] = []
        errors: list[str] = []
        for attempt in range(self.max_retries + 1):
            try:
                done = self.llm.complete_json(
                    messages, schema, retries=0, max_tokens=self.max_tokens, temperature=0.0,
                    seed=attempt,
                )  # fmt: skip
                text, data = done.completions[-1].text, done.data
                problem = ""
            except OutputValidationError as exc:
                text, data, problem = exc.outputs[-1], None, exc.errors[-1]
            outputs.append(text)
            if data is not None:
                proposals, problem = _check(data, nearest, user)
                if not problem:
                    return proposals, attempt + 1
            errors.append(problem)
            messages = repair_messages(base, text, problem)
        raise ExtractionError(
            f"turn {turn_id}: the model gave no usable facts in {self.max_retries + 1} attempts "
            f"(last problem: {errors[-1]}). The turn is kept and marked failed; retry it with "
            "agent.retry_failed(), raise max_tokens, or use a stronger extraction model "
            "(MemoryAgent(extractor_llm=...))",
            turn_id=turn_id,
            outputs=outputs,
            errors=errors,
        )


def _check(
    data: dict[str, Any], nearest: list[MemoryRecord], user: str
) -> tuple[list[Proposal], str]:
    proposals: list[Proposal] = []
    seen: set[str] = set()
    for n, fact in enumerate(data["facts"], 1):
        text = " ".join(str(fact["text"]).split())
        action = fact["action"]
        if not text:
            return [], f"fact {n} has no text"
        key = normalize_text(text)
        if key in seen:
            continue  # the same fact twice in one answer: keep one
        seen.add(key)
        target = None
        ident = fact.get("id", "")
        if action == "update" and not ident:
            action = "add"  # an update of nothing named is new information
        elif action == "update":
            target = nearest[int(ident[1:]) - 1]
            if normalize_text(target.text) == key:
                action = "none"  # an update to the same text changes nothing
        elif action == "none" and ident:
            target = nearest[int(ident[1:]) - 1]
        if action == "none" and (target is None or not _near(key, normalize_text(target.text))):
            action = "add"  # "known already" of something not known: small models say it often
        if action == "add" and key in {normalize_text(r.text) for r in nearest}:
            action = "none"
        if action in ("add", "update") and (not grounded(text, user) or _repetitive(text)):
            action = "rejected"  # small models copy the instructions' example, or invent
        proposals.append(Proposal(action, text, target))
    return proposals, ""


#: Words that say nothing about what a fact is about (``agents/prompts/common_words.json``).
_COMMON: frozenset[str] = frozenset(templates.data(PACKAGE, "common_words"))


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _COMMON}


def grounded(fact: str, said: str) -> bool:
    """Whether two thirds of ``fact``'s content words come from what the user ``said``
    (five-letter prefix match, so "travelled" grounds "travels"): a fact copied from the
    assistant, or invented, is not (:func:`memora.memory.grounding.grounded` with the agent's
    common words)."""
    return grounding.grounded(fact, said, common=_COMMON)


def _near(a: str, b: str) -> bool:
    """Whether two normalized facts say nearly the same (most content words shared)."""
    wa, wb = _words(a), _words(b)
    return bool(wa) and len(wa & wb) * 4 >= len(wa | wb) * 3


def _repetitive(text: str) -> bool:
    """A fact that repeats a sentence, or runs over two sentences (a degenerate answer)."""
    sentences = [s.strip() for s in re.split(r"[.!?]+", text) if s.strip()]
    return len(sentences) > 2 or len(set(sentences)) < len(sentences)

"""When the agent says it does not know instead of asking the model: a question about the
user's own past (``"What is my sister called?"``, ``"When did we go to Rome?"``) that nothing
the agent holds is about (no recalled memory, core memory line or statement of this session
is at least ``abstain_below`` similar to it, and none recalled happened in the time the
question names: "What did I do last week?" reads like no memory, but one from last week
answers it). Facts are written about "the user" in the third person, which an embedder finds
unlike a question in the first person ("Where do I live?" and "The user lives in Lyon." are
0.24 similar with all-MiniLM-L6-v2): they are compared in the first person too ("I live in
Lyon.", 0.41). Small models answer such questions anyway, with something invented; a fixed
answer is the honest one. A general question (``"What is the capital of France?"``), an
advice question (``"What should I cook?"``) or a statement always goes to the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from memora.memory.types import SearchHit
from memora.memory.when import resolve_time

__all__ = ["ABSTAIN_TEXT", "abstains", "first_person", "only_a_question", "personal_question"]

#: The answer to a personal question that no memory answers (the model is not called).
ABSTAIN_TEXT = "I don't know — you haven't told me about that."

_WH_START = re.compile(
    r"^\W*(?:what|when|where|who|whom|whose|which|why|how)(?:'s|'re|'d|\s+(?:is|are|was|were|"
    r"am|do|does|did|have|has|had|will|would|can|could|should|many|much|long|old|often)\b)",
    re.IGNORECASE,
)
# What mentions the user without asking about their past: requests ("tell me"), advice
# ("should I", "how do I"), and the generic "we" of "why do we dream" or "our solar system".
_NOT_ABOUT_THE_PAST = re.compile(
    r"\b(?:tell|give|show|help|let|teach|explain\s+to)\s+me\b"
    r"|\b(?:can|could|should|shall|may|might|would|must)\s+(?:i|we)\b"
    r"|\b(?:how|why)\s+(?:do|does|am|is|are)\s+(?:i|we)\b"
    r"|\bour\s+(?:planet|world|universe|galaxy|solar|sun|moon|earth|bod(?:y|ies)|brains?|"
    r"species|ancestors|society|civili[sz]ation)\b",
    re.IGNORECASE,
)
_SELF = re.compile(r"\b(?:i|me|my|mine|myself|we|our|ours|ourselves)\b", re.IGNORECASE)
_USER = re.compile(r"\bthe user(?:'s\b|\s+(\w+)|\b)", re.IGNORECASE)
# "the user" after these is the subject of its clause ("I"); elsewhere an object ("me")
_SUBJECT_AFTER = re.compile(r"(?:^|[.;:,!?]|\b(?:and|but|or|so|that|when|because|while))\s*$",
                            re.IGNORECASE)  # fmt: skip
_FIRST_PERSON = {"is": "am", "has": "have", "was": "was", "does": "do", "goes": "go"}


def _sentences(text: str) -> list[str]:
    text = text.replace("\u2019", "'").strip()
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def personal_question(message: str) -> bool:
    """Whether ``message`` asks about the user's own past or memory: one of its sentences is
    a question (ends with "?", or starts with a wh-word and a verb) that refers to the user
    (I, me, my, we, our)."""
    for sentence in _sentences(message):
        asks = sentence.endswith("?") or _WH_START.match(sentence) is not None
        if asks and _SELF.search(_NOT_ABOUT_THE_PAST.sub(" ", sentence)):
            return True
    return False


def first_person(text: str) -> str:
    """A fact about "the user" as the user would say it: "The user's sister is Ana." → "my
    sister is Ana.", "The user lives in Lyon." → "I live in Lyon." (for similarity only)."""

    def said(match: re.Match[str]) -> str:
        word = match.group(1)
        if match.group(0).lower().endswith("'s"):
            return "my"
        if word is None or not _SUBJECT_AFTER.search(text, 0, match.start()):
            return "me" + match.group(0)[len("the user") :]
        low = word.lower()
        if low in _FIRST_PERSON:
            return "I " + _FIRST_PERSON[low]
        if low.endswith("ies") and len(low) > 4:
            return f"I {word[:-3]}y"  # studies → study
        if re.search(r"(?:ch|sh|ss|x|z|o)es$", low):
            return f"I {word[:-2]}"  # watches → watch
        return f"I {word[:-1]}" if low.endswith("s") and not low.endswith("ss") else f"I {word}"

    return _USER.sub(said, text)


def only_a_question(text: str) -> bool:
    """A message that is one question and nothing else (it states no fact)."""
    text = text.strip()
    return text.endswith("?") and not re.search(r"[.!?]\s", text[:-1])


def abstains(
    message: str,
    hits: Sequence[SearchHit],
    floor: float,
    others: Callable[[], list[str]],
    embed: Callable[[list[str]], np.ndarray],
    now: float | None = None,
) -> bool:
    """Whether to answer ``message`` with :data:`ABSTAIN_TEXT`: a personal question whose
    recalled ``hits`` all fall under ``floor`` (cosine similarity) and outside the time it
    names (relative to ``now``), and so do the ``others`` (more texts within the model's
    reach: core memory lines, this session's statements), all also compared in the first
    person (:func:`first_person`; embedded with ``embed`` only when it comes to that). A hit
    without a similarity (a lexical search) cannot be judged: the model answers."""
    if not personal_question(message):
        return False
    if any(h.similarity is None or h.similarity >= floor for h in hits):
        return False
    window = resolve_time(message, now) if hits else None
    if window is not None and any(window.start <= h.record.when < window.end for h in hits):
        return False
    texts = [first_person(h.record.text) for h in hits]
    texts = [t for t, h in zip(texts, hits, strict=True) if t != h.record.text]
    texts += [first_person(t) for t in others() if t.strip() and not only_a_question(t)]
    if not texts:
        return True
    vectors = embed([message, *texts])
    return bool(np.max(vectors[1:] @ vectors[0]) < floor)

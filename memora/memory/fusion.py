"""How a search turns its candidates into ranked hits: search keys collapsed onto their records,
one fused score per record from its dense similarity and full-text score, then the time,
recency and salience bonuses and the filters.

Fusions (:attr:`SearchOptions.fusion <memora.memory.search.SearchOptions.fusion>`):

- ``"score"`` (the default): ``w * d + (1 - w) * l``, where ``d`` is the record's cosine
  similarity min-max normalized over the candidates and ``l`` its full-text score divided by the
  best one; the similarity of every candidate is known (its vector is fetched), so a record
  found only by full text still gets its dense score, and a strong signal in one retriever is
  kept rather than averaged away by ranks.
- ``"rrf"``: reciprocal rank fusion, ``sum 1 / (60 + rank)`` (memora's default before); also
  used whenever ``neural_weight`` ranks the dense candidates by the neural blend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from memora.memory.options import SearchOptions
from memora.memory.types import MemoryRecord, SearchHit

if TYPE_CHECKING:
    from memora.memory.when import TimeWindow

__all__ = [
    "RRF_K",
    "Signals",
    "asks_latest",
    "bridge_names",
    "collapse",
    "content_terms",
    "fused",
    "interleave",
    "ranked_hits",
    "searched_words",
    "supersede",
]

RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = (
    "a an the i im i'm my me mine we our us you your he she his her they their them it its is "
    "are was were be been am do did does done what which who whom whose when where why how to "
    "of in on at for with and or but this that these those have has had from by about as into "
    "than then so not no now ever any some there here can could would should will just"
)
_STOP = frozenset(_STOPWORDS.split())


@dataclass
class Signals:
    """What the retrievers say about one record (the best over the record and its keys)."""

    record: MemoryRecord
    similarity: float | None = None
    lexical: float | None = None
    dense_rank: int | None = None
    lexical_rank: int | None = None
    via: str | None = None  # the search key that matched best (None: the record's own text)

    def merge(self, member: MemoryRecord, similarity: float | None, lexical: float | None,
              dense_rank: int | None, lexical_rank: int | None) -> None:  # fmt: skip
        """Take a member's signals where they are stronger."""
        if similarity is not None and (self.similarity is None or similarity > self.similarity):
            self.similarity = similarity
            self.via = member.text if member.key_of is not None else None
        if lexical is not None and (self.lexical is None or lexical > self.lexical):
            self.lexical = lexical
            if similarity is None:
                self.via = member.text if member.key_of is not None else None
        self.dense_rank = _least(self.dense_rank, dense_rank)
        self.lexical_rank = _least(self.lexical_rank, lexical_rank)


def _least(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def scored(lexical: Sequence[Any]) -> list[tuple[int, float]]:
    """Full-text results as (key, score); bare keys (ranked only) score ``1 / rank``."""
    return [(int(e[0]), float(e[1])) if isinstance(e, tuple) else (int(e), 1.0 / i)
            for i, e in enumerate(lexical, start=1)]  # fmt: skip


def collapse(
    found: Mapping[int, tuple[MemoryRecord, np.ndarray]], dense: Sequence[int],
    lexical: Sequence[tuple[int, float]], query: np.ndarray | None,
) -> dict[int, Signals]:  # fmt: skip
    """One :class:`Signals` per record (by its key), search keys merged onto their record; a
    key whose record is not among ``found`` (deleted, out of scope) is dropped."""
    owner = {record.id: key for key, (record, _) in found.items() if record.key_of is None}
    dense_rank = {key: i for i, key in enumerate(dense, start=1)}
    lexical_rank = {key: i for i, (key, _) in enumerate(lexical, start=1)}
    lexical_score = dict(lexical)
    out: dict[int, Signals] = {}
    for key, (record, vector) in found.items():
        target = key if record.key_of is None else owner.get(record.key_of)
        if target is None:
            continue
        if target not in out:
            out[target] = Signals(found[target][0])
        similarity = None if query is None else float(vector @ query)
        out[target].merge(record, similarity, lexical_score.get(key), dense_rank.get(key),
                          lexical_rank.get(key))  # fmt: skip
    return out


_SUFFIXES = ("ing", "ed", "es", "s")
_LATEST = re.compile(
    r"\b(now|currently|current|these days|nowadays|latest|most recent|any ?more|still)\b", re.I
)
_NAME = re.compile(r"(?<![.!?] )(?<!^)\b[A-Z][a-z]{2,}\b")
_CALENDAR = (
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May "
    "June July August September October November December The This That What Anyway"
)
_NOT_NAMES = frozenset(_CALENDAR.split())


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)][:6]
    return word[:6]


def searched_words(words: Sequence[str]) -> list[str]:
    """The words a full-text search looks for: the query's without stop words ("what", "did",
    "I" match nearly every record and only cost time), unless nothing else is left."""
    kept = [w for w in words if w.casefold() not in _STOP]
    return kept or list(words)


def content_terms(text: str) -> set[str]:
    """A text's content words, case-folded and crudely stemmed (a suffix off, 6 letters)."""
    return {_stem(w) for w in _WORD.findall(text.casefold()) if w not in _STOP and len(w) > 1}


def asks_latest(query: str) -> bool:
    """Whether a query asks for the current state of something ("now", "currently")."""
    return _LATEST.search(query) is not None


def supersede(hits: list[SearchHit], terms: Sequence[str], depth: int = 50) -> list[SearchHit]:
    """Later statements of the same thing first: among the first ``depth`` hits, those that
    share at least two of the query's content words with each other are one statement said
    again (a moved city, a new job); they keep the places they hold, newest in the first."""
    wanted = content_terms(" ".join(terms))
    held = [content_terms(h.record.text) & wanted for h in hits[:depth]]
    group = list(range(len(held)))
    for i in range(len(held)):
        for j in range(i):
            if len(held[i] & held[j]) >= 2:
                group[i] = group[j]
                break
    out = list(hits)
    for g in set(group):
        places = [i for i, x in enumerate(group) if x == g]
        newest = sorted((hits[i] for i in places), key=lambda h: (-h.record.when, h.record.id))
        for place, hit in zip(places, newest, strict=True):
            out[place] = hit
    return out


def bridge_names(hits: Sequence[SearchHit], query: str) -> list[str]:
    """Names (capitalized words inside a sentence) that the hits hold and the query does not:
    what a second hop searches for ("my cousin who is a pilot" -> "Dagny")."""
    asked = query.casefold()
    names: list[str] = []
    for hit in hits:
        for name in _NAME.findall(hit.record.text):
            if name not in _NOT_NAMES and name.casefold() not in asked and name not in names:
                names.append(name)
    return names


def interleave(first: Sequence[SearchHit], second: Sequence[SearchHit]) -> list[SearchHit]:
    """The two rankings taken in turns, each record once (prefix-stable when both are)."""
    seen: set[str] = set()
    out = []
    for pair in zip(first, second, strict=False):
        for hit in pair:
            if hit.record.id not in seen:
                seen.add(hit.record.id)
                out.append(hit)
    longer = first if len(first) > len(second) else second
    for hit in longer[min(len(first), len(second)) :]:
        if hit.record.id not in seen:
            seen.add(hit.record.id)
            out.append(hit)
    return out


def coverage(terms: Sequence[str], signals: Mapping[int, Signals]) -> float:
    """The share of the query's content words that the best full-text candidate holds (its
    text or the key it was found by): 1 when the words of the query are all in one record,
    low when the query paraphrases what is stored."""
    wanted = content_terms(" ".join(terms))
    if not wanted:
        return 0.0
    held = (content_terms(s.record.text + " " + (s.via or "")) & wanted
            for s in signals.values() if s.lexical is not None)  # fmt: skip
    return max((len(h) for h in held), default=0) / len(wanted)


def fused(signals: Mapping[int, Signals], options: SearchOptions,
          terms: Sequence[str] = ()) -> dict[int, float]:  # fmt: skip
    """The fused score of every record (see the module's docstring). With a neural blend the
    dense ranking is the blend's, so the fusion is by rank. ``terms``: the query's words; the
    full-text share shrinks with their :func:`coverage` (a paraphrase leans on dense)."""
    if options.fusion == "rrf" or options.neural_weight:
        return {key: sum(1.0 / (RRF_K + r) for r in (s.dense_rank, s.lexical_rank) if r)
                for key, s in signals.items()}  # fmt: skip
    sims = [s.similarity for s in signals.values() if s.similarity is not None]
    low, high = (min(sims), max(sims)) if sims else (0.0, 0.0)
    best = max((s.lexical for s in signals.values() if s.lexical is not None), default=0.0)
    weight = options.dense_weight if sims else 0.0
    if sims and terms and options.adaptive:
        weight = 1.0 - (1.0 - weight) * coverage(terms, signals)
    scores = {}
    for key, s in signals.items():
        d = 0.0 if s.similarity is None else (s.similarity - low) / (high - low or 1.0)
        lex = 0.0 if s.lexical is None or best <= 0 else s.lexical / best
        scores[key] = weight * d + (1.0 - weight) * lex
    return scores


def ranked_hits(
    signals: Mapping[int, Signals], options: SearchOptions, now: float,
    window: TimeWindow | None = None, terms: Sequence[str] = (),
) -> list[SearchHit]:  # fmt: skip
    """The hits, best first (all of them: the caller cuts): fused score plus the time, recency
    and salience bonuses; the filters applied; ties by similarity, then id."""
    scores = fused(signals, options, terms)
    hits = []
    for key, s in signals.items():
        record = s.record
        if options.min_score is not None and (s.similarity or 0.0) < options.min_score:
            continue
        if not _in_range(record.when, options.occurred_after, options.occurred_before):
            continue
        score = scores[key]
        if options.recency_weight:
            at = record.updated_at if record.occurred_at is None else record.occurred_at
            age_days = max(0.0, now - at) / 86_400
            score += options.recency_weight * 0.5 ** (age_days / options.recency_half_life_days)
        if window is not None and window.start <= record.when < window.end:
            score += options.time_weight
        score += options.salience_weight * record.salient
        hits.append(SearchHit(record=record, score=score, similarity=s.similarity,
                              dense_rank=s.dense_rank, lexical_rank=s.lexical_rank,
                              via=s.via))  # fmt: skip
    hits.sort(key=lambda h: (-h.score, -(h.similarity or 0.0), h.record.id))
    return hits


def _in_range(at: float, after: float | None, before: float | None) -> bool:
    return (after is None or at >= after) and (before is None or at < before)

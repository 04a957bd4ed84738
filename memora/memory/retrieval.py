"""The read side of :class:`~memora.memory.store.MemoryStore`: search (both retrievers, search
keys collapsed onto their records, the time the query asks about, neighbours) and the search
keys of records."""

from __future__ import annotations

import builtins
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Unpack

import numpy as np

from memora.errors import RecordNotFoundError
from memora.memory.contract import NewRecord
from memora.memory.fusion import (
    asks_latest,
    bridge_names,
    interleave,
    searched_words,
    supersede,
)
from memora.memory.rows import check_keys, new_record, read_scope
from memora.memory.search import (
    SearchOptions,
    Tier,
    fits,
    lexical_hits,
    query_words,
    second_stage,
    with_owners,
)
from memora.memory.transfer import StoreSide
from memora.memory.types import MemoryRecord, Scope, ScopeIds, SearchHit

__all__ = ["Retrieval"]

ScopeArg = Scope | Mapping[str, Any] | None


class Retrieval(StoreSide):
    """Search and search keys, mixed into :class:`~memora.memory.store.MemoryStore` (which
    provides what is declared here and in :class:`~memora.memory.transfer.StoreSide`)."""

    neural: Any

    def get(self, record_id: str, scope: ScopeArg = None, *, all_scopes: bool = False,
            all_users: bool = False, **ids: Unpack[ScopeIds]) -> MemoryRecord:  # fmt: skip
        raise NotImplementedError

    def _latest_options(self, query: str, where: Scope | None,
                        opts: SearchOptions) -> SearchOptions:  # fmt: skip
        raise NotImplementedError

    def _neural_candidates(self, where: Scope, opts: SearchOptions, qvec: np.ndarray,
                           dense: builtins.list[int], keys: builtins.list[int] | None,
                           depth: int) -> Any:  # fmt: skip
        raise NotImplementedError

    # -- search --------------------------------------------------------------------------

    def find(
        self,
        query: str,
        scope: ScopeArg = None,
        *,
        all_scopes: bool = False,
        all_users: bool = False,
        options: SearchOptions | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        **changes: Any,
    ) -> builtins.list[SearchHit]:
        """What :meth:`MemoryStore.search <memora.memory.store.MemoryStore.search>` returns."""
        self._open()
        opts = SearchOptions.build(options, **changes)
        where = read_scope(Scope.of(scope, user_id=user_id, agent_id=agent_id,
                                    session_id=session_id), all_scopes, all_users)  # fmt: skip
        words = searched_words(query_words(query))
        opts.check_neural(self.neural is not None)
        opts = self._latest_options(query, where, opts)
        window = _window(query, opts)
        if opts.mode == "lexical" and opts.min_score is None and opts.abstain_below is None:
            hits = lexical_hits(self.records, query, where, opts, window)  # no embedder
        else:
            (qvec,) = self.embed([query])
            filters = opts.filters if opts.mode != "lexical" else None
            keys = self.records.matching(where, filters, self.space) if filters else None
            self.vectors.sync()
            tier = functools.partial(
                self._tier, qvec=qvec, words=words, where=where, keys=keys, opts=opts
            )
            hop = None if opts.hops < 2 else functools.partial(
                self._second_hop, query, where=where, opts=opts, window=window, qvec=qvec
            )  # fmt: skip
            hits = second_stage(query, tier, qvec, opts, window, hop)
        if opts.latest and window is None and asks_latest(query):
            hits = supersede(hits, words)
        return self._with_context(hits[: opts.k], opts.neighbours)

    def _second_hop(self, query: str, hits: builtins.list[SearchHit], k: int, *,
                    where: Scope | None, opts: SearchOptions, window: Any,
                    qvec: np.ndarray) -> builtins.list[SearchHit]:  # fmt: skip
        """The first ``k`` hits taken in turns with a full-text search for the query and the
        names the first two hits hold (:func:`~memora.memory.fusion.bridge_names`), before a
        second stage."""
        names = bridge_names(hits[:2], query) if opts.mode != "dense" else []
        if not names:
            return hits
        again = replace(opts, k=k, rerank=None, abstain_below=None, min_score=None)
        hop = lexical_hits(self.records, f"{query} {' '.join(names)}", where, again, window,
                           qvec)  # fmt: skip
        return interleave(hits[:k], hop)

    def _tier(self, depth: int, qvec: np.ndarray, words: builtins.list[str], where: Scope | None,
              keys: builtins.list[int] | None, opts: SearchOptions) -> Tier:  # fmt: skip
        """The candidates of both retrievers ``depth`` deep (and of the neural memory), with
        the records their search keys find."""
        dense = [] if opts.mode == "lexical" else self.vectors.search(qvec, depth, where, keys)
        lexical = (self.records.lexical_scored(words, where, opts.filters, depth)
                   if opts.mode != "dense" else [])  # fmt: skip
        pool: dict[int, tuple[MemoryRecord, np.ndarray]] = {}
        if opts.neural_weight and dense and where is not None:
            pool, dense = self._neural_candidates(where, opts, qvec, dense, keys, depth)
        wanted = list(dict.fromkeys([*dense, *(k for k, _ in lexical)]))
        found = {k: pool[k] for k in wanted if k in pool}
        found |= self.records.fetch([k for k in wanted if k not in pool], where)
        if not opts.keys:
            found = {k: hit for k, hit in found.items() if hit[0].key_of is None}
        found = with_owners(self.records, found, where)
        return {k: hit for k, hit in found.items() if fits(hit[1], qvec)}, dense, lexical

    def _with_context(self, hits: builtins.list[SearchHit],
                      n: int) -> builtins.list[SearchHit]:  # fmt: skip
        """The hits with their neighbours (``n`` before and after each)."""
        if n < 1:
            return hits
        return [replace(h, context=tuple(self.records.around(h.record, n))) for h in hits]

    # -- search keys ---------------------------------------------------------------------

    def add_keys(self, record_id: str, keys: Sequence[str], scope: ScopeArg = None, *,
                 all_scopes: bool = False, actor: str = "memora",
                 **ids: Unpack[ScopeIds]) -> builtins.list[MemoryRecord]:  # fmt: skip
        """Make ``record_id`` findable through more texts (a fact it states, a question it
        answers): a search that matches a key returns the record (``SearchHit.via`` names the
        key). Keys already held are skipped; returns the keys stored."""
        self._open(write=True)
        record = self.get(record_id, scope, all_scopes=all_scopes, **ids)
        if record.deleted or record.key_of is not None:
            raise RecordNotFoundError(f"memory {record_id} is deleted; add it again instead")
        (texts,) = check_keys([list(keys)], 1, self.max_text_chars)
        return self.attach_keys([(record, texts)], actor)

    def attach_keys(self, pairs: Sequence[tuple[MemoryRecord, Sequence[str]]],
                    actor: str) -> builtins.list[MemoryRecord]:  # fmt: skip
        """Store the keys of ``(record, key texts)`` pairs in one transaction (embedded before
        it), without the texts a record already has as its text or a key."""
        items = self.key_items(pairs, time.time())
        if not items:
            return []
        self.vectors.sync()

        def write() -> None:
            self.records.insert(items, actor=actor)
            self.records.after_commit(self._sync_view)

        self.records.atomic(write)
        return [i.record for i in items]

    def keys(self, record_id: str, scope: ScopeArg = None, *, all_scopes: bool = False,
             all_users: bool = False,
             **ids: Unpack[ScopeIds]) -> builtins.list[MemoryRecord]:  # fmt: skip
        """The search keys of a record, oldest first."""
        record = self.get(record_id, scope, all_scopes=all_scopes, all_users=all_users, **ids)
        return self.records.keys_of(record.id)

    def key_items(self, pairs: Sequence[tuple[MemoryRecord, Sequence[str]]],
                  now: float) -> builtins.list[NewRecord]:  # fmt: skip
        """New key rows for ``(record, key texts)`` pairs, without the texts a record already
        has as its text or a key."""
        wanted: builtins.list[tuple[MemoryRecord, str]] = []
        for record, texts in pairs:
            held = {record.content_hash} | {k.content_hash for k in self.records.keys_of(record.id)}
            for text in texts:
                item = new_record(record.scope, text, {}, now, space=("", 0))
                if item.content_hash not in held:
                    held.add(item.content_hash)
                    wanted.append((record, text))
        if not wanted:
            return []
        vectors = self.embed([text for _, text in wanted])
        return [
            NewRecord(new_record(record.scope, text, dict(record.metadata), now,
                                 space=(self.space, self.embedder.dim),
                                 expires_at=record.expires_at, occurred_at=record.occurred_at,
                                 key_of=record.id), vector)
            for (record, text), vector in zip(wanted, vectors, strict=True)
        ]  # fmt: skip


def _window(query: str, opts: SearchOptions) -> Any:
    """The time window a query asks about (None: none, or time resolution is off)."""
    if not opts.time_weight:
        return None
    from memora.memory.when import resolve_time

    return resolve_time(query, opts.now)

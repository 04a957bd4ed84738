"""The extraction worker: one background thread that turns each finished turn into memories,
off the response path.

A turn is recorded in the journal before it is queued here; the worker stores the user's
message (not a bare question) as a memory, extracts its facts against the nearest existing
ones, applies them, and marks the turn ``done``, or ``failed`` with the error. A failed turn
raises :class:`ExtractionError` from :meth:`ExtractionWorker.wait` and stays in the journal
until :meth:`ExtractionWorker.retry_failed`. Turns it never ran stay ``pending`` for the next
worker on the scope.

Every memory it writes occurred when the turn was said (``occurred_at``). A fact names its
source turn and that turn's message record in its metadata (``source_turns``, ``source_ids``)
and becomes a search key of the message record, so a search finds the turn through the fact.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from memora.errors import BackendError, ExtractionError
from memora.memory.store import MemoryStore
from memora.memory.types import MemoryRecord, Scope

from .abstain import only_a_question
from .config import AgentConfig
from .extract import Action, Extraction, Extractor, Proposal
from .journal import Journal, Turn

__all__ = ["ExtractionWorker"]

#: Tries of one extraction call when the server fails (a transient failure gets two more).
BACKEND_TRIES = 3


class ExtractionWorker:
    """Extracts the turns of one user and agent (``scope``) in a background thread.

    ``extractor`` is shared with its owner, so a change of its model or token cap applies to
    the next turn extracted.
    """

    def __init__(
        self,
        store: MemoryStore,
        journal: Journal,
        extractor: Extractor,
        scope: Scope,
        config: AgentConfig,
    ) -> None:
        self.store = store
        self.journal = journal
        self.extractor = extractor
        self.scope = scope
        self.config = config
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memora-extract")
        self._futures: list[Future[Extraction]] = []
        self._futures_lock = threading.Lock()  # turns are queued from any thread (achat)

    @property
    def background(self) -> bool:
        """Whether a finished turn is queued here (with neither extraction nor stored
        messages, turns stay pending in the journal)."""
        return self.config.extract or self.config.store_messages

    def resume(self) -> None:
        """Queue the turns a stopped process left unfinished (when this worker extracts)."""
        if self.config.extract:
            for turn_id in self.journal.claim_unfinished(self.scope):
                self.submit(turn_id)

    def submit(self, turn_id: int) -> Future[Extraction]:
        """Queue a turn that is claimed (``running``) in the journal."""
        with self._futures_lock:
            future = self._pool.submit(self._run, turn_id)
            self._futures.append(future)
        return future

    def wait(self, timeout: float | None = None) -> list[Extraction]:
        """Wait for every queued extraction; raises the first :class:`ExtractionError` (every
        failed turn stays in :meth:`failed`)."""
        with self._futures_lock:
            futures, self._futures = self._futures, []
        done: list[Extraction] = []
        first: BaseException | None = None
        deadline = None if timeout is None else time.monotonic() + timeout
        for future in futures:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                done.append(future.result(timeout=left))
            except Exception as exc:  # noqa: BLE001 - raised after the others finish
                first = first or exc
        if first is not None:
            raise first
        return done

    def failed(self) -> list[Turn]:
        """Turns of this user and agent whose extraction failed."""
        return self.journal.turns(self.scope, status="failed")

    def retry_failed(self) -> list[Future[Extraction]]:
        """Queue every failed turn again."""
        return [self.submit(t.id) for t in self.failed() if self.journal.claim_failed(t.id)]

    def close(self, *, wait: bool = True) -> None:
        """Stop the thread (after the queued turns when ``wait``)."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    # -- one turn ------------------------------------------------------------------------

    def _run(self, turn_id: int) -> Extraction:
        turn = self.journal.get(turn_id)
        try:
            message_id = None
            if self.config.store_messages and not only_a_question(turn.user_text):
                message_id = self.store.add(  # questions carry no facts
                    turn.user_text, turn.scope, metadata={"kind": "message", "turn_id": turn.id},
                    actor="agent", occurred_at=turn.created_at,
                ).record.id  # fmt: skip
            if not self.config.extract:
                self.journal.finish(turn.id, "done", actions=[])
                return Extraction(turn.id, [], 0)
            proposals, attempts = self._propose(turn)
            actions = [self._apply(turn, p, message_id) for p in proposals]
            if message_id is not None:  # the message is found through what it says
                found = [a.text for a in actions if a.kind in ("add", "update")]
                if found:
                    self.store.add_keys(message_id, found, self.scope, actor="extract")
        except Exception as exc:
            error = self._failed(turn, exc)
            if error is exc:
                raise
            raise error from exc
        self.journal.finish(turn.id, "done", actions=[a.to_dict() for a in actions])
        return Extraction(turn.id, actions, attempts)

    def _propose(self, turn: Turn) -> tuple[list[Proposal], int]:
        """The extractor's checked proposals for ``turn`` against the nearest facts."""
        nearest: list[MemoryRecord] = [
            h.record
            for h in self.store.search(turn.user_text, self.scope, k=5, filters={"kind": "fact"})
        ]
        for attempt in range(BACKEND_TRIES):
            try:  # the model serializes its own calls (no lock here)
                return self.extractor.propose(turn.id, turn.user_text, nearest)
            except BackendError:
                if attempt == BACKEND_TRIES - 1:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _failed(self, turn: Turn, exc: Exception) -> ExtractionError:
        """Mark ``turn`` failed; the error to raise (``exc`` itself when it is one), after
        ``on_error`` has seen it."""
        self.journal.finish(turn.id, "failed", error=f"{type(exc).__name__}: {exc}")
        error = (
            exc
            if isinstance(exc, ExtractionError)
            else ExtractionError(
                f"turn {turn.id}: extraction failed ({type(exc).__name__}: {exc}); the "
                "turn is kept and marked failed: retry it with agent.retry_failed()",
                turn_id=turn.id,
            )
        )
        if self.config.on_error is not None:
            self.config.on_error(error)
        return error

    def _apply(self, turn: Turn, proposal: Proposal, message_id: str | None) -> Action:
        """Apply one proposal; a fact written names the turn it comes from (and the message
        record of that turn) and occurred when the turn was said."""
        kind, text, target = proposal.action, proposal.text, proposal.target
        meta: dict[str, Any] = {
            "kind": "fact", "turn_id": turn.id, "source_turns": [turn.id],
            "source_ids": [] if message_id is None else [message_id],
        }  # fmt: skip
        if kind == "update" and target is not None and not self._same_subject(text, target.text):
            kind = "add"  # small models name the wrong memory: keep the old one, add the new
        if kind == "add":
            added = self.store.add(text, self.scope, metadata=meta, actor="extract",
                                   occurred_at=turn.created_at)  # fmt: skip
            return Action("add", text, added.record.id)
        if kind == "update" and target is not None:
            record = self.store.update(
                target.id, text, self.scope, metadata={**target.metadata, **meta},
                actor="extract", occurred_at=turn.created_at,
            )  # fmt: skip
            return Action("update", text, record.id, old_text=target.text)
        if kind == "rejected":
            return Action("rejected", text)
        return Action("none", text, target.id if target is not None else None)

    def _same_subject(self, new: str, old: str) -> bool:
        """Whether an update's new text is about what the old memory says (cosine similarity
        of their embeddings at least ``update_similarity``)."""
        a, b = self.store.embed([new, old])  # the store serializes its embedder
        return float(a @ b) >= self.config.update_similarity

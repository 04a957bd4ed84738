"""The memory agent: a chat agent whose every turn reads from and writes to a memory store.

A turn: retrieve (hybrid search, optionally the neural memory's expansion, optionally a
reranker) → assemble the prompt within a token budget (system text, today's date, core blocks,
retrieved memories quoted as data with their dates in a stable order, recent turns) → answer,
streaming (or, for a question about the user's past that no memory answers, a fixed "I don't
know" without a model call: :mod:`.abstain`) → record the turn in the journal → extract its
facts in a background worker (off the response path). ``wait()`` waits for the extractions; a
failed one raises :class:`ExtractionError` there and stays in the journal, marked failed, until
``retry_failed()``.

The parts: :mod:`.config` (the options), :mod:`.context` (retrieval and the prompt),
:mod:`.worker` (the extraction thread), :mod:`.streams` (the answer as it comes), :mod:`.tools`.
Model calls take no lock here: a model serializes its own calls (``LlamaCppLLM`` holds its lock
for a whole generation, stream included; ``OpenAILLM`` sends independent HTTP requests).

There is one implementation; the async API runs it in a worker thread
(:meth:`achat`, :meth:`astream`, :meth:`await_extractions`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from typing import Any

from memora.errors import ClosedError, ConfigError, InvalidOptionError, ScopeError
from memora.llm.base import LLM
from memora.memory.store import MemoryStore
from memora.memory.types import Scope, SearchHit

from .abstain import ABSTAIN_TEXT
from .config import DEFAULT_SYSTEM, AgentConfig
from .context import Fitted, TurnContext
from .core import CoreMemory
from .extract import Extraction, Extractor
from .journal import Journal, Turn
from .streams import AsyncReplyStream, Reply, ReplyStream
from .tools import answer_with_tools, run_tool, tool_specs
from .worker import ExtractionWorker

__all__ = ["DEFAULT_SYSTEM", "MemoryAgent"]

_OPTIONS = frozenset(AgentConfig.names())


class MemoryAgent:
    """A chat agent with memory, for one user (and agent) of a :class:`MemoryStore`.

    Args:
        llm: the model that answers.
        store: the memory store; the journal and core blocks live in its file too.
        scope: whose memory; needs ``user_id`` (``agent_id`` defaults to ``"assistant"``; a new
            ``session_id`` is made when none is given). Or pass ``user_id=`` etc.
        config: the options (:class:`AgentConfig`; default: its defaults).
        **options: fields of :class:`AgentConfig` that override ``config``
            (``MemoryAgent(llm, store, user_id="u", k=3)``); an unknown name raises
            :class:`~memora.errors.InvalidOptionError`. The options also read as attributes
            (``agent.k`` is ``agent.config.k``).
    """

    def __init__(
        self,
        llm: LLM,
        store: MemoryStore,
        scope: Scope | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        config: AgentConfig | None = None,
        **options: Any,
    ) -> None:
        base = scope or Scope(user_id=user_id, agent_id=agent_id, session_id=session_id)
        if base.user_id is None:
            raise ScopeError(
                "a memory agent serves one user: pass user_id='...' (or a Scope with user_id); "
                "users never see each other's memories"
            )
        self.config = config = AgentConfig.build(config, **options)
        config.check(llm, store)
        self.llm = llm
        self.store = store
        self.scope = Scope(
            user_id=base.user_id,
            agent_id=base.agent_id or "assistant",
            session_id=base.session_id or uuid.uuid4().hex[:12],
        )
        self.memory_scope = Scope(user_id=self.scope.user_id, agent_id=self.scope.agent_id)
        self.journal = Journal(store.database)
        self.core = CoreMemory(self.journal, self.memory_scope, config.core_blocks)
        self.context = TurnContext(llm, store, self.journal, self.core, self.scope, config)
        # the budget in effect (the option, or what the model's context leaves when unset)
        super().__setattr__("context_budget", self.context.budget)
        self.extractor = Extractor(config.extractor_llm or llm, max_retries=config.max_retries)
        self.worker = ExtractionWorker(
            store, self.journal, self.extractor, self.memory_scope, config
        )
        self._closed = False
        self.worker.resume()  # turns a stopped process left unfinished: run them now

    def __getattr__(self, name: str) -> Any:
        """An option of :attr:`config` read as an attribute (``agent.k``)."""
        if name in _OPTIONS and "config" in self.__dict__:
            return getattr(self.config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OPTIONS:
            raise InvalidOptionError(
                f"the agent's options are fixed when it is made: pass {name}=... (or "
                "config=AgentConfig(...)) to MemoryAgent"
            )
        super().__setattr__(name, value)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self, *, wait: bool = True) -> None:
        """Stop the extraction worker (after the queued turns when ``wait``; turns it does not
        run stay pending in the journal for the next agent)."""
        if not self._closed:
            self._closed = True
            self.worker.close(wait=wait)

    def __enter__(self) -> MemoryAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- a turn --------------------------------------------------------------------------

    def chat(self, message: str, *, record: bool = True) -> Reply:
        """Answer ``message`` (blocking); extraction goes on in the background. With
        ``record=False`` the turn leaves no trace: no journal entry, no memory."""
        stream = self.stream(message, record=record)
        for _ in stream:
            pass
        return stream.reply

    def stream(self, message: str, *, record: bool = True) -> ReplyStream:
        """Answer ``message`` piece by piece (see :class:`ReplyStream`)."""
        if self._closed:
            raise ClosedError("this agent is closed; make a new MemoryAgent")
        if not message.strip():
            raise ConfigError("the message is empty")
        holder: list[Reply] = []
        return ReplyStream(self._turn(message, holder, record), holder)

    def _turn(self, message: str, holder: list[Reply], record: bool) -> Iterator[str]:
        started = time.perf_counter()
        now = time.time()
        retrieved = self.recall(message, now=now)
        retrieval = time.perf_counter() - started
        abstained = self.context.abstains(message, retrieved, now=now)
        fitted = Fitted([], 0, []) if abstained else self.context.fit(message, retrieved, now=now)
        pieces: list[str] = []
        calls: list[dict[str, Any]] = []
        finished = False
        try:
            if abstained:  # nothing the agent holds answers it: no model call
                pieces.append(ABSTAIN_TEXT)
                yield ABSTAIN_TEXT
            else:
                yield from self._answer(fitted.messages, pieces, calls)
            finished = True
        finally:
            if finished or pieces:  # a reader that stopped early keeps what was said
                text = "".join(pieces).strip()
                turn_id, future = self._record(message, text) if record else (0, None)
                holder.append(Reply(
                    text=text, turn_id=turn_id, memories=fitted.hits,
                    prompt_tokens=fitted.tokens, seconds_retrieval=retrieval,
                    seconds=time.perf_counter() - started, extraction=future, tool_calls=calls,
                    abstained=abstained,
                ))  # fmt: skip

    def _answer(
        self, messages: list[dict[str, str]], pieces: list[str], calls: list[dict[str, Any]]
    ) -> Iterator[str]:
        """The answer's pieces, kept in ``pieces`` as they come (and the tool calls in
        ``calls``)."""
        config = self.config
        if config.tools:
            text, done = answer_with_tools(self.llm, self, messages, config)
            calls.extend(done)
            pieces.append(text)
            yield text
            return
        with self.llm.stream(
            messages, max_tokens=config.max_tokens, temperature=config.temperature,
            seed=config.seed, repeat_penalty=config.repeat_penalty,
        ) as stream:  # fmt: skip
            for piece in stream:
                pieces.append(piece)
                yield piece

    def _record(self, message: str, text: str) -> tuple[int, Future[Extraction] | None]:
        """Write the turn to the journal and queue it for the worker."""
        background = self.worker.background
        turn_id = self.journal.record(self.scope, message, text, claim=background).id
        return turn_id, self.worker.submit(turn_id) if background else None

    # -- retrieval and the prompt --------------------------------------------------------

    def recall(
        self, query: str, k: int | None = None, *, now: float | None = None
    ) -> list[SearchHit]:
        """The memories for ``query``: this user's facts and past messages, best first.
        ``now``: when it is asked (default: the clock), for the times it names ("last
        week")."""
        return self.context.recall(query, k, now=now)

    def prompt(
        self, message: str, hits: list[SearchHit], *, now: float | None = None
    ) -> list[dict[str, str]]:
        """The messages for one turn, fitted to the token budget: the oldest turns go first,
        then the lowest-ranked memories; never the system text, core blocks or message.
        ``now``: the time of the turn, stated as today's date (a turn states the clock's;
        None: no date, a prompt that reads the same every day)."""
        return self.context.fit(message, hits, now=now).messages

    # -- memories and extraction ---------------------------------------------------------

    def remember(self, text: str, *, source: str = "user") -> Any:
        """Store a fact about the user directly (no model call); returns the AddResult."""
        return self.store.add(
            text, self.memory_scope, metadata={"kind": "fact", "source": source}, actor=source
        )

    def wait(self, timeout: float | None = None) -> list[Extraction]:
        """Wait for every queued extraction; raises the first :class:`ExtractionError` (every
        failed turn stays in :meth:`failed`)."""
        return self.worker.wait(timeout)

    def failed(self) -> list[Turn]:
        """Turns of this user and agent whose extraction failed."""
        return self.worker.failed()

    def retry_failed(self) -> list[Future[Extraction]]:
        """Queue every failed turn again."""
        return self.worker.retry_failed()

    def history(self, last: int | None = None) -> list[Turn]:
        """This user's turns with this agent, oldest first (across sessions and processes)."""
        return self.journal.turns(self.memory_scope, last=last)

    # -- tools ---------------------------------------------------------------------------

    def tool_specs(self) -> list[dict[str, Any]]:
        """The memory tools in the OpenAI tools format."""
        return tool_specs(list(self.core.blocks()))

    def run_tool(self, name: str, arguments: str | Mapping[str, Any]) -> str:
        """Run one tool call; returns its result as JSON text (errors too: the model reads
        them and can try again)."""
        return run_tool(self, name, arguments)

    # -- async ---------------------------------------------------------------------------

    async def achat(self, message: str, *, record: bool = True) -> Reply:
        """:meth:`chat` without blocking the event loop."""
        return await asyncio.to_thread(lambda: self.chat(message, record=record))

    def astream(self, message: str, *, record: bool = True) -> AsyncReplyStream:
        """:meth:`stream` as an async iterator (the model runs in a worker thread)."""
        return AsyncReplyStream(self.stream(message, record=record))

    async def await_extractions(self, timeout: float | None = None) -> list[Extraction]:
        """:meth:`wait` without blocking the event loop."""
        return await asyncio.to_thread(self.wait, timeout)

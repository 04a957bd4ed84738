"""A turn's answer as it is generated: :class:`ReplyStream` (an iterator of text pieces) and
:class:`AsyncReplyStream` (the same, ``async for``, with the model in a worker thread), and the
finished turn, :class:`Reply`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from memora.errors import AgentError
from memora.memory.types import SearchHit

from .extract import Extraction

__all__ = ["AsyncReplyStream", "Reply", "ReplyStream"]


@dataclass
class Reply:
    """One answered turn (``turn_id`` 0: not recorded); ``memories``: the ones in its prompt;
    ``abstained``: the answer is the fixed "I don't know" of a personal question that no memory
    answers (no model call, no prompt)."""

    text: str
    turn_id: int
    memories: list[SearchHit]
    prompt_tokens: int
    seconds_retrieval: float
    seconds: float
    extraction: Future[Extraction] | None = field(default=None, repr=False)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    abstained: bool = False


class ReplyStream(Iterator[str]):
    """The answer's text pieces as they are generated; :attr:`reply` once it is finished.
    Closing it early keeps the turn with the text said so far."""

    def __init__(self, pieces: Iterator[str], holder: list[Reply]) -> None:
        self._pieces = pieces
        self._holder = holder

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    @property
    def reply(self) -> Reply:
        if not self._holder:
            raise AgentError("the reply is not finished: read the stream to its end first")
        return self._holder[0]

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


class AsyncReplyStream:
    """``async for piece in agent.astream(message)``; then :attr:`reply`. The model runs in a
    worker thread; leaving the loop early stops it and keeps what was said."""

    def __init__(self, stream: ReplyStream) -> None:
        self._stream = stream
        self._queue: asyncio.Queue[tuple[str, Any]] | None = None
        self._task: asyncio.Future[None] | None = None
        self._stop = threading.Event()

    def __aiter__(self) -> AsyncReplyStream:
        return self

    async def __anext__(self) -> str:
        if self._queue is None:
            self._start()
        assert self._queue is not None
        kind, value = await self._queue.get()
        if kind == "piece":
            return str(value)
        await self.aclose()
        if kind == "error":
            raise value
        raise StopAsyncIteration

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._queue = queue

        def pump() -> None:
            try:
                for piece in self._stream:
                    if self._stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
            except BaseException as exc:  # noqa: BLE001 - handed to the reader
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            finally:
                self._stream.close()
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

        self._task = loop.run_in_executor(None, pump)

    async def aclose(self) -> None:
        """Stop generating (the turn keeps the text said so far)."""
        self._stop.set()
        if self._task is not None:
            await self._task

    @property
    def reply(self) -> Reply:
        return self._stream.reply

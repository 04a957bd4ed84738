"""The routes of ``memora serve`` that use a model: ``POST /v1/rerank`` (the shape of the
common rerank APIs) and ``POST /v1/chat/completions`` (OpenAI-compatible, streamed with
server-sent events or not), answered by a :class:`~memora.agents.MemoryAgent` for the key's
user. Model calls wait in one bounded queue (:class:`ModelQueue`): one llama.cpp context is
never run from two requests at once, and a full queue answers 429 with ``Retry-After``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import ConfigDict, Field

from memora.errors import ConfigError, MemoraError, ServerBusyError
from memora.memory.store import MemoryStore
from memora.serve.common import Body, Caller, Limits, at_most, scope_of
from memora.serve.keys import ApiKey

__all__ = ["ModelQueue", "model_routes"]


class ModelQueue:
    """Model calls one at a time, at most ``depth`` waiting or running (429 beyond), and at
    most ``per_key`` of them from one key."""

    def __init__(self, depth: int, per_key: int) -> None:
        self.depth, self.per_key = depth, per_key
        self._run = threading.Lock()
        self._count = threading.Lock()
        self._inside = 0
        self._by_key: dict[str, int] = {}

    @property
    def waiting(self) -> int:
        return self._inside

    def enter(self, key: ApiKey) -> None:
        """Take a place in the queue, or :class:`ServerBusyError` (HTTP 429)."""
        with self._count:
            if self._by_key.get(key.id, 0) >= self.per_key:
                raise ServerBusyError(
                    f"this key already has {self.per_key} model calls running or waiting "
                    f"(limit max_generations_per_key={self.per_key}). Fix: wait for them"
                )
            if self._inside >= self.depth:
                raise ServerBusyError(
                    f"the model queue is full ({self.depth} calls; limit max_queue="
                    f"{self.depth}). Fix: retry after the Retry-After seconds"
                )
            self._inside += 1
            self._by_key[key.id] = self._by_key.get(key.id, 0) + 1

    def leave(self, key: ApiKey) -> None:
        with self._count:
            self._inside -= 1
            self._by_key[key.id] -= 1

    @contextmanager
    def running(self, key: ApiKey) -> Iterator[None]:
        """Run (one call at a time) with a place taken by :meth:`enter`; leave after."""
        try:
            with self._run:
                yield
        finally:
            self.leave(key)

    @contextmanager
    def slot(self, key: ApiKey) -> Iterator[None]:
        self.enter(key)
        with self.running(key):
            yield


class RerankBody(Body):
    query: str
    documents: list[str] = Field(min_length=1)
    top_n: int | None = Field(default=None, ge=1)
    strategy: str | None = None
    return_documents: bool = False
    passage_words: int = Field(default=120, ge=16, le=2000)


class Message(Body):
    model_config = ConfigDict(extra="ignore", strict=True)  # name, tool fields: ignored
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | None = None


class ChatBody(Body):
    model_config = ConfigDict(extra="ignore", strict=True)  # temperature, top_p...: ignored
    model: str = "memora"
    messages: list[Message] = Field(min_length=1)
    stream: bool = False


def model_routes(store: MemoryStore, llm: Any, limits: Limits, queue: ModelQueue,
                 agents: dict[str, Any], metrics: Any) -> APIRouter:  # fmt: skip
    """Rerank and chat over ``llm`` (None: the bi-encoder reranker only, no chat); ``agents``:
    the memory agent of each key that chatted (its owner closes them)."""
    router = APIRouter(prefix="/v1")
    made = threading.Lock()

    @router.post("/rerank")
    def rerank(body: RerankBody, key: Caller) -> dict[str, Any]:
        scope_of(key, "rerank")
        at_most(len(body.documents), limits.max_documents, "max_documents", "documents")
        strategy = body.strategy or ("full" if llm is not None else "biencoder")
        docs, split = _passages(body.documents, body.passage_words)
        with queue.slot(key) if strategy != "biencoder" else nullcontext():
            ranking = _reranker(strategy, llm, store, body.passage_words, split).rank(
                body.query, docs
            )
        n = len(docs)
        scores = ranking.scores or [1.0 - i / n for i in range(n)]  # no scores: by rank
        results = [{"index": int(doc_id), "relevance_score": float(score),
                    **({"document": {"text": body.documents[int(doc_id)]}}
                       if body.return_documents else {})}
                   for doc_id, score in zip(ranking.ids, scores, strict=True)]  # fmt: skip
        return {"model": ranking.diagnostics.strategy, "results": results[: body.top_n or n],
                "meta": {"split": split, "scores": "model" if ranking.scores else "rank",
                         "calls": ranking.diagnostics.calls}}  # fmt: skip

    @router.post("/chat/completions", response_model=None)
    def chat(body: ChatBody, key: Caller) -> StreamingResponse | dict[str, Any]:
        scope = scope_of(key, "chat")
        if llm is None:
            raise ConfigError("this server has no model. Fix: start it with memora serve --model")
        asked = next((m.content for m in reversed(body.messages) if m.role == "user"), None)
        if not asked or not asked.strip():
            raise ConfigError("no user message with text. Fix: end messages with the user's turn")
        with made:
            agent = agents.get(key.id)
            if agent is None:
                from memora.agents import MemoryAgent

                agent = agents[key.id] = MemoryAgent(
                    llm, store, user_id=scope.user_id, agent_id=scope.agent_id,
                    session_id=f"http-{key.id}")  # fmt: skip
        call = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.stream:
            queue.enter(key)  # a full queue is a 429 before the stream starts
            return StreamingResponse(_sse(agent, asked, queue, key, call, body.model, metrics),
                                     media_type="text/event-stream")  # fmt: skip
        with queue.slot(key):
            reply = agent.chat(asked)
        answered = _tokens(llm, reply.text)
        metrics.tokens.labels("prompt").inc(reply.prompt_tokens)
        metrics.tokens.labels("completion").inc(answered)
        return _completion(call, body.model, reply, answered)

    return router


def _passages(documents: list[str], words: int) -> tuple[list[tuple[str, str]], list[Any]]:
    """The documents as ``(index, text)`` and which of them are longer than ``words`` words
    (ranked by their passages, best passage first: reported, nothing dropped)."""
    split = [{"index": i, "words": len(d.split())} for i, d in enumerate(documents)
             if len(d.split()) > words]  # fmt: skip
    return [(str(i), d) for i, d in enumerate(documents)], split


def _reranker(strategy: str, llm: Any, store: MemoryStore, words: int, split: list[Any]) -> Any:
    from memora.rank import PassageReranker, load_reranker

    if strategy == "biencoder":
        inner = load_reranker("biencoder", embedder=store.embedder)
    else:
        if llm is None:
            raise ConfigError(f"strategy {strategy!r} needs a model. Fix: start memora serve "
                              "with --model, or use strategy 'biencoder'")  # fmt: skip
        inner = load_reranker(strategy, llm)
    if not split:
        return inner
    return PassageReranker(inner, passage_words=words, stride=max(1, words * 2 // 3))


def _tokens(llm: Any, text: str) -> int:
    """The tokens of an answer (the backend's count; an estimate where it has no tokenizer)."""
    if not text:
        return 0
    try:
        return int(llm.count_tokens(text))
    except MemoraError:
        return max(1, len(text.encode()) // 3)  # as the remote backend estimates: errs high


def _completion(call: str, model: str, reply: Any, answered: int) -> dict[str, Any]:
    return {
        "id": call, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": reply.text}}],
        "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": answered,
                  "total_tokens": reply.prompt_tokens + answered},
        "memora": {"memories": [{"id": h.record.id, "text": h.record.text}
                                for h in reply.memories]},
    }  # fmt: skip


def _sse(agent: Any, asked: str, queue: ModelQueue, key: ApiKey, call: str, model: str,
         metrics: Any) -> Iterator[bytes]:  # fmt: skip
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {"id": call, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return f"data: {json.dumps(data)}\n\n".encode()

    with queue.running(key):
        yield chunk({"role": "assistant", "content": ""})
        stream = agent.stream(asked)
        try:
            for piece in stream:
                yield chunk({"content": piece})
            metrics.tokens.labels("prompt").inc(stream.reply.prompt_tokens)
            metrics.tokens.labels("completion").inc(_tokens(agent.llm, stream.reply.text))
        finally:
            stream.close()
    yield chunk({}, "stop")
    yield b"data: [DONE]\n\n"

"""Search keys written by a model: the questions a memory answers, generated after the memory
is written (in the background), so that a question finds the memory that answers it even when
the two share few words.

    keys = QuestionKeys(store, llm)
    result = store.add("Our wifi password is pebble23.", user_id="u")
    keys.submit(result.record)      # a background thread asks the model and stores the keys
    ...
    keys.close()                    # waits for what was submitted

The keys are stored with :meth:`MemoryStore.add_keys
<memora.memory.retrieval.Retrieval.add_keys>`: never listed or counted, deleted with their
record, and a search that matches one returns the record (``SearchHit.via``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from memora import templates
from memora.errors import ConfigError, MemoraError
from memora.memory.types import MemoryRecord

__all__ = ["QuestionKeys", "parse_questions", "questions_prompt"]

_LABEL = re.compile(r"^\s*(?:(?:Question:|\d+[.)]|[-*•])\s*)+")


def questions_prompt(text: str) -> str:
    """A few-shot completion prompt: two texts with the questions they answer, then ``text``
    (a small model follows the pattern better than an instruction)."""
    return templates.render("memora.memory", "questions", text=" ".join(text.split()))


def parse_questions(output: str, text: str, n: int) -> list[str]:
    """At most ``n`` distinct questions from a model's output: lines ending with "?", of 3 to
    25 words, labels and numbering removed, not the text itself."""
    found: list[str] = []
    for line in output.splitlines():
        question = _LABEL.sub("", line).strip()
        words = len(question.split())
        if (question.endswith("?") and 3 <= words <= 25 and question not in found
                and question.casefold() != text.strip().casefold()):  # fmt: skip
            found.append(question)
    return found[:n]


class QuestionKeys:
    """Questions a record answers, asked of ``llm`` (greedy, ``max_tokens`` each) and stored as
    its search keys in ``store``.

    :meth:`expand` works in the caller's thread; :meth:`submit` queues a record for one
    background thread (the model is never called from two threads at once). A record whose
    questions fail (the model raised a memora error) is kept in :attr:`failed` and the rest go
    on; :meth:`close` waits for what was queued.
    """

    def __init__(self, store: Any, llm: Any, *, n: int = 2, max_tokens: int = 64) -> None:
        if n < 1 or max_tokens < 8:
            raise ConfigError("QuestionKeys needs n >= 1 and max_tokens >= 8")
        self.store, self.llm, self.n, self.max_tokens = store, llm, n, max_tokens
        self.failed: list[tuple[str, str]] = []  # (record id, error)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def questions(self, text: str) -> list[str]:
        """The questions the model writes for ``text`` (possibly none)."""
        reply = self.llm.generate(questions_prompt(text), max_tokens=self.max_tokens,
                                  temperature=0.0, stop=["\n\n", "Text:"])  # fmt: skip
        return parse_questions(reply.text, text, self.n)

    def expand(self, records: Iterable[MemoryRecord]) -> int:
        """Write the question keys of ``records`` now; returns how many keys were stored."""
        stored = 0
        for record in records:
            try:
                questions = self.questions(record.text)
            except MemoraError as exc:
                self.failed.append((record.id, str(exc)))
                continue
            if questions:
                stored += len(self.store.add_keys(record.id, questions, all_scopes=True))
        return stored

    def submit(self, record: MemoryRecord) -> Future[int]:
        """Queue ``record`` for the background thread; the future gives the keys stored."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="memora-keys")
            return self._pool.submit(self.expand, [record])

    def submit_many(self, records: Sequence[MemoryRecord]) -> list[Future[int]]:
        return [self.submit(r) for r in records]

    def close(self, wait: bool = True) -> None:
        """Stop the background thread (after what was queued, unless ``wait`` is False)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=not wait)

    def __enter__(self) -> QuestionKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Sampled tokens to streamed text: UTF-8 decoded incrementally, stop strings honoured, at most
``max_tokens`` tokens."""

from __future__ import annotations

import codecs
from collections.abc import Generator, Sequence
from typing import Protocol

from memora.llm.base import FinishReason
from memora.llm.options import SamplingOptions

__all__ = ["StopMatcher", "TextStream"]


class _Vocabulary(Protocol):
    def piece(self, token: int, *, special: bool = False) -> bytes: ...

    def is_end_of_generation(self, token: int) -> bool: ...


class TextStream:
    """Turns the tokens of one generation into text pieces."""

    def __init__(self, vocab: _Vocabulary, options: SamplingOptions) -> None:
        self.vocab = vocab
        self.options = options

    def run(
        self, tokens: Generator[int, None, None]
    ) -> Generator[str, None, tuple[str, int, FinishReason]]:
        """Yield text pieces; return (text, tokens generated, finish reason)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(self.options.stop)
        generated: list[str] = []
        n_completion = 0
        finish: FinishReason = "length"
        try:
            for token in tokens:
                if self.vocab.is_end_of_generation(token):
                    finish = "stop"
                    break
                n_completion += 1
                piece, stopped = stops.feed(decoder.decode(self.vocab.piece(token)))
                if piece:
                    generated.append(piece)
                    yield piece
                if stopped:
                    finish = "stop"
                    break
                if n_completion >= self.options.max_tokens:
                    break
        finally:
            tokens.close()
        if not stops.stopped:
            tail = stops.flush(decoder.decode(b"", final=True))
            if tail:
                generated.append(tail)
                yield tail
        return "".join(generated), n_completion, finish


class StopMatcher:
    """Streams text while watching for stop strings: text that could still become the start of
    a stop string is held back until it cannot."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        """Add ``text``; return what can be emitted and whether a stop string was reached."""
        if not self.stops:
            return text, False
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending, self.stopped = self.pending[: min(hits)], "", True
            return out, True
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:k]):
                    hold = max(hold, k)
                    break
        cut = len(self.pending) - hold
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def flush(self, text: str) -> str:
        out, self.pending = self.pending + text, ""
        return out

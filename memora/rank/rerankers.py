"""Rerankers: one interface, ``rank(query, docs) -> Ranking``, several strategies.

- ``full``: every candidate in one listwise prompt (``[i] passage``; the answer
  ``[a] > [b] > ...``), each passage cut to a token budget so that the prompt fits the context
  ("Sliding Windows Are Not the End", Liu et al., 2024). When even a minimal budget does not
  fit, it raises :class:`ContextOverflowError` naming ``sliding``.
- ``sliding``: RankGPT's sliding window, from the bottom up (window 20, step 10), ``passes``.
- ``setwise`` (local models with KV sequences): the candidates are the items of a
  :class:`SetPrompt`, each with a one-token label inside it; one forward pass, and each
  candidate scores its label's next-token logit. Labels are given in a canonical order (by
  passage text), so the scores are the same, bit for bit, for every input order.
- ``pointwise`` (models with logits): each passage alone, scored by log P("yes") to "Is the
  passage relevant?".
- ``biencoder``: cosine similarity of query and passage embeddings (the default embedder).
- ``psc`` (any backend): ``full`` on ``k`` shuffled orders, aggregated by Borda count. This
  reduces order dependence; it does not remove it.

Every strategy returns a permutation of its input, whatever the model answers.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from memora.errors import ConfigError, ContextOverflowError, UnsupportedError
from memora.llm.sequence import canonical_order, sequence_model
from memora.llm.set_prompt import ChatRenderer, SetPrompt
from memora.prompting.aggregate import borda
from memora.rank.parse import parse_permutation
from memora.rank.types import Diagnostics, Doc, Ranking, as_docs

if TYPE_CHECKING:
    from memora.embed import Embedder
    from memora.llm.base import LLM

__all__ = [
    "STRATEGIES",
    "BiEncoderReranker",
    "FullReranker",
    "PSCReranker",
    "PointwiseReranker",
    "Reranker",
    "SetwiseReranker",
    "SlidingReranker",
    "load_reranker",
]

_SYSTEM = "You rank passages by their relevance to a search query."
_INSTRUCTION = (
    "Rank the {n} passages above by relevance to the query, most relevant first. Answer only "
    "with their identifiers, like [2] > [1] > [3]."
)
#: Words that are one token in common tokenizers; setwise labels are picked from these.
_LABEL_WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "tiger",
    "piano",
    "candle",
    "forest",
    "silver",
    "rocket",
    "garden",
    "castle",
    "dragon",
    "island",
    "orange",
    "violet",
    "winter",
    "summer",
    "spring",
    "autumn",
    "bridge",
    "camera",
    "circle",
    "desert",
    "engine",
    "falcon",
    "flower",
    "guitar",
    "hammer",
    "jacket",
    "ladder",
    "lemon",
    "marble",
    "monkey",
    "needle",
    "ocean",
    "palace",
    "parrot",
    "pencil",
    "pepper",
    "planet",
    "rabbit",
    "saddle",
    "shadow",
    "signal",
    "spider",
    "sponge",
    "statue",
    "sugar",
    "sword",
    "temple",
    "tunnel",
    "valley",
    "wagon",
    "window",
    "wizard",
    "yellow",
    "zebra",
    "anchor",
    "arrow",
    "banana",
    "basket",
    "beacon",
    "bottle",
    "button",
    "cactus",
    "carpet",
    "cherry",
    "cookie",
    "copper",
    "cotton",
    "crown",
    "crystal",
    "dolphin",
    "donkey",
    "eagle",
    "feather",
    "finger",
    "frost",
    "ginger",
    "glove",
    "goose",
    "helmet",
    "honey",
    "horse",
    "jelly",
    "jungle",
    "kettle",
    "kitten",
    "lizard",
    "magnet",
    "meadow",
    "mirror",
    "muffin",
    "nickel",
    "olive",
    "oyster",
    "panda",
    "peach",
    "pillow",
    "pirate",
    "pocket",
    "puzzle",
    "quartz",
    "raven",
    "ribbon",
    "saturn",
    "shell",
    "sheep",
    "silk",
    "snake",
    "spoon",
    "stove",
    "tomato",
    "tulip",
    "walnut",
    "whale",
    "willow",
]


class Reranker(ABC):
    """``rank(query, docs)`` orders ``docs`` (``Doc``, ``(id, text)``, ``{"docid", "text"}`` or
    strings) by relevance to ``query`` and returns a :class:`Ranking`."""

    name = "reranker"

    def rank(self, query: str, docs: Sequence[Any]) -> Ranking:
        if not isinstance(query, str) or not query.strip():
            raise ConfigError("the query is empty")
        candidates = as_docs(docs)
        diag = Diagnostics(strategy=self.name)
        started = time.perf_counter()
        order, scores = self._rank(query, candidates, diag)
        diag.seconds = time.perf_counter() - started
        assert sorted(order) == list(range(len(candidates))), "a reranker lost a candidate"
        return Ranking(
            ids=tuple(candidates[i].id for i in order),
            scores=None if scores is None else tuple(float(scores[i]) for i in order),
            diagnostics=diag,
        )

    @abstractmethod
    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        """Indices of ``docs`` best first, and a score per doc (input order) or None."""


class _Listwise(Reranker):
    """The listwise prompt and its parsing, shared by full, sliding and psc."""

    def __init__(
        self,
        llm: LLM,
        *,
        passage_tokens: int = 100,
        min_passage_tokens: int = 16,
        tokens_per_id: int = 5,
    ) -> None:
        if passage_tokens < min_passage_tokens or min_passage_tokens < 1:
            raise ConfigError("need passage_tokens >= min_passage_tokens >= 1")
        self.llm = llm
        self.passage_tokens = passage_tokens
        self.min_passage_tokens = min_passage_tokens
        self.tokens_per_id = tokens_per_id

    def _call(self, query: str, docs: Sequence[Doc], diag: Diagnostics) -> list[int]:
        """One listwise call over ``docs``; the permutation of ``range(len(docs))``."""
        n = len(docs)
        max_tokens = n * self.tokens_per_id + 8
        budget = self._budget(query, n, max_tokens)
        lines = "".join(f"[{i + 1}] {self._cut(d.text, budget)}\n" for i, d in enumerate(docs))
        user = f"Query: {query}\n\n{lines}\n{_INSTRUCTION.format(n=n)}"
        messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]
        done = self.llm.generate(messages, max_tokens=max_tokens, temperature=0.0)
        diag.calls += 1
        diag.input_tokens += done.usage.prompt_tokens
        diag.output_tokens += done.usage.completion_tokens
        order, stats = parse_permutation(done.text, n)
        diag.parse.add(stats)
        return order

    def _budget(self, query: str, n: int, max_tokens: int) -> int:
        """Tokens per passage such that the prompt and the answer fit the context."""
        overhead = self.llm.count_tokens(
            [
                {"role": "system", "content": _SYSTEM},
                {"role": "user", "content": f"Query: {query}\n\n\n{_INSTRUCTION.format(n=n)}"},
            ]
        )
        room = self.llm.n_ctx - overhead - max_tokens - n * 4  # "[i] " and newline per line
        budget = min(self.passage_tokens, room // n)
        if budget < self.min_passage_tokens:
            raise ContextOverflowError(
                f"{n} candidates do not fit one listwise prompt in n_ctx={self.llm.n_ctx} with "
                f"at least {self.min_passage_tokens} tokens each. Fix: strategy 'sliding' "
                "(windows of 20), fewer candidates (--top-k), or a model with a larger context",
                prompt_tokens=overhead + n * self.min_passage_tokens,
                max_tokens=max_tokens,
                n_ctx=self.llm.n_ctx,
            )
        return budget

    def _cut(self, text: str, budget: int) -> str:
        return cut_text(self.llm, text, budget)


def cut_text(llm: LLM, text: str, budget: int) -> str:
    """``text`` cut to ``budget`` tokens (words when the backend cannot tokenize)."""
    if not llm.supports_tokenize:
        words = text.split()
        return " ".join(words[:budget])
    tokens = llm.tokenize(text)
    if len(tokens) <= budget:
        return " ".join(text.split())
    try:
        return " ".join(llm.detokenize(tokens[:budget]).split())
    except (NotImplementedError, UnsupportedError):  # a backend whose tokens are one-way
        return " ".join(text.split()[:budget])


class FullReranker(_Listwise):
    """All candidates in one listwise call."""

    name = "full"

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        return self._call(query, docs, diag), None


class SlidingReranker(_Listwise):
    """RankGPT's sliding window: windows of ``window`` from the bottom up, moving by ``step``."""

    name = "sliding"

    def __init__(
        self, llm: LLM, *, window: int = 20, step: int = 10, passes: int = 1, **options: Any
    ) -> None:
        super().__init__(llm, **options)
        if not 1 <= step <= window or window < 2 or passes < 1:
            raise ConfigError("need window >= 2, 1 <= step <= window and passes >= 1")
        self.window, self.step, self.passes = window, step, passes

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        order = list(range(len(docs)))
        for _ in range(self.passes):
            end = len(order)
            while True:
                start = max(0, end - self.window)
                part = order[start:end]
                local = self._call(query, [docs[i] for i in part], diag)
                order[start:end] = [part[j] for j in local]
                if start == 0:
                    break
                end -= self.step
        return order, None


class PSCReranker(_Listwise):
    """Permutation self-consistency: ``full`` on ``k`` shuffles (from the canonical order, by
    passage text), aggregated by Borda count."""

    name = "psc"

    def __init__(self, llm: LLM, *, k: int = 5, seed: int = 0, **options: Any) -> None:
        super().__init__(llm, **options)
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self.k, self.seed = k, seed

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        canonical = canonical_order(docs, key=lambda d: (d.text, d.id))
        rng = random.Random(self.seed)
        rankings = []
        for _ in range(self.k):
            shown = canonical[:]
            rng.shuffle(shown)
            local = self._call(query, [docs[i] for i in shown], diag)
            rankings.append([docs[shown[j]].text + "\x00" + docs[shown[j]].id for j in local])
        keyed = {docs[i].text + "\x00" + docs[i].id: i for i in range(len(docs))}
        return [keyed[key] for key in borda(rankings)], None


class SetwiseReranker(Reranker):
    """Order-invariant listwise scoring in one pass (see the module docstring)."""

    name = "setwise"

    def __init__(self, llm: LLM, *, passage_tokens: int = 100, calibrate: bool = False) -> None:
        if not llm.supports_sequences:
            raise UnsupportedError(
                f"setwise needs KV sequences (a local llama.cpp model); {type(llm).__name__} "
                "has none. Fix: strategy 'psc' (reduces order dependence) or 'full'"
            )
        sequence_model(llm, "setwise reranking")  # the set decode needs the whole contract
        self.llm, self.passage_tokens, self.calibrate = llm, passage_tokens, calibrate
        self._labels: list[tuple[str, int]] | None = None

    def labels(self) -> list[tuple[str, int]]:
        """(word, token) pairs: words that are one token after a space, also inside the
        ``"Passage <word>:"`` header each item carries (so the answer's next token is it)."""
        if self._labels is None:
            head = self.llm.tokenize("Passage")
            found: list[tuple[str, int]] = []
            used: set[int] = set()
            for word in _LABEL_WORDS:
                tokens = self.llm.tokenize(" " + word)
                if len(tokens) != 1 or tokens[0] in used:
                    continue
                if self.llm.tokenize(f"Passage {word}:")[: len(head) + 1] != head + tokens:
                    continue
                used.add(tokens[0])
                found.append((word, tokens[0]))
            self._labels = found
        return self._labels

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        labels = self.labels()
        if len(docs) > len(labels):
            raise ConfigError(
                f"setwise labels {len(labels)} candidates at most with this tokenizer, got "
                f"{len(docs)}. Fix: pre-select with --top-k, or strategy 'pointwise'"
            )
        canonical = canonical_order(docs, key=lambda d: (d.text, d.id))
        label_of = {index: labels[rank] for rank, index in enumerate(canonical)}
        texts = [cut_text(self.llm, d.text, self.passage_tokens) for d in docs]
        words = [label_of[i][0] for i in range(len(docs))]
        logits = self._label_logits(query, words, texts, diag)
        if self.calibrate:  # contextual calibration: the labels' logits with empty passages
            logits = logits - self._label_logits(query, words, None, diag)
        scores = [float(logits[label_of[i][1]]) for i in range(len(docs))]
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], canonical.index(i)))
        return order, scores

    def _label_logits(
        self, query: str, words: list[str], texts: list[str] | None, diag: Diagnostics
    ) -> Any:
        items = [
            f"Passage {w}: {texts[i] if texts is not None else 'N/A'}\n"  # N/A: content-free
            for i, w in enumerate(words)
        ]
        prompt = SetPrompt.from_chat(
            self.llm,
            f"Query: {query}\n\nPassages:\n",
            items,
            "\nWhich passage is the most relevant to the query? Answer with its name.",
            system=_SYSTEM,
            answer_prefix="Passage",
        )
        diag.calls += 1
        diag.input_tokens += self.llm.count_tokens(prompt)
        return self.llm.logits(prompt).astype(np.float64)


class PointwiseReranker(Reranker):
    """Each passage alone: log P(" yes") that it is relevant (needs next-token logits)."""

    name = "pointwise"

    def __init__(self, llm: LLM, *, passage_tokens: int = 200) -> None:
        if not llm.supports_logits:
            raise UnsupportedError(
                f"pointwise needs next-token logits; {type(llm).__name__} has none. Fix: "
                "strategy 'full', 'psc' or 'biencoder'"
            )
        self.llm, self.passage_tokens = llm, passage_tokens
        yes = [t for w in (" yes", "yes", " Yes", "Yes") if len(t := llm.tokenize(w)) == 1]
        if not yes:
            raise UnsupportedError(f"'yes' is not one token in {llm.name}")
        self._yes = sorted({t[0] for t in yes})

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        scores = []
        render = self.llm.render_chat if isinstance(self.llm, ChatRenderer) else None
        for doc in docs:
            passage = cut_text(self.llm, doc.text, self.passage_tokens)
            messages = [
                {
                    "role": "user",
                    "content": f"Query: {query}\nPassage: {passage}\n\n"
                    "Is the passage relevant to the query? Answer yes or no.",
                }
            ]
            prompt: Any = render(messages) + "Answer:" if render is not None else messages
            logits = self.llm.logits(prompt).astype(np.float64)
            logz = float(np.log(np.exp(logits - logits.max()).sum()) + logits.max())
            scores.append(float(np.logaddexp.reduce(logits[self._yes])) - logz)
            diag.calls += 1
            diag.input_tokens += self.llm.count_tokens(prompt)
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
        return order, scores


class BiEncoderReranker(Reranker):
    """Cosine similarity of sentence embeddings (default: the bundled MiniLM)."""

    name = "biencoder"

    def __init__(self, embedder: Embedder | None = None) -> None:
        from memora.embed import load_embedder

        self.embedder = embedder if embedder is not None else load_embedder()

    def _rank(
        self, query: str, docs: list[Doc], diag: Diagnostics
    ) -> tuple[list[int], Sequence[float] | None]:
        vectors = self.embedder.encode([query] + [d.text for d in docs])
        scores = [float(s) for s in vectors[1:] @ vectors[0]]
        diag.calls += 1
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
        return order, scores


STRATEGIES: Mapping[str, type[Reranker]] = {
    "full": FullReranker,
    "sliding": SlidingReranker,
    "setwise": SetwiseReranker,
    "pointwise": PointwiseReranker,
    "biencoder": BiEncoderReranker,
    "psc": PSCReranker,
}


def load_reranker(strategy: str, llm: LLM | None = None, **options: Any) -> Reranker:
    """The reranker for ``strategy`` (``biencoder`` needs no model; the others need ``llm``)."""
    cls = STRATEGIES.get(strategy)
    if cls is None:
        raise ConfigError(f"unknown strategy {strategy!r}; strategies: {', '.join(STRATEGIES)}")
    if cls is BiEncoderReranker:
        return BiEncoderReranker(**options)
    if llm is None:
        raise ConfigError(f"strategy {strategy!r} needs a model; pass llm=load_model(...)")
    return cls(llm, **options)  # type: ignore[call-arg]

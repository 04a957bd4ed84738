"""Multiple choice without order bias: :func:`choose`.

Methods:

- ``"likelihood"`` (needs KV sequences): each option's length-normalized log-likelihood as the
  answer to the question. The question is decoded once and the options as parallel items, so
  the scores are identical, bit for bit, for every order of the options.
- ``"label"`` (needs KV sequences): the model sees every option as a :class:`SetPrompt` item with
  its label written inside the item, and each option scores the next-token logit of its label.
  Labels follow the options, not the slots: they are given in a canonical order (sorted option
  text), so reordering the input changes nothing.
- ``"psc"`` (any backend): permutation self-consistency. The model answers a plain lettered
  prompt ``k`` times, the options shuffled each time, and the votes are counted. The shuffles
  start from the canonical order, so the result does not depend on the input order; but every
  single answer still does depend on the order it was shown in, so this only averages the
  model's order bias out. It reduces order dependence; it does not remove it.
- ``"plain"`` (any backend): one plain lettered prompt in the given order, the baseline. It is
  order-dependent.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import ascii_uppercase
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from memora import templates
from memora.errors import ConfigError, EmptyQueryError, UnsupportedError
from memora.llm.sequence import canonical_order, sequence_model
from memora.llm.set_prompt import ChatRenderer, SetPrompt

if TYPE_CHECKING:
    from memora.llm.base import LLM

__all__ = ["Choice", "Method", "choose"]

Method = Literal["likelihood", "label", "psc", "plain"]
_METHODS = ("likelihood", "label", "psc", "plain")
_TEXT: dict[str, str] = templates.data("memora.prompting", "choose")
_INSTRUCTION = _TEXT["instruction"]
_ANSWER = _TEXT["answer"]


@dataclass(frozen=True)
class Choice:
    """The chosen option, a score per option (in the input order) and how they were made.

    Scores: mean token log-probability (``likelihood``), label logit (``label``, ``plain``),
    share of votes (``psc``). Higher is better.
    """

    option: str
    index: int
    scores: tuple[float, ...]
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "option": self.option,
            "index": self.index,
            "scores": list(self.scores),
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Choice:
        return cls(
            option=data["option"],
            index=int(data["index"]),
            scores=tuple(float(s) for s in data["scores"]),
            method=str(data["method"]),
        )


def choose(
    llm: LLM,
    question: str,
    options: Sequence[str],
    *,
    method: Method = "likelihood",
    k: int = 5,
    seed: int = 0,
    keep_cache: bool = False,
) -> Choice:
    """Pick the best of ``options`` for ``question`` (see the module docstring for methods).

    ``k`` and ``seed`` apply to ``psc``: the number of shuffled orders and how they are drawn.
    ``keep_cache`` (``likelihood``): score beside the model's cached prompts instead of on a
    cleared cache (:meth:`LlamaCppLLM.sequences <memora.llm.LlamaCppLLM.sequences>`), so a
    choice between two long calls does not make the next one start cold.
    """
    opts = _check(question, options, method, k)
    if method in ("likelihood", "label") and not llm.supports_sequences:
        raise UnsupportedError(
            f"method {method!r} needs KV sequences (a local llama.cpp model); "
            f"{type(llm).__name__} has none. Use method='psc' for an approximate answer"
        )
    if method == "likelihood":
        scores = _likelihood(llm, question, opts, keep_cache)
    elif method == "label":
        scores = _label(llm, question, opts)
    elif method == "plain":
        scores = _letter_scores(llm, question, opts)
    else:
        scores = _psc(llm, question, opts, k, seed)
    best = _argmax_stable(scores, opts)
    return Choice(option=opts[best], index=best, scores=tuple(scores), method=method)


def _check(question: str, options: Sequence[str], method: str, k: int) -> list[str]:
    if method not in _METHODS:
        raise ConfigError(f"unknown method {method!r}; methods: {', '.join(_METHODS)}")
    if isinstance(options, str):
        raise ConfigError("options must be a list of strings, not one string")
    opts = list(options)
    if not question.strip():
        raise EmptyQueryError("the question is empty; pass the question to choose for")
    if not 2 <= len(opts) <= len(ascii_uppercase):
        raise ConfigError(f"choose needs 2 to {len(ascii_uppercase)} options, got {len(opts)}")
    if any(not isinstance(o, str) or not o.strip() for o in opts):
        raise ConfigError("every option must be a non-empty string")
    if len({o.strip() for o in opts}) != len(opts):
        raise ConfigError("options must be distinct")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    return opts


def _canonical(options: Sequence[str]) -> list[int]:
    return canonical_order(options)


def _argmax_stable(scores: Sequence[float], options: Sequence[str]) -> int:
    """The best score; ties go to the canonically first option, whatever the input order."""
    return max(_canonical(options), key=lambda i: (scores[i], -_canonical(options).index(i)))


def _question_turn(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def _likelihood(llm: LLM, question: str, options: list[str], keep: bool) -> list[float]:
    model = sequence_model(llm, "choose(method='likelihood')")
    logprobs = model.continuation_logprobs(_question_turn(question), options, keep_slots=keep)
    return [float(np.mean(lp)) for lp in logprobs]


def _labels(n: int) -> list[str]:
    return list(ascii_uppercase[:n])


def _label_tokens(llm: LLM, labels: Sequence[str]) -> list[int]:
    """The token each label answer starts with (``" A"``), checked to be one token each."""
    ids = []
    for label in labels:
        tokens = llm.tokenize(" " + label)
        if len(tokens) != 1:
            tokens = llm.tokenize(label)
        if len(tokens) != 1:
            raise UnsupportedError(f"label {label!r} is not a single token in {llm.name}")
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise UnsupportedError(f"labels share tokens in {llm.name}")
    return ids


def _label(llm: LLM, question: str, options: list[str]) -> list[float]:
    canonical = _canonical(options)
    labels = _labels(len(options))
    label_of = {index: labels[rank] for rank, index in enumerate(canonical)}
    head, items, tail = label_prompt_parts(
        question, [label_of[i] for i in range(len(options))], options
    )
    prompt = SetPrompt.from_chat(llm, head, items, tail, answer_prefix=_ANSWER)
    logits = llm.logits(prompt)
    tokens = _label_tokens(llm, labels)
    by_label = dict(zip(labels, tokens, strict=True))
    return [float(logits[by_label[label_of[i]]]) for i in range(len(options))]


def label_prompt_parts(
    question: str, labels: Sequence[str], options: Sequence[str]
) -> tuple[str, list[str], str]:
    """The lettered question in three parts: the head, one item per option (its label
    written inside) and the tail (the instruction)."""
    items = [
        templates.fill(_TEXT["item"], {"label": label, "option": option})
        for label, option in zip(labels, options, strict=True)
    ]
    head = templates.fill(_TEXT["head"], {"question": question})
    return head, items, templates.fill(_TEXT["tail"], {"instruction": _INSTRUCTION})


def letter_prompt(question: str, options: Sequence[str]) -> list[dict[str, str]]:
    """The plain lettered prompt, options in the given order (``plain`` and ``psc``)."""
    head, items, tail = label_prompt_parts(question, _labels(len(options)), options)
    return _question_turn(head + "".join(items) + tail)


def _letter_scores(llm: LLM, question: str, options: Sequence[str]) -> list[float]:
    """Score of each option in a plain lettered prompt, in the given order: label logits when
    the backend has logits, else 1 for the letter the model picks (JSON enum) and 0 otherwise."""
    labels = _labels(len(options))
    if llm.supports_logits:
        prompt: Any = letter_prompt(question, options)
        if isinstance(llm, ChatRenderer):
            prompt = llm.render_chat(prompt) + _ANSWER
        logits = llm.logits(prompt)
        return [float(logits[t]) for t in _label_tokens(llm, labels)]
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": labels}},
        "required": ["answer"],
    }
    answer = llm.generate_json(
        letter_prompt(question, options), schema, temperature=0, max_tokens=16
    )["answer"]
    return [1.0 if label == answer else 0.0 for label in labels]


def _psc(llm: LLM, question: str, options: list[str], k: int, seed: int) -> list[float]:
    canonical = _canonical(options)
    rng = random.Random(seed)
    votes = [0.0] * len(options)
    for _ in range(k):
        order = canonical[:]
        rng.shuffle(order)
        scores = _letter_scores(llm, question, [options[i] for i in order])
        winner = order[max(range(len(order)), key=lambda slot: scores[slot])]
        votes[winner] += 1.0
    return [v / k for v in votes]

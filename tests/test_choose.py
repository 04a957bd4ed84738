"""Multiple choice without order bias."""

from __future__ import annotations

import itertools

import pytest

from memora import ConfigError, UnsupportedError
from memora.llm import LLM
from memora.llm.llamacpp import LlamaCppLLM
from memora.prompting import Choice, borda, choose, kemeny, majority

QUESTION = "Which animal is the largest?"
OPTIONS = ["A house cat", "The blue whale", "An ant", "A small brown mouse from the garden"]


def reorder(scores: tuple[float, ...], order: tuple[int, ...]) -> tuple[float, ...]:
    return tuple(scores[i] for i in order)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["likelihood", "label"])
def test_choice_is_identical_for_every_order(local_llm: LlamaCppLLM, method: str) -> None:
    reference = choose(local_llm, QUESTION, OPTIONS, method=method)  # type: ignore[arg-type]
    assert reference.method == method and reference.option in OPTIONS
    for order in itertools.permutations(range(len(OPTIONS))):
        got = choose(local_llm, QUESTION, [OPTIONS[i] for i in order], method=method)  # type: ignore[arg-type]
        assert got.option == reference.option
        assert got.scores == reorder(reference.scores, order)  # bit for bit


@pytest.mark.slow
def test_psc_on_the_remote_backend_is_invariant_to_input_order(remote_llm: LLM) -> None:
    first = choose(remote_llm, QUESTION, OPTIONS, method="psc", k=3, seed=5)
    assert abs(sum(first.scores) - 1.0) < 1e-9
    flipped = choose(remote_llm, QUESTION, OPTIONS[::-1], method="psc", k=3, seed=5)
    assert flipped.option == first.option
    assert flipped.scores == first.scores[::-1]


@pytest.mark.slow
def test_label_and_likelihood_need_sequences(remote_llm: LLM) -> None:
    with pytest.raises(UnsupportedError, match="psc"):
        choose(remote_llm, QUESTION, OPTIONS, method="likelihood")


@pytest.mark.slow
def test_plain_method_answers_in_the_given_order(local_llm: LlamaCppLLM) -> None:
    choice = choose(local_llm, QUESTION, OPTIONS, method="plain")
    assert choice.option in OPTIONS and len(choice.scores) == 4


def test_bad_choices(local_llm: LlamaCppLLM) -> None:
    with pytest.raises(ConfigError, match="2 to 26"):
        choose(local_llm, QUESTION, ["only one"])
    with pytest.raises(ConfigError, match="distinct"):
        choose(local_llm, QUESTION, ["same", "same"])
    with pytest.raises(ConfigError, match="unknown method"):
        choose(local_llm, QUESTION, OPTIONS, method="vote")  # type: ignore[arg-type]


def test_choice_round_trip() -> None:
    choice = Choice(option="b", index=1, scores=(0.25, 0.75), method="psc")
    assert Choice.from_dict(choice.to_dict()) == choice


def test_aggregation_of_rankings() -> None:
    rankings = [["a", "b", "c"], ["a", "c", "b"], ["b", "a", "c"]]
    assert borda(rankings) == ["a", "b", "c"]
    assert kemeny(rankings) == ["a", "b", "c"]
    for shuffled in itertools.permutations(rankings):
        assert borda(list(shuffled)) == borda(rankings)
        assert kemeny(list(shuffled)) == kemeny(rankings)
    assert majority(["x", "y", "y", "x"]) == "x"  # tie: the smallest
    big = [list(range(10)), list(range(10))[::-1], list(range(10))]
    assert kemeny(big) == list(range(10))
    with pytest.raises(ConfigError, match="permutation"):
        borda([["a", "b"], ["a", "c"]])

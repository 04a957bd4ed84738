"""The one prompt renderer: one pass over the template, user text never substituted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memora import templates

TEMPLATE = 'Plan: {plan}\nMemory: {memory}\nJSON stays: {"a": 1} and { spaced }'


@given(plan=st.text(), memory=st.text())
def test_values_are_inserted_verbatim_and_never_rescanned(plan: str, memory: str) -> None:
    out = templates.fill(TEMPLATE, {"plan": plan, "memory": memory})
    assert out == f'Plan: {plan}\nMemory: {memory}\nJSON stays: {{"a": 1}} and {{ spaced }}'


def test_braces_in_values_stay_as_written() -> None:
    out = templates.fill("{a}|{b}", {"a": "{b}", "b": "{a}"})
    assert out == "{b}|{a}"


def test_a_placeholder_without_a_value_is_a_bug() -> None:
    with pytest.raises(KeyError, match="plan"):
        templates.fill("Plan: {plan}", {"memory": "x"})


def test_templates_are_package_data_without_the_final_newline() -> None:
    text = templates.template("memora.recurrent", "chooser")
    assert not text.endswith("\n")
    assert templates.placeholders(text) == {"memory"}

"""Prompt templates: every prompt memora sends is a text file of package data
(``<package>/prompts/<name>.txt``), filled by one renderer.

The renderer replaces each ``{key}`` of the *template* with its value in one pass over the
template, so text inside a value (a premise or a document that says ``{plan}``) is never
substituted. Braces that are not a ``{word}`` (JSON in an example answer) stay as written. A
placeholder without a value is a bug in memora and raises ``KeyError``. A file's final newline
is not part of the prompt; every other character is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["data", "fill", "placeholders", "render", "template"]

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@cache
def template(package: str, name: str) -> str:
    """The text of ``<package>/prompts/<name>.txt``, without its final newline."""
    text = resources.files(package).joinpath(f"prompts/{name}.txt").read_text("utf-8")
    return text[:-1] if text.endswith("\n") else text


@cache
def data(package: str, name: str) -> Any:
    """The JSON value in ``<package>/prompts/<name>.json`` (word lists, label sets)."""
    return json.loads(resources.files(package).joinpath(f"prompts/{name}.json").read_text("utf-8"))


def placeholders(text: str) -> set[str]:
    """The keys that ``text`` asks for."""
    return set(_PLACEHOLDER.findall(text))


def fill(text: str, values: Mapping[str, object]) -> str:
    """``text`` with each ``{key}`` replaced by ``str(values[key])``, in one pass."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"the prompt template needs {{{key}}}, which was not given")
        return str(values[key])

    return _PLACEHOLDER.sub(value, text)


def render(package: str, name: str, /, **values: object) -> str:
    """The template ``name`` of ``package`` filled with ``values``."""
    return fill(template(package, name), values)

"""Set-based prompts: a prefix, a set of items whose order must not matter, and a suffix.

On a backend with KV sequences (``supports_sequences``), every item starts at the same position
and sees only the prefix and itself; the suffix and everything generated see every item. The
output is then the same, bit for bit, for every order of the items ("Set-Based Prompting",
McIlroy-Young et al., 2024).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from memora.errors import ConfigError

__all__ = ["ChatRenderer", "SetPrompt"]


@runtime_checkable
class ChatRenderer(Protocol):
    """A model that renders its chat template locally (a :class:`SequenceModel` does)."""

    def render_chat(self, prompt: Any, *, add_generation_prompt: bool = True) -> str: ...


_SLOT = "\x00memora-set\x00"


@dataclass(frozen=True, init=False)
class SetPrompt:
    """``prefix``, then the ``items`` in parallel, then ``suffix``.

    ``rendered`` marks a prefix and suffix that already carry a chat template's markup (see
    :meth:`from_chat`); the backend then adds no BOS token of its own.
    """

    prefix: str
    items: tuple[str, ...]
    suffix: str
    rendered: bool = False

    def __init__(
        self, prefix: str, items: Sequence[str], suffix: str, *, rendered: bool = False
    ) -> None:
        if isinstance(items, str):
            raise ConfigError("items must be a list of strings, not one string")
        items = tuple(items)
        if not items:
            raise ConfigError("a SetPrompt needs at least one item")
        if any(not isinstance(item, str) or not item for item in items):
            raise ConfigError("every item must be a non-empty string")
        if not suffix:
            raise ConfigError(
                "a SetPrompt needs a non-empty suffix: the suffix is what sees every item"
            )
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "suffix", suffix)
        object.__setattr__(self, "rendered", rendered)

    @classmethod
    def from_chat(
        cls,
        llm: object,
        before: str,
        items: Sequence[str],
        after: str,
        *,
        system: str | None = None,
        answer_prefix: str = "",
    ) -> SetPrompt:
        """A user turn ``before + <items> + after`` in ``llm``'s chat template; the suffix ends
        with the assistant turn's opening (plus ``answer_prefix``, text the answer starts with).
        """
        if not isinstance(llm, ChatRenderer):
            raise ConfigError(
                f"{type(llm).__name__} cannot render its chat template locally; build the "
                "SetPrompt from plain strings"
            )
        messages: list[Mapping[str, Any]] = []
        if system is not None:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": before + _SLOT + after})
        text = llm.render_chat(messages)
        head, sep, tail = text.partition(_SLOT)
        if not sep:  # pragma: no cover - a template that drops the user's text
            raise ConfigError("the chat template dropped the user turn; use plain strings")
        return cls(head, items, tail + answer_prefix, rendered=True)

    def ordered(self, order: Sequence[int]) -> SetPrompt:
        """The same prompt with its items in ``order`` (indices into :attr:`items`)."""
        return SetPrompt(
            self.prefix, [self.items[i] for i in order], self.suffix, rendered=self.rendered
        )

    def concatenated(self) -> str:
        """The plain prompt: prefix, the items in their listed order, suffix. Order-dependent."""
        return self.prefix + "".join(self.items) + self.suffix

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "items": list(self.items),
            "suffix": self.suffix,
            "rendered": self.rendered,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SetPrompt:
        return cls(
            data["prefix"], data["items"], data["suffix"], rendered=bool(data.get("rendered"))
        )

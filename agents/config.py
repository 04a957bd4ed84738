"""The memory agent's options, as one checked value: :class:`AgentConfig`.

``MemoryAgent(llm, store, user_id="u", k=3)`` and
``MemoryAgent(llm, store, user_id="u", config=AgentConfig(k=3))`` make the same agent; keyword
options override the config's fields, and a name that is not a field fails with the nearest
valid one (``temprature=0.3`` is an error, not a silent no-op).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memora import templates
from memora.errors import ConfigError, ExtractionError, unknown_option
from memora.llm.base import LLM
from memora.memory.options import ABSTAIN_BELOW

from .core import DEFAULT_BLOCKS

if TYPE_CHECKING:
    from memora.memory.store import MemoryStore

__all__ = ["DEFAULT_SYSTEM", "AgentConfig"]

#: The agent's system text (``agents/prompts/system.txt``).
DEFAULT_SYSTEM: str = templates.template("memora.agents", "system")

#: What ``MemoryAgent`` takes besides its options (for the suggestion of a misspelled name).
_ARGUMENTS = ("scope", "user_id", "agent_id", "session_id", "config")


@dataclass(frozen=True)
class AgentConfig:
    """How a :class:`~memora.agents.MemoryAgent` retrieves, prompts, answers and extracts.

    Attributes:
        system: the system text (core blocks are added under it).
        k: memories in the prompt; ``candidates``: hits retrieved before reranking.
        mode: the store's search mode (``hybrid``, ``dense``, ``lexical``).
        neural_weight: > 0 expands the query with the scope's neural memory (a store opened
            with ``neural=True``).
        reranker: a :class:`memora.rank.Reranker` that reorders the candidates.
        neighbours: each recalled memory brings up to this many memories written before and
            after it in its session (the turns around a fact), placed right after it.
        recent_turns: earlier turns of this session kept in the prompt (budget allowing);
            earlier sessions come back through retrieval (their messages are memories).
        max_tokens: the answer's cap; ``context_budget``: prompt + answer tokens (default the
            model's context).
        core_blocks: core memory blocks and their size limits.
        extract: extract facts after each turn; ``extractor_llm``: a separate model for it;
            ``max_retries``: repair attempts after a refused extraction answer.
        store_messages: also store each user message (not bare questions) as a memory, so it
            is found even when no fact was extracted from it. With neither, turns stay
            ``pending`` in the journal for an agent that extracts.
        update_similarity: an extracted update replaces a memory only when the two texts are
            at least this similar (cosine); otherwise the fact is added and the old one kept.
        tools: with a model that calls tools (``supports_tools``), offer memory_search,
            memory_add and the core-memory tools; ``first_tool`` forces that tool in the first
            round (for models that do not choose tools by themselves); ``max_tool_rounds``:
            model calls per turn at most.
        abstain: a question about the user's own past that no memory in reach answers (none
            at least ``abstain_below`` similar: by default the store's calibrated floor,
            :data:`~memora.memory.options.ABSTAIN_BELOW`) gets a fixed "I don't know" without
            a model call (``Reply.abstained``); general questions always go to the model.
        temperature, repeat_penalty, seed: the answer's sampling (llama.cpp servers take
            repeat_penalty only with ``OpenAILLM(sampling_extras=True)``).
        on_error: called (in the worker thread) with each failed extraction.
    """

    system: str = DEFAULT_SYSTEM
    k: int = 5
    candidates: int = 20
    mode: str = "hybrid"
    neural_weight: float = 0.0
    reranker: Any = field(default=None, hash=False)
    neighbours: int = 0
    recent_turns: int = 6
    max_tokens: int = 200
    context_budget: int | None = None
    core_blocks: Mapping[str, int] = field(default_factory=lambda: DEFAULT_BLOCKS, hash=False)
    extract: bool = True
    store_messages: bool = True
    extractor_llm: LLM | None = field(default=None, hash=False)
    max_retries: int = 2
    update_similarity: float = 0.5
    tools: bool = False
    first_tool: str | None = None
    max_tool_rounds: int = 3
    abstain: bool = True
    abstain_below: float = ABSTAIN_BELOW
    temperature: float = 0.3
    repeat_penalty: float = 1.15
    seed: int = 0
    on_error: Callable[[ExtractionError], None] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if (
            self.k < 1
            or self.candidates < self.k
            or self.recent_turns < 0
            or self.max_tool_rounds < 1
        ):
            raise ConfigError(
                "need k >= 1, candidates >= k, recent_turns >= 0, max_tool_rounds >= 1"
            )

    @classmethod
    def names(cls) -> list[str]:
        """The option names, in order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def build(cls, base: AgentConfig | None = None, **options: Any) -> AgentConfig:
        """``base`` (default: the defaults) with ``options``; an unknown option name raises
        :class:`~memora.errors.InvalidOptionError` with the nearest valid one."""
        names = cls.names()
        for name in options:
            if name not in names:
                raise unknown_option(name, [*names, *_ARGUMENTS], "MemoryAgent")
        return dataclasses.replace(base or cls(), **options)

    def check(self, llm: LLM, store: MemoryStore) -> None:
        """Refuse options that ``llm`` or ``store`` cannot serve."""
        if self.tools and not llm.supports_tools:
            raise ConfigError(
                f"tools=True needs a model that calls tools; {type(llm).__name__} does not "
                "(supports_tools is False). Use an OpenAI-compatible endpoint, or tools=False"
            )
        if self.neural_weight > 0 and store.neural is None:
            raise ConfigError(
                "neural_weight needs a store with a neural memory: open it with "
                "MemoryStore(path, neural=True), or leave neural_weight at 0"
            )

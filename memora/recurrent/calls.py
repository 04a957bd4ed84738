"""The story engine's model calls: the paragraph (free text, streamed) and the summary and
plans (JSON-schema constrained), each repaired a bounded number of times, in their own KV
cache slots (``writer``, ``planner``) so that alternating calls keep each other's prefix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memora.errors import OutputValidationError, StepError
from memora.llm.base import Completion
from memora.llm.structured import repair_messages
from memora.recurrent.messages import (
    Messages,
    finished_plan,
    memory_problem,
    paragraph_problem,
    plans_problem,
    whole_sentences,
)
from memora.recurrent.types import Step

if TYPE_CHECKING:
    from memora.llm.base import LLM
    from memora.recurrent.types import StoryOptions

__all__ = ["StepCalls", "Usage"]


@dataclass
class Usage:
    """Token accounting over the calls of one step."""

    prompt: int = 0
    evaluated: int = 0
    completion: int = 0
    retries: int = 0

    def add(self, done: Completion) -> None:
        self.prompt += done.usage.prompt_tokens
        self.evaluated += done.usage.evaluated_prompt_tokens
        self.completion += done.usage.completion_tokens


class StepCalls:
    """The two calls of a step; mixed into :class:`~memora.recurrent.engine.StoryEngine`."""

    llm: LLM
    options: StoryOptions
    _base: int  # this step's first seed

    if TYPE_CHECKING:  # the engine's prompt hook

        def plan_schema(self) -> dict[str, Any]: ...

    def _slot(self, role: str) -> str | None:
        return role if self.options.cache_slots else None

    def _write_paragraph(self, messages: Messages, last: Step | None, usage: Usage,
                         on_text: Callable[[str], None] | None = None) -> str:  # fmt: skip
        def attempt(msgs: Messages, n: int) -> tuple[str, str]:
            with self.llm.stream(
                msgs, max_tokens=self.options.paragraph_tokens,
                temperature=self.options.temperature, seed=self._base + n, repeat_penalty=1.15,
                cache_slot=self._slot("writer"),
            ) as stream:  # fmt: skip
                if on_text is not None:
                    for piece in stream:
                        on_text(piece)
                done = stream.result()
            usage.add(done)
            text = whole_sentences(done.text) if done.finish_reason == "length" else done.text
            return text, paragraph_problem(text, last, messages[-1]["content"])

        return self._repair_loop("paragraph", messages, attempt, usage)

    def _plan(self, messages: Messages, memory: str, paragraph: str, head: Step | None,
              usage: Usage, on_text: Callable[[str], None] | None = None,
              ) -> tuple[str, list[str], bool]:  # fmt: skip
        result: dict[str, Any] = {}

        def attempt(msgs: Messages, n: int) -> tuple[str, str]:
            try:
                done = self.llm.complete_json(
                    msgs, self.plan_schema(), retries=0, max_tokens=self.options.plan_tokens,
                    temperature=min(self.options.temperature, 0.7), seed=self._base + n,
                    repeat_penalty=1.3,  # small models copy one plan three times
                    on_text=on_text, cache_slot=self._slot("planner"),
                )  # fmt: skip
            except OutputValidationError as exc:
                for completion in exc.completions:
                    usage.add(completion)  # type: ignore[arg-type]
                return exc.outputs[-1], exc.errors[-1]
            usage.add(done.completions[-1])
            data = done.data
            problem = plans_problem(data["plans"], head)
            result.update(data)
            return str(data), problem

        self._repair_loop("summary and plans", messages, attempt, usage)
        summary = result["summary"].strip()
        problem = memory_problem(summary, memory, self.options.memory_chars)
        plans = [finished_plan(p) for p in result["plans"]]
        return (memory, plans, True) if problem else (summary, plans, False)  # keep the old one

    def _repair_loop(
        self,
        what: str,
        messages: Messages,
        attempt: Callable[[Messages, int], tuple[str, str]],
        usage: Usage,
    ) -> str:
        """Call ``attempt`` until it reports no problem, at most ``max_retries`` more times,
        each retry told what was wrong. Then :class:`StepError`."""
        msgs = list(messages)
        outputs: list[str] = []
        for n in range(self.options.max_retries + 1):
            text, problem = attempt(msgs, n)
            outputs.append(text)
            if not problem:
                return text.strip()
            usage.retries += 1 if n < self.options.max_retries else 0
            msgs = repair_messages(messages, text, problem)
        seeds = f"seeds {self._base}-{self._base + n}" if n else f"seed {self._base}"
        raise StepError(
            f"the model gave no usable {what} in {n + 1} attempts ({seeds}; last problem: "
            f"{problem}); the story is unchanged. Try again (the next try uses other seeds), "
            "raise the token caps, or use a stronger model",
            outputs=outputs,
        )

"""RecurrentGPT-style language recurrence: long stories written one step at a time.

A step reads a short-term memory (a bounded summary), the last paragraph, one plan and the
earlier paragraphs that the memory store retrieves for that plan; it writes the next paragraph
(free text), then a new summary and three candidate plans (JSON-schema constrained). A person,
or the model standing in for one, picks the next plan.

Unlike the reference code: every output is validated and every call has a token cap; failed
outputs get a bounded number of repair attempts and then a typed error that leaves the story as
it was; the outline stays in every prompt; a new summary replaces the old one only when it
passes its checks; every paragraph is embedded once; steps are saved as they complete, with
undo, branching and edits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from memora._sqlite import Database
from memora.embed import Embedder
from memora.errors import ConfigError, OutputValidationError, StepError
from memora.llm.base import LLM
from memora.memory.store import MemoryStore
from memora.prompting.choose import Method, choose
from memora.recurrent.bible import LoreChange, apply_changes
from memora.recurrent.budget import check_story_fits
from memora.recurrent.calls import StepCalls, Usage
from memora.recurrent.interactive import Interactive
from memora.recurrent.lore import Lorebook, LoreEntry, render_lore
from memora.recurrent.messages import (
    Messages,
    plan_schema,
    planner_messages,
    planner_turns,
    render,
    story_context,
    writer_messages,
)
from memora.recurrent.storyfile import StoryFile
from memora.recurrent.types import ChosenBy, Premise, Step, StepStats, StoryOptions

__all__ = ["StoryEngine", "render"]


class StoryEngine(StepCalls, Interactive):
    """Writes, saves and edits one story in a story file.

    Args:
        llm: any :class:`~memora.llm.LLM` (JSON-schema output for the summary and plans).
        path: the story file (SQLite); it also holds the long-term memory.
        embedder: for the long-term memory (default: the bundled MiniLM).
        options: a :class:`StoryOptions` (retrieval depth, retries, token caps, memory size,
            temperature, seed); keyword arguments named like its fields change single
            options (``StoryEngine(llm, path, top_k=5)``) and are read back as attributes
            (``engine.top_k``). :meth:`configure` changes them later.
        neural: a what-comes-next neural memory (:mod:`memora.memory.neural`): each paragraph
            is written as the value of the one before it, and retrieval also pools the
            paragraphs near ``M(last paragraph)``, the memory's guess of what follows.
    """

    def __init__(
        self,
        llm: LLM,
        path: str | Path,
        *,
        embedder: Embedder | None = None,
        neural: bool = False,
        options: StoryOptions | None = None,
        **changes: Any,
    ) -> None:
        self.options = StoryOptions.build(options, **changes)
        self.llm = llm
        self.db = Database(path)  # one connection: a step and its memory commit together
        try:
            self.file = StoryFile(path, db=self.db)
            self.store = MemoryStore(path, embedder=embedder, neural=neural, db=self.db)
            self.lore = Lorebook(self.db)  # world info: entries inserted when triggered
        except BaseException:
            self.db.close()
            raise
        self.neural = neural
        self._base = self.options.seed  # this step's first seed
        self._swipe = 0  # the alternative a swipe is writing (another seed for each)
        if self.file.exists:
            self._index_missing()

    @property
    def top_k(self) -> int:
        return self.options.top_k

    @property
    def max_retries(self) -> int:
        return self.options.max_retries

    @property
    def paragraph_tokens(self) -> int:
        return self.options.paragraph_tokens

    @property
    def plan_tokens(self) -> int:
        return self.options.plan_tokens

    @property
    def memory_chars(self) -> int:
        return self.options.memory_chars

    @property
    def temperature(self) -> float:
        return self.options.temperature

    @property
    def seed(self) -> int:
        return self.options.seed

    # -- lifecycle -----------------------------------------------------------------------

    def configure(self, *, llm: LLM | None = None, **changes: Any) -> None:
        """Use another model or other :class:`StoryOptions` (``temperature``, ``top_k``,
        ``seed``...) from the next step on; checked as the constructor checks them, and
        nothing changes when one is refused."""
        options = StoryOptions.build(self.options, **changes)
        if llm is not None:
            self.llm = llm
        self.options = options

    def create(self, premise: Premise) -> None:
        """Make this an empty story with ``premise``; :meth:`step` then writes the opening.
        Raises :class:`ContextOverflowError` (nothing written) when a step with this premise
        and outline would not fit the model's context."""
        check_story_fits(self.llm, premise, [], self.options)
        self.file.init(premise, uuid.uuid4().hex)

    def close(self) -> None:
        self.store.close()
        self.file.close()
        self.db.close()

    def __enter__(self) -> StoryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------

    @property
    def premise(self) -> Premise:
        return self.file.premise

    @property
    def head(self) -> Step | None:
        head = self.file.head_id
        return None if head is None else self.file.step(head)

    def path(self) -> list[Step]:
        """The current branch, opening first."""
        return self.file.path_to(self.file.head_id)

    def export_markdown(self) -> str:
        return self.file.export_markdown()

    # -- writing -------------------------------------------------------------------------

    def step(
        self,
        plan: str | None = None,
        *,
        chosen_by: ChosenBy | None = None,
        on_text: Callable[[str], None] | None = None,
        on_plan_text: Callable[[str], None] | None = None,
    ) -> Step:
        """Write the next paragraph (the opening when the story is empty).

        ``plan``: the plan to follow; None lets the model pick among the head's three plans
        (for the opening: a default opening plan).
        ``on_text``: called with the paragraph's text pieces as they are generated (a retry
        streams again from its start); an exception it raises stops the step, unchanged.
        ``on_plan_text``: the same for the raw JSON of the summary-and-plans call (to show
        progress, or to stop the step while it plans).
        Raises :class:`StepError` (the story unchanged) when output stays unusable; the next
        step tries other seeds (a count of failed steps is kept in the story file).
        """
        self._base = self.seed + 1000 * self.file.failed_steps + 100 * self._swipe
        try:
            return self._step(plan, chosen_by, on_text, on_plan_text)
        except StepError:
            self.file.count_failed_step()
            raise

    def _step(self, plan: str | None, chosen_by: ChosenBy | None,
              on_text: Callable[[str], None] | None,
              on_plan_text: Callable[[str], None] | None) -> Step:  # fmt: skip
        started = time.perf_counter()
        head = self.head
        usage = Usage()
        if head is None:
            plan, chosen_by = plan or render("opening_plan"), "opening"
        elif plan is None:
            plan = self.choose_plan(head)
            chosen_by = "model"
        elif not plan.strip():
            raise ConfigError("the plan is empty")
        retrieved = self._retrieve(plan, head)
        memory = head.memory if head else "(nothing yet)"
        lore = render_lore(self._triggered(f"{plan}\n{memory}\n{head.paragraph if head else ''}"))
        continued = self.options.layout == "continued"
        writer = self.writer_messages(self._context(), memory, retrieved, head, plan, lore=lore,
                                      note=self.file.author_note, continued=continued)  # fmt: skip
        paragraph = self._write_paragraph(writer, head, usage, on_text)
        planner = (planner_turns(writer, paragraph) if continued
                   else self.planner_messages(self._context(), memory, paragraph))  # fmt: skip
        new_memory, plans, kept = self._plan(planner, memory, paragraph, head, usage,
                                             on_plan_text)  # fmt: skip
        changes = self._bible(paragraph)
        return self._save(
            changes,
            Step(
                id=0,
                parent_id=head.id if head else None,
                depth=head.depth + 1 if head else 1,
                plan=plan,
                chosen_by=chosen_by or "person",
                paragraph=paragraph,
                memory=new_memory,
                plans=tuple(plans),
                retrieved=tuple(s.id for s in retrieved),
                stats=StepStats(
                    prompt_tokens=usage.prompt,
                    evaluated_tokens=usage.evaluated,
                    completion_tokens=usage.completion,
                    seconds=round(time.perf_counter() - started, 3),
                    retries=usage.retries,
                    memory_kept=kept,
                ),
            ),
        )

    def _save(self, changes: list[LoreChange], step: Step) -> Step:
        """Write the step, move the head, index its paragraph and apply the story bible's
        grounded changes, in one transaction: a crash leaves all or none."""
        with self.db.write():
            applied, rejected = apply_changes(self.lore, changes, step.paragraph, mode="auto")
            stats = replace(step.stats, lore_applied=len(applied), lore_rejected=len(rejected))
            saved = self.file.add_step(replace(step, stats=stats))
            self._index(saved)
        return saved

    def choose_plan(self, head: Step) -> str:
        """The model's pick among ``head``'s plans (order-invariant where the backend allows)."""
        method: Method = "likelihood" if self.llm.supports_sequences else "psc"
        question = render("chooser", memory=head.memory)
        picked = choose(self.llm, question, list(head.plans), method=method, k=3, seed=self.seed,
                        keep_cache=self.options.cache_slots)  # fmt: skip
        return picked.option

    # -- editing -------------------------------------------------------------------------

    def undo(self) -> Step | None:
        """Move the head back one step (the undone step stays, as a branch); returns the head."""
        head = self.head
        if head is None:
            raise ConfigError("the story is empty: nothing to undo")
        self.file.set_head(head.parent_id)
        return self.head

    def branch(self, step_id: int) -> Step:
        """Continue from ``step_id``: the next step starts a new branch there."""
        self.file.set_head(step_id)
        head = self.head
        assert head is not None
        return head

    def edit_paragraph(self, step_id: int, text: str) -> None:
        """Rewrite a paragraph; later steps retrieve and read the new text."""
        self.file.edit(step_id, "paragraph", text)
        memory_id = self.file.memory_id(step_id)
        if memory_id is not None:
            self.store.update(memory_id, text, agent_id=self._scope, actor="edit")

    def edit_memory(self, text: str) -> None:
        """Rewrite the current short-term memory; the next step reads it."""
        head = self.head
        if head is None:
            raise ConfigError("the story is empty: there is no memory to edit yet")
        self.file.edit(head.id, "memory", text)

    def pin(self, fact: str) -> None:
        """Keep ``fact`` in every prompt from now on."""
        if not fact.strip():
            raise ConfigError("the fact is empty")
        pinned = [*self.file.pinned, fact.strip()]
        check_story_fits(self.llm, self.premise, pinned, self.options)
        self.file.set_pinned(pinned)

    # -- prompts -------------------------------------------------------------------------

    @property
    def _scope(self) -> str:
        return f"story:{self.file.story_id}"

    def _context(self) -> str:
        return story_context(self.premise, self.file.pinned)

    def writer_messages(self, context: str, memory: str, retrieved: list[Step],
                        last: Step | None, plan: str, *, lore: str = "", note: str = "",
                        continued: bool = False) -> Messages:  # fmt: skip
        """The paragraph prompt (:func:`memora.recurrent.messages.writer_messages`)."""
        return writer_messages(context, memory, retrieved, last, plan, lore=lore, note=note,
                               continued=continued)  # fmt: skip

    def planner_messages(self, context: str, memory: str, paragraph: str) -> Messages:
        """The summary-and-plans prompt (:func:`memora.recurrent.messages.planner_messages`)."""
        return planner_messages(context, memory, paragraph)

    def _triggered(self, text: str) -> list[LoreEntry]:
        budget = self.options.lore_budget
        return self.lore.triggered(text, budget=budget, count_tokens=self.llm.count_tokens)

    def _bible(self, paragraph: str) -> list[LoreChange]:
        """The story bible's proposals in autonomous mode (applied in :meth:`_save` when
        grounded); an unusable answer proposes nothing."""
        if self.options.bible != "auto":
            return []
        try:
            return self._proposals(paragraph)
        except OutputValidationError:
            return []

    def plan_schema(self) -> dict[str, Any]:
        return plan_schema(self.memory_chars)

    # -- long-term memory ----------------------------------------------------------------

    def _retrieve(self, plan: str, head: Step | None) -> list[Step]:
        """Earlier paragraphs of this branch related to the plan and the last paragraph, in
        story order (a stable order keeps the prompt prefix reusable)."""
        if head is None or self.top_k == 0:
            return []
        branch = {s.id: s for s in self.file.path_to(head.parent_id)}  # the last is in the prompt
        if not branch:
            return []
        hits = self.store.search(
            f"{plan}\n{head.paragraph}",
            agent_id=self._scope,
            k=max(self.top_k * 4, 12),
            neural_weight=1.0 if self.neural else 0.0,
            neural_query=head.paragraph,
        )
        chosen: list[Step] = []
        for hit in hits:
            step_id = hit.record.metadata.get("step_id")
            if step_id in branch and branch[step_id] not in chosen:
                chosen.append(branch[step_id])
            if len(chosen) == self.top_k:
                break
        return sorted(chosen, key=lambda s: s.depth)

    def _index(self, step: Step) -> None:
        """Embed a new paragraph once into the long-term memory."""
        before = self.file.step(step.parent_id) if step.parent_id is not None else None
        result = self.store.add(
            step.paragraph,
            agent_id=self._scope,
            metadata={"step_id": step.id},
            actor="story",
            cue=before.paragraph if before is not None else None,
        )
        self.file.set_memory_id(step.id, result.record.id)

    def _index_missing(self) -> None:
        for step in self.file.unindexed():
            self._index(step)

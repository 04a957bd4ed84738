"""Quality of long autonomous stories: memora's story engine vs a rolling-window baseline.

On the bundled SmolLM2-135M-Instruct, for each premise: a ``--steps``-step autonomous story with
the story engine (short-term memory, long-term retrieval, model-chosen plans) and the same
number of paragraphs from a rolling-window baseline (the premise and the last 2 paragraphs, no
memories). Reported: steps completed, failed steps and repair retries, words per paragraph,
repetition (distinct-2 / distinct-3 over the story; the share of 4-grams repeated from earlier
paragraphs), short-term memory size, prompt tokens evaluated per step, seconds per step, and a
recall probe: facts planted in the opening plan, asked about at the end and answered from what
each method keeps (memora: retrieved paragraphs + short-term memory; baseline: its window).

Two more parts (any of the three is skipped with 0):

``--slots-compare N``: the same premise for N steps with KV cache slots on and off
(``cache_slots``), two engines on two model instances stepping alternately in one process, so
machine noise hits both: cache share per step (1 - evaluated / prompt tokens), seconds per step
and the speed-up off / on. Writes bench/results/story_slots.json.

``--long N``: one N-step autonomous run with cache slots and ``bible="auto"``, five facts planted
as lore entries before the first step, and the rolling-window baseline stepping alternately with
it (its seconds are the control for machine noise); in a second thread, up to ``--recall-at``
steps and never ahead of the lore run, an engine with no lore entries (the facts only in the
opening plan). At ``--recall-at``
the five facts are asked of both engines and the baseline. Reported: failed steps, seconds per
step (steps 10-19 vs the last 10, a least-squares slope, each also over the baseline's), short-
term memory size, lore changes applied / rejected, cache share, repetition, the recall probe.
Writes bench/results/story_long.json (rewritten every 10 steps with ``"complete": false``);
``--deadline HH:MM`` starts no step that would end after that time.

    python bench/story.py [--steps 30] [--slots-compare 15] [--long 100] [--threads 1]

Writes bench/results/story.json (``--steps``), story_slots.json and story_long.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from memora.llm import load_model
from memora.llm.base import LLM
from memora.llm.llamacpp import LlamaCppLLM
from memora.recurrent import Premise, StepError, StoryEngine
from memora.recurrent.lore import render_lore

RESULTS = Path(__file__).resolve().parent / "results" / "story.json"
SLOTS_RESULTS = RESULTS.with_name("story_slots.json")
LONG_RESULTS = RESULTS.with_name("story_long.json")
MODEL = "SmolLM2-135M-Instruct.Q4_1 (bundled)"
N_CTX = 4096
PARAGRAPH_TOKENS = 220

PREMISES = [
    {
        "premise": Premise(
            "A lighthouse keeper finds a message in a bottle that predicts the next storm.",
            title="The Bottle at Gull Rock",
            genre="mystery",
            outline="1. The bottle arrives. 2. The storm comes true. 3. The keeper finds the "
            "writer.",
        ),
        "opening": "Open the story: introduce Mara, the keeper of Gull Rock lighthouse. Her old "
        "boat is called the Heron and her dog is named Pepper.",
        "probes": [
            ("What is the name of Mara's boat?", "heron"),
            ("What is the name of Mara's dog?", "pepper"),
            ("What is the name of the lighthouse?", "gull rock"),
        ],
    },
]


# The long run: five facts, each planted in the opening plan (all engines) and, for the lore run,
# as a lore entry before the first step. A probe is answered when its fact is in the reply.
LONG_CASE: dict[str, Any] = {
    "premise": PREMISES[0]["premise"],
    "opening": "Open the story: introduce Ada Vell, the keeper of Gull Rock lighthouse. Her old "
    "boat is called the Heron, her dog is named Pepper, and the great storm of her childhood "
    "was called the Long Night.",
    "lore": [
        ("Heron", "Ada Vell's old wooden boat, moored below the lighthouse.", ("Heron", "boat")),
        ("Pepper", "Ada Vell's dog, a black and white sheepdog.", ("Pepper", "dog")),
        ("Ada Vell", "The keeper of Gull Rock lighthouse.", ("Ada", "Vell", "keeper")),
        (
            "Gull Rock",
            "The lighthouse where Ada Vell lives, on a rock off the coast.",
            ("Gull Rock", "lighthouse"),
        ),
        (
            "the Long Night",
            "The great storm of Ada Vell's childhood; it wrecked many boats.",
            ("Long Night", "storm"),
        ),
    ],
    "probes": [
        ("What is the name of the keeper's boat?", "heron"),
        ("What is the name of the keeper's dog?", "pepper"),
        ("What is the name of the lighthouse keeper?", "vell"),
        ("What is the name of the lighthouse?", "gull rock"),
        ("What was the great storm called?", "long night"),
    ],
}


def words(text: str) -> list[str]:
    return [w.strip(".,;:!?\"'()").lower() for w in text.split() if w.strip(".,;:!?\"'()")]


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def repetition(paragraphs: list[str]) -> dict[str, float]:
    all_words = [w for p in paragraphs for w in words(p)]
    out = {}
    for n in (2, 3):
        grams = ngrams(all_words, n)
        out[f"distinct_{n}"] = round(len(set(grams)) / max(1, len(grams)), 4)
    seen: set[tuple[str, ...]] = set()
    repeated = total = 0
    for paragraph in paragraphs:
        grams = ngrams(words(paragraph), 4)
        repeated += sum(g in seen for g in grams)
        total += len(grams)
        seen.update(grams)
    out["repeated_4gram_share"] = round(repeated / max(1, total), 4)
    return out


def answer(llm: LLM, context: str, question: str) -> str:
    prompt = [
        {"role": "user", "content": f"{context}\n\nQuestion: {question}\nAnswer in a few words."}
    ]
    return llm.generate(prompt, temperature=0, max_tokens=16).text


def run_memora(llm: LlamaCppLLM, case: dict[str, Any], steps: int, path: Path) -> dict[str, Any]:
    engine = StoryEngine(llm, path, paragraph_tokens=220)
    engine.create(case["premise"])
    failures = 0
    done: list[Any] = []
    for i in range(steps):
        plan = case["opening"] if i == 0 else None
        try:
            done.append(engine.step(plan))
        except StepError:
            failures += 1
            engine.configure(seed=engine.seed + 1000)  # one more try, as the CLI does
            try:
                done.append(engine.step(plan))
            except StepError:
                failures += 1
                break
    paragraphs = [s.paragraph for s in done]
    probes = []
    for question, fact in case["probes"]:
        hits = engine.store.search(question, agent_id=engine._scope, k=3)
        memory = done[-1].memory if done else ""
        context = "Notes: " + memory + "\n" + "\n".join(h.record.text for h in hits)
        reply = answer(llm, context, question)
        probes.append(
            {
                "question": question,
                "fact": fact,
                "fact_in_opening": fact in paragraphs[0].lower() if paragraphs else False,
                "fact_in_context": fact in context.lower(),
                "answer": reply,
                "answered": fact in reply.lower(),
            }
        )
    engine.close()
    return {
        "steps_completed": len(done),
        "failed_steps": failures,
        "repair_retries": sum(s.stats.retries for s in done),
        "memory_kept_steps": sum(s.stats.memory_kept for s in done),
        "words_per_paragraph": round(statistics.mean(len(p.split()) for p in paragraphs), 1),
        **repetition(paragraphs),
        "memory_chars_per_step": [len(s.memory) for s in done],
        "prompt_tokens_per_step_mean": round(
            statistics.mean(s.stats.prompt_tokens for s in done), 1
        ),
        "evaluated_tokens_per_step_mean": round(
            statistics.mean(s.stats.evaluated_tokens for s in done), 1
        ),
        "seconds_per_step_mean": round(statistics.mean(s.stats.seconds for s in done), 2),
        "probes": probes,
        "story": paragraphs,
    }


class Baseline:
    """The rolling-window baseline: the premise and the last 2 paragraphs, no memories."""

    def __init__(self, llm: LLM, case: dict[str, Any]) -> None:
        self.llm, self.case = llm, case
        self.paragraphs: list[str] = []
        self.seconds: list[float] = []
        self.evaluated: list[int] = []

    def step(self) -> None:
        premise: Premise = self.case["premise"]
        i = len(self.paragraphs)
        window = "\n\n".join(self.paragraphs[-2:]) or "(the story has not started)"
        task = self.case["opening"] if i == 0 else "Continue the story with the next paragraph."
        prompt = [
            {"role": "system", "content": "You are a novelist writing a long story."},
            {"role": "user", "content": f"Premise: {premise.premise}\n\nStory so far:\n{window}"
             f"\n\nTask: {task} Write 80 to 150 words, past tense."},
        ]  # fmt: skip
        start = time.perf_counter()
        done = self.llm.generate(
            prompt, max_tokens=PARAGRAPH_TOKENS, temperature=0.8, seed=i, repeat_penalty=1.15
        )
        self.seconds.append(time.perf_counter() - start)
        self.evaluated.append(done.usage.evaluated_prompt_tokens)
        self.paragraphs.append(done.text.strip())

    def probes(self, probes: list[tuple[str, str]]) -> list[dict[str, Any]]:
        out = []
        for question, fact in probes:
            context = "\n\n".join(self.paragraphs[-2:])
            reply = answer(self.llm, context, question)
            out.append(
                {
                    "question": question,
                    "fact": fact,
                    "fact_in_opening": fact in self.paragraphs[0].lower(),
                    "fact_in_context": fact in context.lower(),
                    "answer": reply,
                    "answered": fact in reply.lower(),
                }
            )
        return out


def run_baseline(llm: LlamaCppLLM, case: dict[str, Any], steps: int) -> dict[str, Any]:
    base = Baseline(llm, case)
    for _ in range(steps):
        base.step()
    paragraphs = base.paragraphs
    return {
        "steps_completed": len(paragraphs),
        "words_per_paragraph": round(statistics.mean(len(p.split()) for p in paragraphs), 1),
        **repetition(paragraphs),
        "evaluated_tokens_per_step_mean": round(statistics.mean(base.evaluated), 1),
        "seconds_per_step_mean": round(statistics.mean(base.seconds), 2),
        "probes": base.probes(case["probes"]),
        "story": paragraphs,
    }


# -- shared by the slots comparison and the long run -----------------------------------------


GPU = {"layers": 0}  # --gpu-layers: layers offloaded to a GPU (needs a CUDA build of llama.cpp)


def load(threads: int) -> LLM:
    return load_model("default", n_ctx=N_CTX, n_threads=threads, seed=0, n_gpu_layers=GPU["layers"])


def commit_sha() -> str:
    given = os.environ.get("MEMORA_BENCH_COMMIT")  # a copy of the tree whose git is stale
    if given:
        return given
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha


def header(name: str, threads: int, llm: LLM) -> dict[str, Any]:
    return {
        "benchmark": name,
        "model": MODEL,
        "model_name": llm.name,
        "threads": threads,
        "n_ctx": N_CTX,
        "n_gpu_layers": GPU["layers"],
        "commit": commit_sha(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "llama_cpp_python": version("llama-cpp-python"),
            "gpu": os.environ.get("MEMORA_BENCH_GPU", "none"),
        },
    }


def log(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def cache_share(stats: Any) -> float:
    return 1 - stats.evaluated_tokens / stats.prompt_tokens if stats.prompt_tokens else 0.0


def mean(values: list[float], digits: int = 2) -> float | None:
    return round(statistics.mean(values), digits) if values else None


def slope(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of y on x."""
    if len(points) < 2:
        return None
    mx = statistics.mean(x for x, _ in points)
    my = statistics.mean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def drift(seconds: dict[int, float], first: int = 10) -> dict[str, Any]:
    """Seconds per step from step ``first`` on (1-based step numbers): steps 10-19 vs the last
    10, and a least-squares slope."""
    later = sorted((n, s) for n, s in seconds.items() if n >= first)
    early = [s for n, s in later if n < first + 10]
    last = [s for _, s in later[-10:]]
    fit = slope([(float(n), s) for n, s in later])
    return {
        "steps_in_fit": len(later),
        "seconds_steps_10_19_mean": mean(early),
        "seconds_last_10_mean": mean(last),
        "last_10_over_10_19": round(statistics.mean(last) / statistics.mean(early), 3)
        if early and last
        else None,
        "slope_seconds_per_step_per_step": round(fit, 4) if fit is not None else None,
        "slope_share_of_10_19_mean_per_step": round(fit / statistics.mean(early), 5)
        if fit is not None and early
        else None,
    }


class Run:
    """One engine's autonomous run, a step at a time; a failed step is counted and the run goes
    on (the engine tries other seeds on the next step)."""

    def __init__(self, label: str, engine: StoryEngine, case: dict[str, Any]) -> None:
        self.label, self.engine, self.case = label, engine, case
        self.done: list[Any] = []
        self.attempts = 0
        self.failed = 0
        self.wall: dict[int, float] = {}  # attempt number (1-based) -> seconds, completed ones

    def step(self) -> Any:
        self.attempts += 1
        plan = self.case["opening"] if not self.done else None
        start = time.perf_counter()
        try:
            step = self.engine.step(plan)
        except StepError as exc:
            self.failed += 1
            log(self.label, f"step {self.attempts} failed: {str(exc)[:120]}")
            return None
        self.wall[self.attempts] = time.perf_counter() - start
        self.done.append(step)
        st = step.stats
        log(
            self.label,
            f"step {self.attempts}: {self.wall[self.attempts]:.1f}s",
            f"prompt {st.prompt_tokens} evaluated {st.evaluated_tokens}",
            f"share {cache_share(st):.2f} memory {len(step.memory)}",
            f"lore +{getattr(st, 'lore_applied', 0)}/-{getattr(st, 'lore_rejected', 0)}",
        )
        return step

    def summary(self) -> dict[str, Any]:
        done = self.done
        paragraphs = [s.paragraph for s in done]
        stats = [s.stats for s in done]
        prompt = sum(s.prompt_tokens for s in stats)
        memory = [len(s.memory) for s in done]
        return {
            "steps_attempted": self.attempts,
            "steps_completed": len(done),
            "failed_steps": self.failed,
            "repair_retries": sum(s.retries for s in stats),
            "memory_kept_steps": sum(s.memory_kept for s in stats),
            "words_per_paragraph": mean([len(p.split()) for p in paragraphs], 1),
            **(repetition(paragraphs) if paragraphs else {}),
            "memory_chars_min": min(memory, default=None),
            "memory_chars_max": max(memory, default=None),
            "prompt_tokens_per_step_mean": mean([s.prompt_tokens for s in stats], 1),
            "evaluated_tokens_per_step_mean": mean([s.evaluated_tokens for s in stats], 1),
            "cache_share_per_step_mean": mean([cache_share(s) for s in stats], 3),
            "cache_share_all_tokens": round(1 - sum(s.evaluated_tokens for s in stats) / prompt, 3)
            if prompt
            else None,
            "seconds_per_step_mean": mean(list(self.wall.values())),
            "seconds_per_step_median": round(statistics.median(self.wall.values()), 2)
            if self.wall
            else None,
            "lore_applied": sum(getattr(s, "lore_applied", 0) for s in stats),
            "lore_rejected": sum(getattr(s, "lore_rejected", 0) for s in stats),
            "per_step": [
                {
                    "attempt": n,
                    "seconds": round(self.wall[n], 3),
                    "prompt_tokens": s.stats.prompt_tokens,
                    "evaluated_tokens": s.stats.evaluated_tokens,
                    "memory_chars": len(s.memory),
                    "lore_applied": getattr(s.stats, "lore_applied", 0),
                    "lore_rejected": getattr(s.stats, "lore_rejected", 0),
                }
                for n, s in zip(sorted(self.wall), done, strict=True)
            ],
            "story": paragraphs,
        }

    def probes(self, probes: list[tuple[str, str]], *, trigger_on_question: bool = False
               ) -> list[dict[str, Any]]:  # fmt: skip
        """The recall probe over what the engine keeps: short-term memory, the paragraphs
        retrieved for the question, and the lore entries that the question and that text
        trigger (``trigger_on_question``: the question alone)."""
        engine = self.engine
        paragraphs = [s.paragraph for s in self.done]
        out = []
        for question, fact in probes:
            hits = engine.store.search(question, agent_id=engine._scope, k=3)
            memory = self.done[-1].memory if self.done else ""
            text = "Notes: " + memory + "\n" + "\n".join(h.record.text for h in hits)
            lore = engine.lore.triggered(  # as the engine triggers lore for its prompts
                question if trigger_on_question else f"{question}\n{text}",
                budget=engine.options.lore_budget,
                count_tokens=engine.llm.count_tokens,
            )  # fmt: skip
            context = text + ("\nLore:\n" + render_lore(lore) if lore else "")
            reply = answer(engine.llm, context, question)
            out.append(
                {
                    "question": question,
                    "fact": fact,
                    "fact_in_opening": fact in paragraphs[0].lower() if paragraphs else False,
                    "fact_in_story": any(fact in p.lower() for p in paragraphs),
                    "fact_in_context": fact in context.lower(),
                    "lore_entries_in_context": [e.name for e in lore],
                    "answer": reply,
                    "answered": fact in reply.lower(),
                }
            )
        return out


# -- cache slots on / off ---------------------------------------------------------------------


def run_slots(steps: int, threads: int, out: Path) -> None:
    case = PREMISES[0]
    runs: dict[str, Run] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, slots in (("slots_on", True), ("slots_off", False)):
            engine = StoryEngine(
                load(threads), Path(tmp) / f"{label}.db", paragraph_tokens=PARAGRAPH_TOKENS,
                cache_slots=slots,
            )  # fmt: skip
            engine.create(case["premise"])
            runs[label] = Run(label, engine, case)
        for i in range(steps):
            order = ("slots_on", "slots_off") if i % 2 == 0 else ("slots_off", "slots_on")
            for label in order:  # alternate who goes first, so neither always runs warm
                runs[label].step()
        result = header("story_slots", threads, runs["slots_on"].engine.llm)
        summaries = {label: run.summary() for label, run in runs.items()}
        for run in runs.values():
            run.engine.close()
    on, off = summaries["slots_on"], summaries["slots_off"]
    paired = [
        off_step["seconds"] / on_step["seconds"]
        for on_step in on["per_step"]
        for off_step in off["per_step"]
        if on_step["attempt"] == off_step["attempt"]
    ]
    result.update(
        {
            "premise": case["premise"].to_dict(),
            "steps": steps,
            "speedup_off_over_on": round(
                off["seconds_per_step_mean"] / on["seconds_per_step_mean"], 3
            )
            if on["seconds_per_step_mean"] and off["seconds_per_step_mean"]
            else None,
            "speedup_paired_median": round(statistics.median(paired), 3) if paired else None,
            **summaries,
        }
    )
    for label in summaries:
        log(label, json.dumps({k: v for k, v in summaries[label].items()
                               if k not in ("story", "per_step")}))  # fmt: skip
    log("speed-up off/on", result["speedup_off_over_on"], "paired median",
        result["speedup_paired_median"])  # fmt: skip
    write(out, result)


# -- the long run -----------------------------------------------------------------------------


def run_long(steps: int, recall_at: int, threads: int, out: Path, deadline: float | None,
             log_every: int = 10) -> None:  # fmt: skip
    """The lore run and the baseline step alternately in this thread; the engine without lore
    runs in a second thread up to ``recall_at`` steps. With a ``deadline`` (epoch seconds) no
    step starts that would not end before it; the probe then runs where the runs stopped."""
    case = LONG_CASE
    recall_at = min(recall_at, steps)
    probes = case["probes"]
    with tempfile.TemporaryDirectory() as tmp:
        lore_engine = StoryEngine(
            load(threads), Path(tmp) / "lore.db", paragraph_tokens=PARAGRAPH_TOKENS,
            cache_slots=True, bible="auto",
        )  # fmt: skip
        lore_engine.create(case["premise"])
        for name, text, keys in case["lore"]:
            lore_engine.lore.add(name, text, keys=keys)
        planted = [e.to_dict() for e in lore_engine.lore.entries()]
        plain_engine = StoryEngine(
            load(threads), Path(tmp) / "plain.db", paragraph_tokens=PARAGRAPH_TOKENS,
            cache_slots=True,
        )  # fmt: skip
        plain_engine.create(case["premise"])
        lore_run = Run("lore", lore_engine, case)
        plain = Run("no-lore", plain_engine, case)
        base = Baseline(load(threads), case)
        base_wall: dict[int, float] = {}
        recall: dict[str, Any] = {}
        stop = threading.Event()
        errors: list[BaseException] = []

        def plain_steps() -> None:
            try:
                while plain.attempts < recall_at and not stop.is_set():
                    if plain.attempts >= lore_run.attempts:  # keep at most level with the lore run
                        time.sleep(0.5)
                        continue
                    plain.step()
            except Exception as exc:  # noqa: BLE001 - raised by the main thread
                errors.append(exc)

        worker = threading.Thread(target=plain_steps, name="no-lore")
        worker.start()
        started = time.time()
        stopped_early = False

        def probe() -> None:
            worker.join()
            if errors:
                raise errors[0]
            recall.update(
                {
                    "at_step": lore_run.attempts,
                    "without_lore_at_step": plain.attempts,
                    "with_lore": lore_run.probes(probes),
                    "with_lore_question_keys": lore_run.probes(probes, trigger_on_question=True),
                    "without_lore": plain.probes(probes),
                    "baseline_window": base.probes(probes) if base.paragraphs else [],
                    "without_lore_run": {k: v for k, v in plain.summary().items()
                                         if k not in ("per_step",)},
                }
            )  # fmt: skip
            for key in ("with_lore", "with_lore_question_keys", "without_lore", "baseline_window"):
                recall[f"{key}_answered"] = sum(p["answered"] for p in recall[key])
            log("recall", {k: v for k, v in recall.items() if k.endswith("answered")})
            plain_engine.close()

        def snapshot(complete: bool) -> dict[str, Any]:
            ours = lore_run.summary()
            ours["seconds_drift"] = drift(lore_run.wall)
            ours["lore_entries_end"] = [e.to_dict() for e in lore_engine.lore.entries()]
            ours["lore_history_by_actor"] = actors(lore_engine)
            paragraphs = base.paragraphs
            baseline = {
                "steps_completed": len(paragraphs),
                **(repetition(paragraphs) if paragraphs else {}),
                "words_per_paragraph": mean([len(p.split()) for p in paragraphs], 1),
                "evaluated_tokens_per_step_mean": mean([float(e) for e in base.evaluated], 1),
                "seconds_per_step_mean": mean(base.seconds),
                "seconds_drift": drift(base_wall),
                "story": paragraphs,
            }
            result = header("story_long", threads, lore_engine.llm)
            result.update(
                {
                    "complete": complete,
                    "stopped_at_deadline": stopped_early,
                    "minutes": round((time.time() - started) / 60, 1),
                    "premise": case["premise"].to_dict(),
                    "opening_plan": case["opening"],
                    "planted_lore": planted,
                    "steps": steps,
                    "recall_at": recall_at,
                    "engine_over_baseline_seconds": ratio(lore_run.wall, base_wall),
                    "engine_over_baseline_seconds_10_19": ratio(lore_run.wall, base_wall, 10, 19),
                    "engine_over_baseline_seconds_last_10": ratio(
                        lore_run.wall, base_wall, max(10, lore_run.attempts - 9)
                    ),
                    "lore_run": ours,
                    "baseline": baseline,
                    "recall": recall,
                }
            )
            return result

        last = 0.0
        for i in range(1, steps + 1):
            left = (deadline - time.time()) if deadline is not None else float("inf")
            reserve = 0.0 if recall else 300.0  # a no-lore step to end, the probe's 20 calls
            if left < 1.3 * last + reserve:
                stopped_early = True
                log(f"stopping before step {i}: {left:.0f}s left to the deadline")
                break
            began = time.perf_counter()
            lore_run.step()
            start = time.perf_counter()
            base.step()
            base_wall[i] = time.perf_counter() - start
            log("baseline", f"step {i}: {base_wall[i]:.1f}s")
            last = time.perf_counter() - began
            if i == recall_at:
                probe()
            if i % log_every == 0:
                write(out, snapshot(False))
        stop.set()
        if not recall:
            probe()
        result = snapshot(True)
        lore_engine.close()
    log("long", json.dumps({k: v for k, v in result["lore_run"].items()
                            if k not in ("story", "per_step", "lore_entries_end")}))  # fmt: skip
    write(out, result)


def ratio(ours: dict[int, float], base: dict[int, float], first: int = 1,
          last: int | None = None) -> float | None:  # fmt: skip
    """Engine seconds over baseline seconds, summed over the steps both completed in
    ``first..last``."""
    both = [n for n in ours if n in base and n >= first and (last is None or n <= last)]
    if not both:
        return None
    return round(sum(ours[n] for n in both) / sum(base[n] for n in both), 3)


def actors(engine: StoryEngine) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in engine.lore.history():
        key = f"{item.actor}:{item.action}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30, help="engine vs baseline (0: skip)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--slots-compare", type=int, default=15, metavar="N",
                        help="steps with cache slots on and off (0: skip)")  # fmt: skip
    parser.add_argument("--slots-out", type=Path, default=SLOTS_RESULTS)
    parser.add_argument("--long", type=int, default=100, metavar="N",
                        help="steps of the long run with lore (0: skip)")  # fmt: skip
    parser.add_argument("--deadline", default=None, metavar="HH:MM",
                        help="the long run starts no step that would end after this time "
                        "(today, local time)")  # fmt: skip
    parser.add_argument("--recall-at", type=int, default=50)
    parser.add_argument("--long-out", type=Path, default=LONG_RESULTS)
    parser.add_argument(
        "--gpu-layers", type=int, default=0, help="layers offloaded to a GPU, -1: all (CUDA build)"
    )
    args = parser.parse_args()
    GPU["layers"] = args.gpu_layers
    if args.steps:
        run_steps(args.steps, args.threads, args.out)
    if args.slots_compare:
        run_slots(args.slots_compare, args.threads, args.slots_out)
    if args.long:
        run_long(args.long, args.recall_at, args.threads, args.long_out, at(args.deadline))


def at(clock: str | None) -> float | None:
    """Epoch seconds of ``HH:MM`` today (local time)."""
    if clock is None:
        return None
    hours, minutes = (int(x) for x in clock.split(":"))
    now = time.localtime()
    return time.mktime((now.tm_year, now.tm_mon, now.tm_mday, hours, minutes, 0, 0, 0, -1))


def run_steps(steps: int, threads: int, out: Path) -> None:
    llm = LlamaCppLLM("default", n_ctx=N_CTX, n_threads=threads, seed=0)
    runs = []
    for case in PREMISES:
        with tempfile.TemporaryDirectory() as tmp:
            ours = run_memora(llm, case, steps, Path(tmp) / "story.db")
        base = run_baseline(llm, case, steps)
        runs.append({"premise": case["premise"].to_dict(), "memora": ours, "baseline": base})
        print(json.dumps({k: v for k, v in ours.items() if k not in ("story", "probes")}))
        print(json.dumps({k: v for k, v in base.items() if k not in ("story", "probes")}))
    result = {
        "benchmark": "story",
        "model": MODEL,
        "better_model": "none: no better instruct GGUF with a clear licence installs offline",
        "remote_model": "not configured",
        "steps": steps,
        "threads": threads,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "llama_cpp_python": version("llama-cpp-python"),
        },
        "runs": runs,
    }
    write(out, result)


if __name__ == "__main__":
    main()

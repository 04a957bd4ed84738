"""Neural-memory ablation: every candidate design against no neural memory and today's design,
in one run, on two tasks (issue 21, "Neural memory that earns its place").

(a) The retrieval benchmark (``bench/retrieval.py``'s data, ``bench/data/retrieval.json``): every
    turn is added in order, one ``MemoryStore.add`` per turn (a neural write step per turn; key:
    the turn itself), and every question is searched with ``mode="dense"`` and with the default
    options, ``neural_weight`` swept over ``--weights``. Per question type: recall@1/5/10 of the
    evidence turns (turns after ``asked_at`` dropped, as in ``retrieval.py``); for unanswerable
    questions the top similarity and the false-hit rate (top similarity >= the default abstain
    floor, 0.3: the search would answer).
    The question-keyed candidate writes, for a turn that is the evidence of a benchmark question
    with an even id number, that question as the turn's key (``cue=``); every other turn is its
    own key. Its keys are the benchmark's own questions, so it is scored on the questions with
    odd ids only (unseen: what the memory learned from other questions' keys must transfer),
    against no memory on the same questions; the seen half is reported as an oracle ceiling.
(b) The research-memories updates task (``bench/research_data.py``, 40 personas, seed 1): one add
    per turn, each candidate with the turn itself as key (``auto``) and with the assistant's
    question before the turn as key (``cue``: the question the turn answers); recall@1/3 of the
    current fact and the stale rate (the superseded turn above the current one in the top 10).

Embeddings: the bundled all-MiniLM-L6-v2 through a disk cache (``bench/.cache/``, git-ignored),
so every candidate sees the same vectors. Writes ``bench/results/neural_ablation.json`` and
``neural_ablation.png``.

    python bench/neural_ablation.py [--limit N] [--conversations N] [--personas N]
        [--parts retrieval,updates] [--candidates a,b] [--weights 0.25,0.5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import retrieval as rb  # noqa: E402
from research_data import conversations  # noqa: E402

from memora.memory.fusion import asks_latest  # noqa: E402
from memora.memory.neural import NeuralConfig  # noqa: E402
from memora.memory.options import ABSTAIN_BELOW  # noqa: E402
from memora.memory.store import MemoryStore  # noqa: E402

RESULTS = HERE / "results" / "neural_ablation.json"
CACHE = HERE / ".cache" / "neural_ablation_embeddings.npz"
TYPES = ("single-hop", "multi-hop", "temporal", "update", "paraphrase")
KS = (1, 5, 10)
#: candidate: (NeuralConfig overrides, or None for no neural memory; keys on the retrieval task)
CANDIDATES: dict[str, tuple[dict[str, Any] | None, str]] = {
    "no neural memory": (None, "auto"),
    "today (default config)": ({}, "auto"),
    "momentum 0.9": ({"momentum": 0.9}, "auto"),
    "window 8 (Omega)": ({"window": 8, "window_decay": 0.9}, "auto"),
    "window 16 (Omega)": ({"window": 16, "window_decay": 0.9}, "auto"),
    "huber 0.1": ({"loss": "huber", "huber_delta": 0.1}, "auto"),
    "two timescales": ({"lr": 0.004, "forget_half_life_steps": 200.0, "slow_lr": 0.001}, "auto"),
    "window 8 + momentum 0.9": ({"window": 8, "momentum": 0.9}, "auto"),
    "two timescales + momentum 0.9": (
        {"lr": 0.004, "forget_half_life_steps": 200.0, "slow_lr": 0.001, "momentum": 0.9}, "auto"),
    "hidden 64": ({"hidden": 64}, "auto"),
    "window 8 + hidden 64": ({"window": 8, "window_decay": 0.9, "hidden": 64}, "auto"),
    "question keys (today's config)": ({}, "question"),
    "question keys (window 8 + momentum 0.9)": ({"window": 8, "momentum": 0.9}, "question"),
}  # fmt: skip
MODES = {"dense": {"mode": "dense"}, "default": {}}


class CachedEmbedder:
    """The bundled MiniLM behind a text -> vector cache on disk; the model is loaded only when
    a text is missing from the cache."""

    def __init__(self, threads: int) -> None:
        self.threads, self.inner = threads, None
        self.cache: dict[str, np.ndarray] = {}
        self.name, self.dim = "all-MiniLM-L6-v2", 384
        if CACHE.is_file():
            with np.load(CACHE) as data:
                self.name, self.dim = str(data["name"]), int(data["dim"])
                self.cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        self.encoded = 0

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if self._key(t) not in self.cache))
        if missing:
            if self.inner is None:
                from memora.embed import load_embedder

                self.inner = load_embedder(threads=self.threads)
                self.name, self.dim = self.inner.name, self.inner.dim
            for start in range(0, len(missing), 1024):
                part = missing[start : start + 1024]
                for text, vec in zip(part, self.inner.encode(part), strict=True):
                    self.cache[self._key(text)] = np.asarray(vec, dtype=np.float32)
                self.encoded += len(part)
                print(f"  embedded {self.encoded} new texts", flush=True)
        return np.stack([self.cache[self._key(t)] for t in texts]).astype(np.float32)

    def save(self) -> None:
        if not self.encoded:
            return
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.cache)
        np.savez(CACHE, keys=np.array(keys), vectors=np.stack([self.cache[k] for k in keys]),
                 name=np.array(self.name), dim=np.array(self.dim))  # fmt: skip


def store_for(path: Path, embedder: CachedEmbedder, overrides: dict[str, Any] | None) -> Any:
    neural = False if overrides is None else NeuralConfig(**overrides)
    return MemoryStore(path, embedder=embedder, neural=neural)


# -- (a) the retrieval benchmark ---------------------------------------------------------------


def question_cues(data: dict[str, Any]) -> dict[str, str]:
    """Turn id -> the text of a benchmark question with an even id number whose last evidence
    turn it is (the first such question): the question-keyed candidate's keys."""
    cues: dict[str, str] = {}
    for q in data["questions"]:
        if q["evidence"] and int(q["id"][1:]) % 2 == 0:
            cues.setdefault(q["evidence"][-1], q["question"])
    return cues


def ingest(store: Any, data: dict[str, Any], cues: dict[str, str] | None) -> float:
    """One add per turn, in order; returns the seconds it took."""
    t0 = time.perf_counter()
    for conv in data["conversations"]:
        for session in conv["sessions"]:
            start = rb.epoch(session["date"])
            for i, turn in enumerate(session["turns"]):
                store.add(turn["text"], user_id=conv["id"], dedup=False, occurred_at=start + i,
                          metadata={"turn": turn["id"], "session": session["id"]},
                          cue=None if cues is None else cues.get(turn["id"]))  # fmt: skip
        print(f"    ingested {conv['id']}", flush=True)
    return time.perf_counter() - t0


def unanswerable(questions: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Top similarity of the unanswerable questions and how many the default floor would still
    answer (false hits), beside the answerable ones'."""
    by_id = {r["id"]: r for r in runs}
    out: dict[str, Any] = {}
    for label, pick in (("unanswerable", False), ("answerable", True)):
        tops = [by_id[q["id"]]["top"] or 0.0 for q in questions
                if q["id"] in by_id and bool(q["evidence"]) == pick]  # fmt: skip
        if tops:
            out[label] = {"n": len(tops), "top_similarity": round(statistics.fmean(tops), 4),
                          "answered_at_floor": round(sum(t >= ABSTAIN_BELOW for t in tops)
                                                     / len(tops), 4)}  # fmt: skip
    return out


def scored(questions: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    table = rb.score(questions, runs)
    out = {t: {k: table[t][k] for k in ("n", *(f"recall@{k}" for k in KS), "mrr")}
           for t in ("all", *TYPES) if t in table}  # fmt: skip
    if "new_above_stale" in table.get("update", {}):
        out["update"]["new_above_stale"] = table["update"]["new_above_stale"]
    out["unanswerable"] = unanswerable(questions, runs)
    out["latency_ms"] = table["latency_ms"]
    return out


def searches(weight_sweep: Sequence[float], neural: bool) -> dict[str, dict[str, Any]]:
    """The search configurations of a candidate: each mode at each weight (w 0 without one)."""
    weights = weight_sweep if neural else [0.0]
    out = {f"{mode} w={w:g}": {**opts, "neural_weight": w}
           for mode, opts in MODES.items() for w in weights}  # fmt: skip
    if not neural:  # the fusion a neural weight switches the default to (rank fusion)
        out["default+rrf w=0"] = {"fusion": "rrf", "neural_weight": 0.0}
    return out


def run_retrieval(args: argparse.Namespace, embedder: CachedEmbedder, tmp: Path) -> dict[str, Any]:
    data = rb.load()
    data["conversations"] = data["conversations"][: args.conversations]
    convs = {c["id"] for c in data["conversations"]}
    pool = [q for q in data["questions"] if q["conversation"] in convs]
    questions = rb.questions_of({"questions": pool}, args.limit)
    texts = [t["text"] for c in data["conversations"] for s in c["sessions"] for t in s["turns"]]
    embedder.encode(texts + [q["question"] for q in data["questions"]])
    embedder.save()
    times, cues = rb.turn_times(data), question_cues(data)
    unseen = [q for q in questions if int(q["id"][1:]) % 2 == 1]
    out: dict[str, Any] = {"questions": len(questions), "unseen_questions": len(unseen),
                           "conversations": len(convs), "candidates": {}}  # fmt: skip
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name, (overrides, keys) in CANDIDATES.items():
        if args.candidates and name not in args.candidates:
            continue
        print(f"retrieval: {name}", flush=True)
        with store_for(tmp / f"r{len(out['candidates'])}.db", embedder, overrides) as store:
            seconds = ingest(store, data, cues if keys == "question" else None)
            row: dict[str, Any] = {"config": overrides, "keys": keys, "ingest_s": round(seconds, 1)}
            for label, opts in searches(args.weights, overrides is not None).items():
                runs = rb.run_config(store, questions, opts, asked=True, times=times)
                raw.setdefault(name, {})[label] = runs
                row[label] = scored(questions, runs)
                if keys == "question" or name == "no neural memory":
                    row[f"{label} (unseen)"] = scored(unseen, runs)
                    seen = [q for q in questions if q not in unseen]
                    row[f"{label} (seen)"] = scored(seen, runs)
                print(f"  {label}: " + " ".join(f"{t} {row[label][t]['recall@10']:.3f}"
                      for t in ("all", *TYPES) if t in row[label]), flush=True)  # fmt: skip
        out["candidates"][name] = row
    gate_retrieval(out["candidates"], raw, questions, unseen)
    return out


def gated(plain: list[Any], neural: list[Any], asked: Sequence[str]) -> list[Any]:
    """What a search that applies the neural weight only to queries asking for the current
    state returns: the neural run's result for those, the plain run's for the others."""
    return [n if asks_latest(q) else p for p, n, q in zip(plain, neural, asked, strict=True)]


def gate_retrieval(rows: dict[str, Any], raw: dict[str, Any], questions: list[Any],
                   unseen: list[Any]) -> None:  # fmt: skip
    """The latest-gated configurations of every candidate (needs the no-memory runs)."""
    base = raw.get("no neural memory")
    if base is None:
        return
    asked = [q["question"] for q in questions]
    for name, labels in raw.items():
        for label, runs in list(labels.items()) if name != "no neural memory" else []:
            mode = label.split()[0]
            mixed = gated(base[f"{mode} w=0"], runs, asked)
            rows[name][f"{label} gated"] = scored(questions, mixed)
            if rows[name]["keys"] == "question":
                rows[name][f"{label} gated (unseen)"] = scored(unseen, mixed)


# -- (b) the research-memories updates task ----------------------------------------------------


def rank_of(texts: list[str], wanted: str) -> int | None:
    return texts.index(wanted) + 1 if wanted in texts else None


def updates_ranks(store: Any, probes: list[Any], opts: dict[str, Any]) -> list[Any]:
    """Per probe: the rank of the current turn and of the stale one in the top 10."""
    out = []
    for probe in probes:
        hits = [h.record.text for h in store.search(probe.question, user_id=probe.user, k=10,
                                                    **opts)]  # fmt: skip
        out.append((rank_of(hits, probe.current), probe.stale and rank_of(hits, probe.stale)))
    return out


def updates_scores(probes: list[Any], found: list[Any]) -> dict[str, Any]:
    ranks, stale = [new for new, _ in found], 0
    updated = [p for p in probes if p.stale is not None]
    for probe, (new, old) in zip(probes, found, strict=True):
        if probe.stale is not None:
            stale += old is not None and (new is None or old < new)
    return {
        **{f"recall@{k}": round(sum(r is not None and r <= k for r in ranks) / len(ranks), 3)
           for k in (1, 3, 10)},
        "stale_rate": round(stale / max(1, len(updated)), 3),
    }  # fmt: skip


def run_updates(args: argparse.Namespace, embedder: CachedEmbedder, tmp: Path) -> dict[str, Any]:
    chats, probes = conversations(args.personas, seed=args.seed)
    every = [t.text for turns in chats.values() for t in turns]
    every += [t.cue for turns in chats.values() for t in turns if t.cue]
    embedder.encode(every + [p.question for p in probes])
    embedder.save()
    out: dict[str, Any] = {"personas": args.personas, "seed": args.seed, "probes": len(probes),
                           "updated": sum(p.stale is not None for p in probes),
                           "candidates": {}}  # fmt: skip
    raw: dict[tuple[str, str], list[Any]] = {}
    for name, (overrides, _) in CANDIDATES.items():
        if (args.candidates and name not in args.candidates) or name.startswith("question"):
            continue
        for keys in ("auto", "cue") if overrides is not None else ("auto",):
            label = name if overrides is None else f"{name}, {keys} keys"
            print(f"updates: {label}", flush=True)
            with store_for(tmp / f"u{len(out['candidates'])}.db", embedder, overrides) as store:
                for user, turns in chats.items():
                    for turn in turns:  # one write per turn, as a chat would
                        store.add(turn.text, user_id=user,
                                  cue=turn.cue if keys == "cue" else None)  # fmt: skip
                row: dict[str, Any] = {"config": overrides, "keys": keys}
                for search, opts in searches(args.weights, overrides is not None).items():
                    raw[label, search] = updates_ranks(store, probes, opts)
                    row[search] = updates_scores(probes, raw[label, search])
                    base = raw.get(("no neural memory", f"{search.split()[0]} w=0"))
                    if base is not None and overrides is not None:
                        mixed = gated(base, raw[label, search], [p.question for p in probes])
                        row[f"{search} gated"] = updates_scores(probes, mixed)
                    print(f"  {search}: {row[search]} gated: {row.get(f'{search} gated')}",
                          flush=True)  # fmt: skip
                if overrides is not None:  # no option given: neural_latest_weight as shipped
                    row["store default"] = updates_scores(probes, updates_ranks(store, probes, {}))
                    print(f"  store default: {row['store default']}", flush=True)
            out["candidates"][label] = row
    return out


# -- (c) side effects: overshoot on a repeated pair, capacity on structureless pairs -----------


def run_side(args: argparse.Namespace, embedder: CachedEmbedder, tmp: Path) -> dict[str, Any]:
    """Per design, on random unit vectors (no embeddings): a pair written 40 times in a row
    after 50 others (its loss: lowest, last, and the largest rebound after the lowest), and 500
    structureless pairs written once each (recall@1 of each key's read among the 500 values)."""
    from memora.memory.neural import NeuralMemory

    rng = np.random.default_rng(0)
    noise = rng.standard_normal((1100, 384)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out: dict[str, Any] = {}
    for name, (overrides, keys) in CANDIDATES.items():
        if overrides is None or keys != "auto" or (args.candidates and name not in args.candidates):
            continue
        memory = NeuralMemory(384, NeuralConfig(**overrides))
        for i in range(50):
            memory.write(noise[i], noise[50 + i], at=float(i))
        losses = [memory.write(noise[1000], noise[1001], at=100.0 + t).scores[0].loss
                  for t in range(40)]  # fmt: skip
        low = int(np.argmin(losses))
        memory = NeuralMemory(384, NeuralConfig(**overrides))
        for i in range(500):
            memory.write(noise[i], noise[500 + i], at=float(i))
        hit = (memory.read(noise[:500]) @ noise[500:1000].T).argmax(axis=1) == np.arange(500)
        out[name] = {
            "repeat_first_loss": round(losses[0], 4), "repeat_lowest_loss": round(losses[low], 4),
            "repeat_last_loss": round(losses[-1], 4),
            "repeat_rebound": round(max(losses[low:]) - losses[low], 4),
            "random_pairs_recall@1": round(float(hit.mean()), 3),
        }  # fmt: skip
        print(f"side effects: {name}: {out[name]}", flush=True)
    return out


# -- the decision and the plot -----------------------------------------------------------------


def decide(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 21's rule per candidate and search configuration: some type's recall@10 (or the
    updates task's stale rate) better by >= 10% relative than no memory in the same mode, and
    no type's recall@10 lower by more than 1 point."""
    base = results.get("retrieval", {}).get("candidates", {}).get("no neural memory")
    upd = results.get("updates", {}).get("candidates", {})
    verdicts: dict[str, Any] = {}
    for name, row in results.get("retrieval", {}).get("candidates", {}).items():
        if base is None or row["config"] is None:
            continue
        for label in [k for k in row if " w=" in k and "(" not in k]:
            mode = label.split()[0]
            ref = base[f"{mode} w=0"] if row["keys"] == "auto" else base[f"{mode} w=0 (unseen)"]
            got = row[label] if row["keys"] == "auto" else row[f"{label} (unseen)"]
            delta = {t: round(got[t]["recall@10"] - ref[t]["recall@10"], 4)
                     for t in TYPES if t in got and t in ref}  # fmt: skip
            gains = [t for t in delta if delta[t] >= 0.1 * ref[t]["recall@10"] and delta[t] > 0]
            stale = _stale_gain(upd, name, mode, label)
            if stale is not None and stale["relative"] <= -0.10:
                gains.append(f"stale rate ({stale['keys']} keys)")
            worst = min(delta.values(), default=0.0)
            verdicts[f"{name} / {label}"] = {
                "recall@10_delta": delta, "stale": stale, "gains": gains,
                "worst_drop": worst, "passes": bool(gains) and worst >= -0.01,
            }  # fmt: skip
    return verdicts


def _stale_gain(upd: dict[str, Any], name: str, mode: str, label: str) -> dict[str, Any] | None:
    """The candidate's best stale-rate change (auto or cue keys) against no memory."""
    base = upd.get("no neural memory", {}).get(f"{mode} w=0")
    best = None
    for keys in ("auto", "cue"):
        row = upd.get(f"{name}, {keys} keys", {}).get(label)
        if base is None or row is None or not base["stale_rate"]:
            continue
        rel = (row["stale_rate"] - base["stale_rate"]) / base["stale_rate"]
        if best is None or rel < best["relative"]:
            best = {"keys": keys, "stale_rate": row["stale_rate"], "base": base["stale_rate"],
                    "relative": round(rel, 3)}  # fmt: skip
    return best


def merge(results: dict[str, Any], other: dict[str, Any]) -> None:
    """Add ``other``'s parts to ``results``: a part ``results`` lacks whole, else candidate by
    candidate and search by search."""
    for part in ("retrieval", "updates", "side"):
        if part not in other:
            continue
        if part not in results or part == "side":
            results[part] = other[part]
            continue
        for name, row in other[part]["candidates"].items():
            results[part]["candidates"].setdefault(name, {}).update(row)
    for part, seconds in other.get("seconds", {}).items():
        results.setdefault("seconds", {}).setdefault(part, seconds)


def table(results: dict[str, Any], *, gated_only: bool = False) -> str:
    """The README's tables: recall@10 by type (unseen questions for the question-keyed
    candidate), the false-hit rate of the unanswerable questions, and the updates task's
    recall@1 and stale rate with auto and cue keys, every candidate and search configuration."""
    cands = results.get("retrieval", {}).get("candidates", {})
    upd = results.get("updates", {}).get("candidates", {})
    head = ["candidate", "search", *TYPES, "update: new above stale", "unanswerable answered"]
    head += ["updates R@1 / stale (auto keys)", "updates R@1 / stale (cue keys)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, c in cands.items():
        for label in [k for k in c if " w=" in k and "(" not in k]:
            if gated_only != label.endswith("gated") and c["config"] is not None:
                continue
            got = c[f"{label} (unseen)"] if c["keys"] == "question" else c[label]
            cells = [f"{got[t]['recall@10']:.3f}" if t in got else "-" for t in TYPES]
            cells.append(f"{got['update']['new_above_stale']:.3f}" if "update" in got else "-")
            una = got["unanswerable"].get("unanswerable", {}).get("answered_at_floor")
            cells.append("-" if una is None else f"{una:.3f}")
            for keys in ("auto", "cue"):
                u = upd.get(name if c["config"] is None else f"{name}, {keys} keys", {}).get(label)
                cells.append("-" if u is None else f"{u['recall@1']:.3f} / {u['stale_rate']:.3f}")
            shown = f"{name} (unseen questions)" if c["keys"] == "question" else name
            rows.append(f"| {shown} | {label} | " + " | ".join(cells) + " |")
            if c["config"] is None and f"{label} (unseen)" in c:
                got = c[f"{label} (unseen)"]
                cells = [f"{got[t]['recall@10']:.3f}" if t in got else "-" for t in TYPES]
                cells.append(f"{got['update']['new_above_stale']:.3f}" if "update" in got else "-")
                una = got["unanswerable"].get("unanswerable", {}).get("answered_at_floor")
                cells += ["-" if una is None else f"{una:.3f}", "-", "-"]
                rows.append(f"| {name} (unseen questions) | {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot(results: dict[str, Any], path: Path, weights: Sequence[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = results.get("retrieval", {}).get("candidates", {})
    upd = results.get("updates", {}).get("candidates", {})
    fig, axes = plt.subplots(len(weights) + 1, 2, figsize=(15, 4.6 * (len(weights) + 1)))
    for row, w in enumerate(weights):
        for col, mode in enumerate(MODES):
            ax, names = axes[row][col], list(cands)
            width = 0.8 / max(1, len(names))
            for i, name in enumerate(names):
                c = cands[name]
                label = f"{mode} w=0" if c["config"] is None else f"{mode} w={w:g}"
                label += " (unseen)" if c["keys"] == "question" else ""
                vals = [c[label].get(t, {}).get("recall@10", 0.0) for t in TYPES]
                ax.bar(np.arange(len(TYPES)) + i * width, vals, width, label=name,
                       color=plt.cm.tab20(i % 20))  # fmt: skip
            ax.set_xticks(np.arange(len(TYPES)) + 0.4 - width / 2, TYPES)
            ax.set_ylim(0.3, 1.02)
            ax.set_title(f"retrieval, {mode} search, w {w:g}: recall@10", fontsize=10)
    axes[0][1].legend(fontsize=7, loc="lower right")
    for col, mode in enumerate(MODES):
        ax = axes[-1][col]
        labels, vals = [], []
        for name, c in upd.items():
            for w in [0.0] if c["config"] is None else weights:
                labels.append(f"{name} w={w:g}" if c["config"] is not None else name)
                vals.append(c[f"{mode} w={w:g}"]["stale_rate"])
        ax.barh(np.arange(len(vals)), vals, color="tab:red")
        if vals:
            ax.axvline(vals[0], color="black", linestyle="--", linewidth=0.8)
        ax.set_yticks(np.arange(len(vals)), labels, fontsize=6)
        ax.invert_yaxis()
        ax.set_title(f"updates task, {mode} search: stale rate (lower is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--parts", default="retrieval,updates,side")
    parser.add_argument("--limit", type=int, help="retrieval questions (an even sample)")
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--personas", type=int, default=40)
    parser.add_argument("--weights", default="0.25,0.5")
    parser.add_argument("--candidates", help="comma-separated names (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (embedding)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=1, help="the updates task's data")
    parser.add_argument("--table", action="store_true", help="print the tables of --results")
    parser.add_argument("--merge", type=Path, help="add the parts of this result file, replot")
    args = parser.parse_args()
    args.weights = [float(w) for w in args.weights.split(",")]
    if args.table or args.merge:
        results = json.loads(args.results.read_text())
        if args.merge:
            merge(results, json.loads(args.merge.read_text()))
            results["decision"] = decide(results)
            args.results.write_text(json.dumps(results, indent=1, default=str) + "\n")
            plot(results, args.results.with_suffix(".png"), args.weights)
        print(table(results) + "\n\n" + table(results, gated_only=True))
        return
    args.candidates = args.candidates.split(",") if args.candidates else None
    import torch

    torch.set_num_threads(args.threads)
    embedder = CachedEmbedder(args.threads)
    results: dict[str, Any] = json.loads(args.results.read_text()) if args.results.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for part, run in (("retrieval", run_retrieval), ("updates", run_updates),
                          ("side", run_side)):  # fmt: skip
            if part in args.parts.split(","):
                t0 = time.time()
                results[part] = run(args, embedder, Path(tmp))
                results.setdefault("seconds", {})[part] = round(time.time() - t0, 1)
                args.results.parent.mkdir(exist_ok=True)
                args.results.write_text(json.dumps(results, indent=1) + "\n")
    results["decision"] = decide(results)
    results["meta"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "args": {
            k: v for k, v in vars(args).items() if k != "results"},
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "embedder": embedder.name, "default_config": NeuralConfig().__dict__,
    }  # fmt: skip
    args.results.write_text(json.dumps(results, indent=1, default=str) + "\n")
    plot(results, args.results.with_suffix(".png"), args.weights)
    print(json.dumps({k: v for k, v in results["decision"].items() if v["passes"]}, indent=1))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()

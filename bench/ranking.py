# ruff: noqa: E501  (the collection below is data: one passage per line)
"""Rerankers on a generated collection: quality, cost, parse failures and order sensitivity.

Collection (generated from a seed): 12 topics; for each, a query, 2 passages that answer it
(grade 2), 2 that mention its subject without answering (grade 1), and distractors drawn from
the other topics (grade 0), 20 or 100 candidates per query.

    python bench/ranking.py [--queries 6] [--threads 1]

Per strategy (bundled SmolLM2-135M, greedy; and the MiniLM bi-encoder): nDCG@10, parse failure
rate, input and output tokens per query, seconds per query; the full-vs-sliding input-token
ratio at 100 candidates (counted with the tokenizer); order sensitivity as Kendall tau between
the rankings of shuffled candidate orders (full vs setwise); queries per second, local vs Ray
with 2 workers; ``default``: what ``memora rank`` does without ``--strategy`` against ``full``
and the input order. Writes bench/results/ranking.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memora.llm.llamacpp import LlamaCppLLM
from memora.rank import Doc, load_reranker

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ranking.json"

TOPICS = [
    ("bees", "How do bees turn nectar into honey?",
     ["Bees fan their wings over the nectar until most of its water evaporates and it becomes honey.",
      "Worker bees add enzymes to nectar and store it in wax cells, where it ripens into honey."],
     ["Bees are insects that live in colonies with a single queen.",
      "A beekeeper wears a veil when opening the hive."]),
    ("volcano", "Why do volcanoes erupt?",
     ["Volcanoes erupt when pressure from gas-rich magma below the crust forces it up to the surface.",
      "Magma rises because it is lighter than the surrounding rock, and dissolved gases push it out."],
     ["Mount Etna is a volcano on the island of Sicily.",
      "Volcanic soil is often very fertile for farming."]),
    ("bread", "Why does bread dough rise?",
     ["Yeast eats the sugars in dough and releases carbon dioxide, which inflates the dough.",
      "Gluten traps the gas made by yeast, so the dough swells as it proves."],
     ["Sourdough bread has a slightly sour taste.", "Bakers often start work before dawn."]),
    ("tides", "What causes ocean tides?",
     ["Tides are caused mainly by the Moon's gravity pulling on the oceans.",
      "The Sun and Moon together raise bulges of water that the Earth rotates through each day."],
     ["Surfers check the tide tables before going out.", "The ocean covers most of the planet."]),
    ("rainbow", "How does a rainbow form?",
     ["Sunlight is refracted and reflected inside raindrops, splitting it into colours.",
      "Each raindrop acts like a prism, bending different colours of light by different amounts."],
     ["A rainbow appeared over the stadium after the match.", "Rainbows are often painted by children."]),
    ("vaccines", "How do vaccines protect against disease?",
     ["A vaccine trains the immune system to recognise a germ so it can fight it off quickly later.",
      "Vaccines cause the body to make antibodies and memory cells without causing the illness."],
     ["The clinic offers vaccines on Tuesday mornings.", "Edward Jenner worked in England."]),
    ("leaves", "Why do leaves change colour in autumn?",
     ["As days shorten, trees stop making chlorophyll, revealing yellow and orange pigments.",
      "The green chlorophyll breaks down in autumn, and red anthocyanins are produced in some trees."],
     ["Autumn is a popular season for hiking.", "Maple trees grow in Canada."]),
    ("thunder", "What makes the sound of thunder?",
     ["Lightning heats the air so fast that it expands explosively, creating the sound of thunder.",
      "Thunder is the shock wave from air suddenly heated by a lightning bolt."],
     ["The thunderstorm cancelled the concert.", "Some dogs are afraid of storms."]),
    ("salt", "Why is the sea salty?",
     ["Rain dissolves minerals from rocks, and rivers carry the salts into the sea, where they build up.",
      "Water evaporates from the ocean but the dissolved salts stay behind, so it stays salty."],
     ["Sea salt is sold in many shops.", "The Dead Sea is a popular tourist destination."]),
    ("stars", "Why do stars twinkle?",
     ["Stars twinkle because turbulence in Earth's atmosphere bends their light in changing ways.",
      "Moving pockets of air with different temperatures refract starlight, making it flicker."],
     ["There are billions of stars in the galaxy.", "Astronomers use telescopes in dark places."]),
    ("rust", "Why does iron rust?",
     ["Iron rusts when it reacts with oxygen and water to form iron oxide.",
      "Moisture lets oxygen combine with iron, slowly turning its surface into flaky rust."],
     ["The old bridge is painted red.", "Iron is used to make steel."]),
    ("sleep", "Why do humans need sleep?",
     ["Sleep lets the brain consolidate memories and clear waste products built up during the day.",
      "During sleep the body repairs tissue and the brain restores its energy supply."],
     ["Many people sleep about eight hours.", "A new mattress shop opened downtown."]),
]  # fmt: skip


def collection(n_candidates: int, seed: int) -> list[dict[str, Any]]:
    """Per topic: its query, its graded passages and distractors from other topics."""
    rng = random.Random(seed)
    pool = [(t[0], p) for t in TOPICS for p in t[2] + t[3]]
    out = []
    for name, query, answers, mentions in TOPICS:
        docs = [(f"{name}-a{i}", p, 2) for i, p in enumerate(answers)]
        docs += [(f"{name}-m{i}", p, 1) for i, p in enumerate(mentions)]
        others = [p for t, p in pool if t != name]
        k = 0
        while len(docs) < n_candidates:
            text = rng.choice(others)
            docs.append((f"{name}-x{k}", f"{text} (note {k})", 0))
            k += 1
        rng.shuffle(docs)
        out.append({"qid": name, "query": query, "docs": docs})
    return out


def ndcg10(ids: list[str], grades: dict[str, int]) -> float:
    gain = sum((2 ** grades.get(d, 0) - 1) / math.log2(r + 2) for r, d in enumerate(ids[:10]))
    ideal = sorted(grades.values(), reverse=True)[:10]
    best = sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(ideal))
    return gain / best if best else 0.0


def kendall_tau(a: list[str], b: list[str]) -> float:
    pos = {d: i for i, d in enumerate(b)}
    n, concordant = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            concordant += pos[a[i]] < pos[a[j]]
    pairs = n * (n - 1) / 2
    return (2 * concordant - pairs) / pairs


def run_strategies(
    args: argparse.Namespace,
    llm: LlamaCppLLM,
    n_candidates: int = 20,
    n_queries: int | None = None,
    strategies: tuple[str, ...] = ("biencoder", "pointwise", "setwise", "full", "sliding", "psc"),
) -> dict[str, Any]:
    queries = collection(n_candidates, seed=0)[: n_queries or args.queries]
    options: dict[str, dict[str, Any]] = {
        "sliding": {"window": 10, "step": 5} if n_candidates <= 20 else {"window": 20, "step": 10},
        "psc": {"k": 3},
        "full": {"passage_tokens": 60},
    }
    table = {}
    options["setwise-calibrated"] = {"calibrate": True}
    for strategy in strategies:
        name = strategy.removesuffix("-calibrated")
        reranker = load_reranker(name, None if name == "biencoder" else llm,
                                 **options.get(strategy, {}))  # fmt: skip
        scores, seconds, tin, tout, calls, not_ok = [], [], [], [], 0, 0
        for q in queries:
            docs = [Doc(d, t) for d, t, _ in q["docs"]]
            ranking = reranker.rank(q["query"], docs)
            grades = {d: g for d, _, g in q["docs"]}
            scores.append(ndcg10(list(ranking.ids), grades))
            diag = ranking.diagnostics
            seconds.append(diag.seconds)
            tin.append(diag.input_tokens)
            tout.append(diag.output_tokens)
            calls += diag.calls
            not_ok += diag.calls - diag.parse.ok  # calls whose answer needed fixing
        row = {
            "nDCG@10": round(statistics.mean(scores), 3),
            "parse_failure_rate": round(not_ok / calls, 3)
            if strategy in ("full", "sliding", "psc")
            else None,
            "input_tokens_per_query": round(statistics.mean(tin), 1),
            "output_tokens_per_query": round(statistics.mean(tout), 1),
            "seconds_per_query": round(statistics.mean(seconds), 2),
            "calls_per_query": round(calls / len(queries), 2),
        }
        table[strategy] = row
        print(f"  {strategy:10s} {row}", flush=True)
    return {
        "candidates": n_candidates,
        "queries": len(queries),
        "options": {k: v for k, v in options.items() if k in strategies},
        "strategies": table,
    }


def run_random(args: argparse.Namespace) -> dict[str, Any]:
    """nDCG@10 of random orders (the floor) and of the input order, on the queries the
    strategies ran: 20 candidates (--queries) and 100 candidates (3 queries)."""
    out: dict[str, Any] = {}
    for n, count in ((20, args.queries), (100, 3)):
        rng = random.Random(0)
        shuffled, given = [], []
        for q in collection(n, seed=0)[:count]:
            grades = {d: g for d, _, g in q["docs"]}
            ids = [d for d, _, _ in q["docs"]]
            given.append(ndcg10(ids, grades))
            for _ in range(200):
                rng.shuffle(ids)
                shuffled.append(ndcg10(ids, grades))
        out[f"{n}_candidates"] = {
            "random_order_nDCG@10": round(statistics.mean(shuffled), 3),
            "input_order_nDCG@10": round(statistics.mean(given), 3),
        }
    print(f"  {out}", flush=True)
    return out


def run_order(args: argparse.Namespace, llm: LlamaCppLLM) -> dict[str, Any]:
    """Kendall tau between rankings of the same candidates shown in shuffled orders."""
    queries = collection(20, seed=0)[: args.order_queries]
    out = {}
    for strategy in ("full", "setwise"):
        reranker = load_reranker(strategy, llm)
        taus = []
        for q in queries:
            docs = [Doc(d, t) for d, t, _ in q["docs"]]
            rankings = []
            for s in range(args.shuffles):
                shown = docs[:]
                random.Random(s).shuffle(shown)
                rankings.append(list(reranker.rank(q["query"], shown).ids))
            taus += [kendall_tau(rankings[0], r) for r in rankings[1:]]
        out[strategy] = {"mean_kendall_tau": round(statistics.mean(taus), 4), "min": round(min(taus), 4),
                         "pairs": len(taus)}  # fmt: skip
        print(f"  {strategy}: {out[strategy]}", flush=True)
    return out


def run_tokens(llm: LlamaCppLLM) -> dict[str, Any]:
    """Input tokens of full vs sliding (window 20, step 10) at 100 candidates, counted."""
    from memora.rank.listwise import FullReranker, SlidingReranker, listwise_messages

    q = collection(100, seed=1)[0]
    docs = [Doc(d, t) for d, t, _ in q["docs"]]
    counted: dict[str, int] = {}

    def count(reranker: Any, name: str) -> None:
        total = 0

        def fake_call(query: str, part: Any, diag: Any) -> list[int]:
            nonlocal total
            n = len(part)
            budget = reranker._budget(query, n, n * reranker.tokens_per_id + 8)
            passages = [reranker._cut(d.text, budget) for d in part]
            total += llm.count_tokens(listwise_messages(query, passages))
            diag.calls += 1
            return list(range(n))

        reranker._call = fake_call
        ranking = reranker.rank(q["query"], docs)
        counted[name] = total
        counted[f"{name}_calls"] = ranking.diagnostics.calls

    count(FullReranker(llm, passage_tokens=60), "full")
    count(SlidingReranker(llm, passage_tokens=60), "sliding")
    counted["full_vs_sliding_ratio"] = round(counted["full"] / counted["sliding"], 3)
    print(f"  {counted}", flush=True)
    return counted


def run_default(args: argparse.Namespace, llm: LlamaCppLLM) -> dict[str, Any]:
    """What ``memora rank`` does without ``--strategy`` (``auto``: the strategy
    :meth:`RankConfig.chosen_strategy` picks for the bundled model, with its default options)
    against ``full`` (the default before) and the input order, 20 candidates (--queries), and
    how many queries came back in their input order."""
    from memora.rank.config import RankConfig

    chosen = RankConfig(Path("q"), Path("d"), Path("o")).chosen_strategy("default")[0]
    queries = collection(20, seed=0)[: args.queries]
    out: dict[str, Any] = {"candidates": 20, "queries": len(queries), "auto_is": chosen}
    for name in (chosen, "full", "input order"):
        reranker = None if name == "input order" else load_reranker(name, llm)
        scores, same, seconds = [], 0, 0.0
        for q in queries:
            docs = [Doc(d, t) for d, t, _ in q["docs"]]
            ids = [d.id for d in docs]
            if reranker is not None:
                ranking = reranker.rank(q["query"], docs)
                seconds += ranking.diagnostics.seconds
                same += list(ranking.ids) == ids
                ids = list(ranking.ids)
            scores.append(ndcg10(ids, {d: g for d, _, g in q["docs"]}))
        key = "auto" if name == chosen else name
        out[key] = {"strategy": name, "nDCG@10": round(statistics.mean(scores), 3),
                    "seconds_per_query": round(seconds / len(queries), 2)}  # fmt: skip
        if reranker is not None:
            out[key]["queries_in_input_order"] = same
        print(f"  {key}: {out[key]}", flush=True)
    return out


def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Queries per second of the batch runner: local (one model) vs Ray (2 actors, one model
    and one thread each), pointwise on 20 candidates; Ray's cluster is started before timing,
    the actors' model loading is timed."""
    import tempfile

    import ray

    from memora.rank.batch import Query, RerankerSpec, run_batch

    queries = collection(20, seed=2)
    work = [Query(q["qid"], q["query"]) for q in queries]
    candidates = {q["qid"]: [Doc(d, t) for d, t, _ in q["docs"]] for q in queries}
    spec = RerankerSpec("pointwise", model_options={"n_ctx": 2048, "n_threads": 1})
    out: dict[str, Any] = {"queries": len(work), "strategy": "pointwise", "candidates": 20}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for executor, workers in (("local", 1), ("ray", 2)):
                started = time.perf_counter()
                run_batch(work, candidates, spec, Path(tmp) / f"{executor}.trec",
                          executor=executor, workers=workers)  # fmt: skip
                seconds = time.perf_counter() - started
                out[f"{executor}_{workers}_qps"] = round(len(work) / seconds, 4)
                print(f"  {executor} x{workers}: {seconds:.1f} s", flush=True)
    finally:
        ray.shutdown()
    out["ray_vs_local"] = round(out["ray_2_qps"] / out["local_1_qps"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=6)
    parser.add_argument("--order-queries", type=int, default=3)
    parser.add_argument("--shuffles", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parts", default="tokens,strategies,order")
    args = parser.parse_args()
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["environment"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "llama_cpp_python": version("llama-cpp-python"),
        "model": "SmolLM2-135M-Instruct Q4_1 (bundled), greedy",
    }
    llm = LlamaCppLLM("default", n_ctx=8192, n_threads=args.threads, seed=0)
    for part in args.parts.split(","):
        print(f"== {part}", flush=True)
        if part == "tokens":
            results["tokens_100_candidates"] = run_tokens(llm)
        elif part == "strategies":
            results["strategies"] = run_strategies(args, llm)
        elif part == "order":
            results["order_sensitivity"] = run_order(args, llm)
        elif part == "strategies100":
            results["strategies_100"] = run_strategies(
                args, llm, 100, 3, ("biencoder", "setwise", "pointwise", "full", "sliding")
            )
        elif part == "calibration":
            results["setwise_calibration"] = run_strategies(
                args, llm, 20, None, ("setwise", "setwise-calibrated")
            )
        elif part == "random":
            results["baselines"] = run_random(args)
        elif part == "default":
            results["cli_default"] = run_default(args, llm)
        elif part == "throughput":
            results["throughput"] = run_throughput(args)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

"""Research memories against plain retrieval: the Titans-like neural memory and the
LongMem-style banks, on synthetic data (bench/research_data.py).

1. needle: K facts among N distractors in one stream (N up to 100k); recall@1/@5 by N and by
   the fact's age, for dense, BM25 (SQLite FTS5), hybrid and the neural variants; answer
   accuracy of the bundled model reading the top-5 retrieved texts.
2. updates: multi-session conversations where half the facts change later; recall@k of the
   current fact, the stale rate (the superseded turn ranked above the current one) and the
   stale-answer rate of the bundled model.
3. reader: a passkey at depths 10/50/90% of documents 4x, 16x and 64x the model's context;
   the long-context reader on the text-level bank and on the KV-level bank: accuracy and
   prompt tokens evaluated per query.

    python bench/research_memories.py [--parts needle,updates,reader] [--sizes 1000,10000,100000]

Embeddings come from the bundled MiniLM and are cached under bench/.cache (git-ignored), so
every method sees the very same vectors. Writes bench/results/research_memories.json and
research_memories.png.
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
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from research_data import conversations, needle_stream, passkey_document  # noqa: E402

from memora.embed import load_embedder  # noqa: E402
from memora.memory.neural import NeuralConfig, NeuralMemory  # noqa: E402
from memora.memory.store import RRF_K, MemoryStore  # noqa: E402

RESULTS = HERE / "results" / "research_memories.json"
CACHE = HERE / ".cache" / "embeddings.npz"
CHUNK = 64  # stream items per neural write step (Titans-style chunks)
SALIENCE = 1.0 / (RRF_K + 1)  # a salient flag is worth one extra first rank in the fusion


class CachedEmbedder:
    """The bundled MiniLM with a text -> vector cache kept on disk between runs."""

    def __init__(self) -> None:
        self.inner = load_embedder()
        self.name, self.dim = self.inner.name, self.inner.dim
        self.cache: dict[str, np.ndarray] = {}
        if CACHE.is_file():
            with np.load(CACHE) as data:
                for key, vec in zip(data["keys"].tolist(), data["vectors"], strict=True):
                    self.cache[key] = vec
        self.encoded = 0

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if self._key(t) not in self.cache))
        for start in range(0, len(missing), 4096):
            part = missing[start : start + 4096]
            for text, vec in zip(part, self.inner.encode(part), strict=True):
                self.cache[self._key(text)] = vec
            self.encoded += len(part)
            if len(missing) > 4096:
                print(f"  embedded {min(start + 4096, len(missing))}/{len(missing)}", flush=True)
        return np.stack([self.cache[self._key(t)] for t in texts]).astype(np.float32)

    def save(self) -> None:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.cache)
        np.savez(CACHE, keys=np.array(keys), vectors=np.stack([self.cache[k] for k in keys]))


Search = Callable[[MemoryStore, str, str], list[str]]


def methods(neural: bool) -> dict[str, dict[str, Any]]:
    """Search settings per method (keyword arguments of MemoryStore.search)."""
    out: dict[str, dict[str, Any]] = {
        "dense": {"mode": "dense"},
        "bm25": {"mode": "lexical"},
        "hybrid": {"mode": "hybrid"},
    }
    if neural:
        out["hybrid+salience"] = {"mode": "hybrid", "salience_weight": SALIENCE}
        out["dense+M(q)"] = {"mode": "dense", "neural_weight": 1.0}
        out["hybrid+M(q)"] = {"mode": "hybrid", "neural_weight": 1.0}
    return out


def rank_of(texts: list[str], wanted: str) -> int | None:
    return texts.index(wanted) + 1 if wanted in texts else None


def recall(ranks: list[int | None], k: int) -> float:
    return sum(1 for r in ranks if r is not None and r <= k) / max(1, len(ranks))


def load_llm(threads: int) -> Any:
    from memora.llm.llamacpp import LlamaCppLLM

    return LlamaCppLLM("default", n_ctx=2048, n_threads=threads, seed=0)


def answer(llm: Any, notes: list[str], question: str) -> str:
    body = "\n".join(f"- {n}" for n in notes)
    messages = [
        {"role": "system", "content": "Answer the question from the notes. Be brief."},
        {"role": "user", "content": f"Notes:\n{body}\n\nQuestion: {question}"},
    ]
    return str(llm.generate(messages, max_tokens=24, temperature=0.0).text)


# -- 1. needle in a long stream ----------------------------------------------------------------


def run_needle(args: argparse.Namespace, embedder: CachedEmbedder, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": {}, "facts": args.facts, "chunk": CHUNK}
    qa_size = sorted(args.sizes)[len(args.sizes) // 2]
    llm = load_llm(args.threads) if args.qa else None
    for n in sorted(args.sizes):
        texts, needles = needle_stream(n, args.facts, seed=n)
        print(f"needle N={n}: embedding {len(texts)} texts", flush=True)
        embedder.encode(texts + [x.question for x in needles])
        embedder.save()
        store = MemoryStore(tmp / f"needle{n}.db", embedder=embedder, neural=NeuralConfig())
        started = time.perf_counter()
        for start in range(0, len(texts), CHUNK):
            store.add_many(texts[start : start + CHUNK], user_id="stream")
        ingest_s = time.perf_counter() - started
        salient = {r.text for r in store.list(user_id="stream") if r.salient}
        case: dict[str, Any] = {
            "ingest_s": round(ingest_s, 2),
            "salient_share": round(len(salient) / len(texts), 4),
            "salient_share_of_facts": round(
                sum(x.text in salient for x in needles) / len(needles), 3
            ),
            "methods": {},
        }
        for name, kwargs in methods(neural=True).items():
            ranks, lat = [], []
            for needle in needles:
                t0 = time.perf_counter()
                hits = store.search(needle.question, user_id="stream", k=10, **kwargs)
                lat.append(time.perf_counter() - t0)
                ranks.append(rank_of([h.record.text for h in hits], needle.text))
            ages = [(len(texts) - x.position) / len(texts) for x in needles]
            by_age = {}
            for lo in (0.0, 0.25, 0.5, 0.75):
                sel = [r for r, a in zip(ranks, ages, strict=True) if lo < a <= lo + 0.25]
                by_age[f"{lo:.2f}-{lo + 0.25:.2f}"] = round(recall(sel, 5), 3)
            result: dict[str, Any] = {
                "recall@1": round(recall(ranks, 1), 3),
                "recall@5": round(recall(ranks, 5), 3),
                "recall@5_by_age": by_age,
                "search_ms_p50": round(1e3 * statistics.median(lat), 2),
            }
            if (
                llm is not None
                and n == qa_size
                and name in ("dense", "bm25", "hybrid", "hybrid+M(q)")
            ):
                correct = 0
                for needle in needles[: args.qa]:
                    hits = store.search(needle.question, user_id="stream", k=5, **kwargs)
                    reply = answer(llm, [h.record.text for h in hits], needle.question)
                    correct += needle.answer in reply
                result["answer_accuracy"] = round(correct / min(args.qa, len(needles)), 3)
                result["answered"] = min(args.qa, len(needles))
            case["methods"][name] = result
            print(f"  {name:16s} {result}", flush=True)
        store.close()
        out["sizes"][str(n)] = case
    out["neural_cost"] = neural_cost(embedder, tmp)
    if llm is not None:
        llm.close()
    return out


def neural_cost(embedder: CachedEmbedder, tmp: Path) -> dict[str, Any]:
    """ms per write of the memory alone, and the store's add with and without it."""
    texts, _ = needle_stream(2000, 0, seed=7)
    vectors = embedder.encode(texts)
    memory = NeuralMemory(embedder.dim)
    t0 = time.perf_counter()
    for v in vectors:
        memory.write(v, v)
    per_item = (time.perf_counter() - t0) / len(vectors)
    t0 = time.perf_counter()
    for start in range(0, len(vectors), CHUNK):
        memory.write(vectors[start : start + CHUNK], vectors[start : start + CHUNK])
    per_chunk_item = (time.perf_counter() - t0) / len(vectors)
    timings = {}
    for neural in (False, True):
        with MemoryStore(tmp / f"cost{neural}.db", embedder=embedder, neural=neural) as store:
            t0 = time.perf_counter()
            for text in texts[:500]:
                store.add(text, user_id="u")
            timings[neural] = (time.perf_counter() - t0) / 500
    return {
        "write_ms_one_pair": round(per_item * 1e3, 3),
        "write_ms_per_pair_in_chunks_of_64": round(per_chunk_item * 1e3, 4),
        "state_bytes": memory.nbytes,
        "log_bytes_per_pair": 2 * 4 * embedder.dim,
        "store_add_ms_plain": round(timings[False] * 1e3, 2),
        "store_add_ms_neural": round(timings[True] * 1e3, 2),
        "store_add_ratio_neural_vs_plain": round(timings[True] / timings[False], 2),
    }


# -- 2. updated facts in multi-session conversations -------------------------------------------


def run_updates(args: argparse.Namespace, embedder: CachedEmbedder, tmp: Path) -> dict[str, Any]:
    chats, probes = conversations(args.personas, seed=1)
    every = [t.text for turns in chats.values() for t in turns] + [
        t.cue for turns in chats.values() for t in turns
    ]
    embedder.encode(every + [p.question for p in probes])
    embedder.save()
    stores = {
        "auto": MemoryStore(tmp / "auto.db", embedder=embedder, neural=NeuralConfig()),
        "cue": MemoryStore(tmp / "cue.db", embedder=embedder, neural=NeuralConfig()),
        # the best design of the sweep below (run_designs): more momentum
        "cue, momentum 0.9": MemoryStore(
            tmp / "cue9.db", embedder=embedder, neural=NeuralConfig(momentum=0.9)
        ),
    }
    for user, turns in chats.items():
        for turn in turns:  # one write per turn, as a chat would
            stores["auto"].add(turn.text, user_id=user)
            stores["cue"].add(turn.text, user_id=user, cue=turn.cue)
            stores["cue, momentum 0.9"].add(turn.text, user_id=user, cue=turn.cue)
    table: dict[str, Any] = {}
    plans = {
        f"{m} (auto keys)" if "M(q)" in m else m: ("auto", kw) for m, kw in methods(True).items()
    }
    for mode, weight in (("dense", 0.5), ("dense", 1.0), ("hybrid", 1.0)):
        label = f"{mode}+M(q) (cue keys)" + ("" if weight == 1.0 else f" w={weight}")
        plans[label] = ("cue", {"mode": mode, "neural_weight": weight})
    for weight in (0.25, 0.5):
        plans[f"dense+M(q) (cue keys, momentum 0.9) w={weight}"] = (
            "cue, momentum 0.9",
            {"mode": "dense", "neural_weight": weight},
        )
    llm = load_llm(args.threads) if args.qa else None
    updated = [p for p in probes if p.stale is not None]
    for name, (which, kwargs) in plans.items():
        ranks, stale = [], 0
        for probe in probes:
            hits = [
                h.record.text
                for h in stores[which].search(probe.question, user_id=probe.user, k=10, **kwargs)
            ]
            ranks.append(rank_of(hits, probe.current))
            if probe.stale is not None:
                old, new = rank_of(hits, probe.stale), rank_of(hits, probe.current)
                stale += old is not None and (new is None or old < new)
        row: dict[str, Any] = {
            "recall@1": round(recall(ranks, 1), 3),
            "recall@3": round(recall(ranks, 3), 3),
            "stale_rate": round(stale / len(updated), 3),
        }
        if llm is not None and name in (
            "dense",
            "hybrid",
            "hybrid+M(q) (cue keys)",
            "dense+M(q) (cue keys, momentum 0.9) w=0.5",
        ):
            right = wrong = 0
            for probe in updated[: args.qa]:
                hits = stores[which].search(probe.question, user_id=probe.user, k=3, **kwargs)
                reply = answer(llm, [h.record.text for h in hits], probe.question).lower()
                new_value = _value(probe.current)
                old_value = _value(probe.stale or "")
                right += new_value in reply
                wrong += old_value in reply and new_value not in reply
            row["answer_accuracy_updated"] = round(right / min(args.qa, len(updated)), 3)
            row["stale_answer_rate"] = round(wrong / min(args.qa, len(updated)), 3)
        table[name] = row
        print(f"  {name:24s} {row}", flush=True)
    for s in stores.values():
        s.close()
    if llm is not None:
        llm.close()
    return {
        "personas": args.personas,
        "probes": len(probes),
        "updated": len(updated),
        "methods": table,
    }


DESIGNS: dict[str, dict[str, Any]] = {
    "hidden 128, lr 0.002, momentum 0.5": {"lr": 0.002, "momentum": 0.5},
    "hidden 256, lr 0.002, momentum 0.5": {"hidden": 256, "lr": 0.002, "momentum": 0.5},
    "hidden 128, lr 0.004, momentum 0.5": {"lr": 0.004, "momentum": 0.5},
    "hidden 128, lr 0.002, momentum 0.5, half-life 100 writes": {
        "lr": 0.002, "momentum": 0.5, "forget_half_life_steps": 100.0,
    },
    "hidden 128, lr 0.002, momentum 0.9": {"lr": 0.002, "momentum": 0.9},
    "hidden 128, lr 0.001, momentum 0.9": {"lr": 0.001, "momentum": 0.9},
    "hidden 256, lr 0.001, momentum 0.9": {"hidden": 256, "lr": 0.001, "momentum": 0.9},
    "hidden 128, lr 0.002, momentum 0.95": {"lr": 0.002, "momentum": 0.95},
}  # fmt: skip


def run_designs(args: argparse.Namespace, embedder: CachedEmbedder, tmp: Path) -> dict[str, Any]:
    """Other neural-memory designs on the updates task (cue keys): recall and stale rate."""
    chats, probes = conversations(args.personas, seed=1)
    updated = [p for p in probes if p.stale is not None]
    table: dict[str, Any] = {}
    for label, overrides in DESIGNS.items():
        config = NeuralConfig(**overrides)
        with MemoryStore(tmp / f"design{len(table)}.db", embedder=embedder, neural=config) as store:
            for user, turns in chats.items():
                for turn in turns:
                    store.add(turn.text, user_id=user, cue=turn.cue)
            for weight in (0.25, 0.5, 1.0):
                ranks, stale = [], 0
                for probe in probes:
                    hits = store.search(probe.question, user_id=probe.user, k=10, mode="dense",
                                        neural_weight=weight)  # fmt: skip
                    texts = [h.record.text for h in hits]
                    ranks.append(rank_of(texts, probe.current))
                    if probe.stale is not None:
                        old, new = rank_of(texts, probe.stale), rank_of(texts, probe.current)
                        stale += old is not None and (new is None or old < new)
                row = {
                    "recall@1": round(recall(ranks, 1), 3),
                    "recall@3": round(recall(ranks, 3), 3),
                    "stale_rate": round(stale / len(updated), 3),
                }
                table[f"{label}, dense+M(q) w={weight}"] = row
                print(f"  {label}, w={weight}: {row}", flush=True)
    return {"task": "updates, cue keys", "methods": table}


def run_capacity(args: argparse.Namespace, embedder: CachedEmbedder, tmp: Path) -> dict[str, Any]:
    """Cue-to-content capacity: write N (question, fact) pairs once, in order; read each
    question back and look for its fact among all N facts (recall@1), oldest and newest fifth."""
    _, needles = needle_stream(0, 1500, seed=11)
    keys = embedder.encode([x.question for x in needles])
    values = embedder.encode([x.text for x in needles])
    embedder.save()
    table: dict[str, Any] = {}
    for label, overrides in DESIGNS.items():
        for n in (100, 500, 1500):
            memory = NeuralMemory(embedder.dim, NeuralConfig(**overrides))
            for i in range(n):
                memory.write(keys[i], values[i])
            reads = memory.read(keys[:n])
            hit = (reads @ values[:n].T).argmax(axis=1) == np.arange(n)
            fifth = max(1, n // 5)
            table[f"{label}, N={n}"] = {
                "recall@1": round(float(hit.mean()), 3),
                "oldest_fifth": round(float(hit[:fifth].mean()), 3),
                "newest_fifth": round(float(hit[-fifth:].mean()), 3),
            }
            print(f"  {label}, N={n}: {table[f'{label}, N={n}']}", flush=True)
    rng = np.random.default_rng(0)  # structureless pairs: pure memorization
    noise = rng.standard_normal((1000, embedder.dim)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    for label, overrides in DESIGNS.items():
        memory = NeuralMemory(embedder.dim, NeuralConfig(**overrides))
        for i in range(500):
            memory.write(noise[i], noise[500 + i])
        hit = (memory.read(noise[:500]) @ noise[500:].T).argmax(axis=1) == np.arange(500)
        table[f"{label}, random pairs, N=500"] = {"recall@1": round(float(hit.mean()), 3)}
        print(f"  {label}, random pairs: {table[f'{label}, random pairs, N=500']}", flush=True)
    baseline = (keys @ values.T).argmax(axis=1) == np.arange(len(keys))
    return {
        "dense_question_to_fact_recall@1_N=1500": round(float(baseline.mean()), 3),
        "memories": table,
    }


def _value(turn: str) -> str:
    """The value word(s) of a fact turn (its last few words, lower-cased)."""
    from research_data import ATTRIBUTES

    for _, values, *_ in ATTRIBUTES.values():
        for v in values:
            if v.lower() in turn.lower():
                return v.lower()
    return turn.lower()


def run_reader(args: argparse.Namespace, embedder: CachedEmbedder, tmp: Path) -> dict[str, Any]:
    """Passkey documents 4x/16x/64x the model's context, read by the long-context reader."""
    from memora.llm.llamacpp import LlamaCppLLM
    from memora.memory.longmem import KVMemoryBank, LongContextReader, MemoryBank

    n_ctx, chunk, window, k, capacity = 2048, 64, 128, 2, 64
    question = "What is the pass key?"
    text_llm = LlamaCppLLM("default", n_ctx=n_ctx, n_threads=args.threads, seed=0)
    sample = needle_stream(400, 0, seed=3)[0]
    per_sentence = len(text_llm.tokenize(" ".join(sample))) / len(sample)
    rows: list[dict[str, Any]] = []
    for times in args.multiples:
        for depth in (0.1, 0.5, 0.9):
            doc, key = passkey_document(round(times * n_ctx / per_sentence), depth, seed=times)
            setups = [("text", "fifo"), ("text", "score"), ("text", "surprise"), ("all", "fifo")]
            if times <= args.kv_max_multiple:
                setups += [("kv", "score"), ("kv", "surprise")]
            for kind, eviction in setups:
                t0 = time.perf_counter()
                if kind in ("text", "all"):  # "all": a bank that holds the whole document
                    room = capacity if kind == "text" else 4 * times * n_ctx // chunk
                    bank = MemoryBank(embedder, tokenizer=text_llm, chunk_tokens=chunk,
                                      capacity=room, eviction=eviction)  # fmt: skip
                    reader = LongContextReader(text_llm, bank, window_tokens=window, k=k)
                    reader.read(doc)
                    read_s = time.perf_counter() - t0
                    text_llm.reset_cache()  # a cold query
                    reply = reader.ask(question, max_tokens=24)
                    extra: dict[str, Any] = {"evicted": bank.evicted, "rejected": bank.rejected}
                else:
                    cells = 32 + capacity * chunk + 640
                    kv_llm = LlamaCppLLM("default", n_ctx=cells, n_threads=args.threads, seed=0)
                    with kv_llm, KVMemoryBank(kv_llm, embedder=embedder, chunk_tokens=chunk,
                                              capacity=capacity, eviction=eviction,
                                              query_reserve=640) as kv:  # fmt: skip
                        reader = LongContextReader(kv_llm, kv, window_tokens=window, k=k)
                        reader.read(doc)
                        read_s = time.perf_counter() - t0
                        reply = reader.ask(question, max_tokens=24)
                        extra = {"evicted": kv.memory.evicted, "rejected": kv.memory.rejected,
                                 "decoded": kv.filed_tokens, "kv_cells": cells}  # fmt: skip
                row = {
                    "bank": kind, "eviction": eviction, "multiple": times, "depth": depth,
                    "document_tokens": reader.read_tokens,
                    "passkey_retrieved": any(key in c.text for c in reply.chunks),
                    "correct": key in reply.text,
                    "evaluated_tokens": reply.evaluated_tokens,
                    "attended_tokens": reply.prompt_tokens,
                    "read_s": round(read_s, 1),
                    "ask_s": round(time.perf_counter() - t0 - read_s, 1),
                    **extra,
                }  # fmt: skip
                rows.append(row)
                print(f"  {row}", flush=True)
                embedder.save()
    text_llm.close()
    summary: dict[str, Any] = {}
    for kind, eviction in (
        ("all", "fifo"), ("text", "fifo"), ("text", "score"), ("text", "surprise"),
        ("kv", "score"), ("kv", "surprise"),
    ):  # fmt: skip
        for times in args.multiples:
            sel = [
                r
                for r in rows
                if (r["bank"], r["eviction"], r["multiple"]) == (kind, eviction, times)
            ]
            if sel:
                summary[f"{kind}/{eviction}/{times}x"] = {
                    "accuracy": round(sum(r["correct"] for r in sel) / len(sel), 3),
                    "passkey_retrieved": round(
                        sum(r["passkey_retrieved"] for r in sel) / len(sel), 3
                    ),
                    "evaluated_tokens_per_query": statistics.mean(
                        r["evaluated_tokens"] for r in sel
                    ),
                }
    setup = {"n_ctx": n_ctx, "chunk_tokens": chunk, "window_tokens": window, "k": k,
             "capacity_chunks": capacity}  # fmt: skip
    return {"setup": setup, "summary": summary, "runs": rows}


# -- report ------------------------------------------------------------------------------------


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    needle = results.get("needle")
    if not needle:
        return
    sizes = sorted(int(n) for n in needle["sizes"])
    names = list(needle["sizes"][str(sizes[0])]["methods"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in names:
        left.plot(sizes, [needle["sizes"][str(n)]["methods"][name]["recall@5"] for n in sizes],
                  marker="o", label=name)  # fmt: skip
        by_age = needle["sizes"][str(sizes[-1])]["methods"][name]["recall@5_by_age"]
        right.plot(list(by_age), list(by_age.values()), marker="o", label=name)
    left.set(xscale="log", xlabel="distractors N", ylabel="recall@5", title="recall@5 against N")
    right.set(xlabel="age (share of the stream after the fact)", ylabel="recall@5",
              title=f"recall@5 against age, N={sizes[-1]}")  # fmt: skip
    left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="needle,updates,designs,capacity,reader")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--facts", type=int, default=60)
    parser.add_argument("--personas", type=int, default=40)
    parser.add_argument("--qa", type=int, default=30, help="questions answered by the model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--multiples", default="4,16,64", help="document sizes, x n_ctx")
    parser.add_argument("--kv-max-multiple", type=int, default=16)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.multiples = [int(m) for m in args.multiples.split(",")]
    parts = args.parts.split(",")
    environment = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "llama_cpp_python": version("llama-cpp-python"),
        "faiss": version("faiss-cpu"),
        "sentence_transformers": version("sentence-transformers"),
        "threads": args.threads,
        "embedder": "all-MiniLM-L6-v2 (bundled)",
        "model": "SmolLM2-135M-Instruct Q4_1 (bundled), greedy",
        "neural_config": NeuralConfig().__dict__,
    }
    out: Path = args.results
    embedder = CachedEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        for part, run in (
            ("needle", run_needle),
            ("updates", run_updates),
            ("designs", run_designs),
            ("capacity", run_capacity),
            ("reader", run_reader),
        ):
            if part in parts:
                print(f"== {part}", flush=True)
                result = run(args, embedder, Path(tmp))
                # merge into what is on disk now: parts may run in separate invocations
                results = json.loads(out.read_text()) if out.is_file() else {}
                results[part] = result
                results["environment"] = environment
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(results, indent=2) + "\n")
    plot(json.loads(out.read_text()), out.with_suffix(".png"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

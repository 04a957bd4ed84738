"""The memory store at 10k, 100k and 1M records, beside chromadb's embedded mode.

Each (system, size) runs in its own worker process, so peak memory (RSS) is measured per case.
Vectors: at every size, seeded synthetic unit vectors (384 dimensions, like all-MiniLM-L6-v2)
near a 32-dimensional subspace (see ``unit_vectors``), fed through an embedder that looks them
up, so ingestion and search are timed with the embedding excluded. Ingestion with the embedding
included is measured separately on real sentences embedded by the bundled MiniLM.

Per case: ingestion records/s, search latency p50 / p95 (top 10; one scope holding every record,
and one scope out of 100), recall@10 against exact search, peak RSS, bytes on disk.

    python bench/memory_store.py [--sizes 10000,100000,1000000] [--systems memora,chroma]

Writes bench/results/memory_store.json (and a latency plot, memory_store.png).

    python bench/memory_store.py --compare-with ../old-checkout --sizes 10000,100000

runs memora's cases on this tree and on another checkout of memora (say, the commit before a
refactor), alternating, ``--repeats`` times each, and writes the medians and their ratios
(this tree / the other) to bench/results/memory_store_compare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "memory_store.json"
DIM = 384
QUERIES = 200
BATCH = 5000
USERS = 100
INTRINSIC = 32
NOISE = 0.02


def unit_vectors(n: int, seed: int) -> np.ndarray:
    """Synthetic sentence-embedding-like vectors: unit length in 384 dimensions, lying near a
    random 32-dimensional subspace (plus a little noise in every dimension). Like real
    embeddings they have meaningful neighbours (mean top-1 cosine to a query ~0.68, 10th ~0.60);
    isotropic random unit vectors have none, which makes every approximate index look broken.
    """
    basis = np.linalg.qr(np.random.default_rng(0).standard_normal((DIM, INTRINSIC)))[0]
    basis = basis.astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        block = rng.standard_normal((m, INTRINSIC), dtype=np.float32) @ basis.T
        block += NOISE * rng.standard_normal((m, DIM), dtype=np.float32)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


class LookupEmbedder:
    """Vectors by text: "r<i>" is record i, "q<j>" is query j. Embedding cost ~0."""

    name = "all-MiniLM-L6-v2"
    dim = DIM

    def __init__(self, records: np.ndarray, queries: np.ndarray) -> None:
        self.records, self.queries = records, queries

    def encode(self, texts: list[str]) -> np.ndarray:
        table = {"r": self.records, "q": self.queries}
        return np.stack([table[t[0]][int(t[1:].split()[0])] for t in texts])


def exact_top10(records: np.ndarray, queries: np.ndarray, members: np.ndarray | None) -> list:
    pool = records if members is None else records[members]
    ids = np.arange(len(records)) if members is None else members
    scores = queries @ pool.T
    top = np.argsort(-scores, axis=1)[:, :10]
    return [set(ids[row].tolist()) for row in top]


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {"p50_ms": round(statistics.median(ms), 3), "p95_ms": round(ms[int(0.95 * len(ms))], 3)}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def user_of(i: int) -> str:
    return f"user{i % USERS}"


def add_many(store: Any, texts: list[str], **scope: str) -> None:
    """``add_many`` (``add`` with a list in releases before it existed)."""
    (getattr(store, "add_many", None) or store.add)(texts, **scope)


def worker_memora(size: int, workdir: Path) -> dict[str, Any]:
    from memora.memory.store import MemoryStore

    records, queries = unit_vectors(size, 1), unit_vectors(QUERIES, 2)
    store = MemoryStore(workdir / "m.db", embedder=LookupEmbedder(records, queries))
    start = time.perf_counter()
    for lo in range(0, size, BATCH):
        hi = min(size, lo + BATCH)
        for user in sorted({user_of(i) for i in range(lo, hi)}):
            batch = [f"r{i}" for i in range(lo, hi) if user_of(i) == user]
            add_many(store, batch, user_id=user, agent_id="everyone")
    ingest = time.perf_counter() - start
    result: dict[str, Any] = {"ingest_records_per_s": round(size / ingest, 1)}
    result["index_kind"] = store.index.kind
    for label, kwargs, members in (
        ("one_scope_all_records", {"agent_id": "everyone"}, None),
        ("one_of_100_scopes", {"user_id": "user7"},
         np.array([i for i in range(size) if user_of(i) == "user7"])),
    ):  # fmt: skip
        truth = exact_top10(records, queries, members)
        found, times = [], []
        for j in range(QUERIES):
            t0 = time.perf_counter()
            hits = store.search(f"q{j}", k=10, mode="dense", **kwargs)
            times.append(time.perf_counter() - t0)
            found.append({int(h.record.text[1:]) for h in hits})
        recall = statistics.mean(len(f & t) / 10 for f, t in zip(found, truth, strict=True))
        result[label] = {**percentiles(times), "recall_at_10": round(recall, 4)}
    hybrid = []
    for j in range(min(QUERIES, 50)):
        t0 = time.perf_counter()
        store.search(f"q{j} r7 r107", k=10, user_id="user7")
        hybrid.append(time.perf_counter() - t0)
    result["hybrid_one_of_100_scopes"] = percentiles(hybrid)
    store.close()
    result["disk_bytes"] = dir_bytes(workdir)
    return result


def worker_chroma(size: int, workdir: Path) -> dict[str, Any]:
    import chromadb

    records, queries = unit_vectors(size, 1), unit_vectors(QUERIES, 2)
    client = chromadb.PersistentClient(path=str(workdir / "chroma"))
    collection = client.create_collection("bench", metadata={"hnsw:space": "ip"})
    limit = min(BATCH, client.get_max_batch_size())
    start = time.perf_counter()
    for lo in range(0, size, limit):
        hi = min(size, lo + limit)
        collection.add(
            ids=[str(i) for i in range(lo, hi)],
            embeddings=records[lo:hi],
            documents=[f"r{i} record" for i in range(lo, hi)],
            metadatas=[{"user_id": user_of(i)} for i in range(lo, hi)],
        )
    ingest = time.perf_counter() - start
    result: dict[str, Any] = {"ingest_records_per_s": round(size / ingest, 1), "index_kind": "hnsw"}
    for label, where, members in (
        ("one_scope_all_records", None, None),
        ("one_of_100_scopes", {"user_id": "user7"},
         np.array([i for i in range(size) if user_of(i) == "user7"])),
    ):  # fmt: skip
        truth = exact_top10(records, queries, members)
        found, times = [], []
        for j in range(QUERIES):
            t0 = time.perf_counter()
            got = collection.query(query_embeddings=queries[j : j + 1], n_results=10, where=where)
            times.append(time.perf_counter() - t0)
            found.append({int(i) for i in got["ids"][0]})
        recall = statistics.mean(len(f & t) / 10 for f, t in zip(found, truth, strict=True))
        result[label] = {**percentiles(times), "recall_at_10": round(recall, 4)}
    result["disk_bytes"] = dir_bytes(workdir)
    return result


def worker_embed(size: int, workdir: Path) -> dict[str, Any]:
    """Ingestion with the embedding included: real sentences, the bundled MiniLM."""
    from memora.memory.store import MemoryStore

    subjects = ["Alice", "Bob", "the agent", "my sister", "the team", "our client", "Dr. Lee"]
    verbs = ["likes", "visited", "asked about", "forgot", "booked", "recommended", "cancelled"]
    things = ["green tea", "the museum", "a refund", "the dentist", "a flight to Oslo",
              "the new phone", "Friday's meeting", "a vegetarian menu"]  # fmt: skip
    texts = [
        f"{subjects[i % 7]} {verbs[(i // 7) % 7]} {things[(i // 49) % 8]} (note {i})."
        for i in range(size)
    ]
    store = MemoryStore(workdir / "e.db")
    add_many(store, ["warm up the embedder"], user_id="warmup")
    start = time.perf_counter()
    for lo in range(0, size, 256):
        add_many(store, texts[lo : lo + 256], user_id="u")
    seconds = time.perf_counter() - start
    store.close()
    return {"ingest_records_per_s": round(size / seconds, 1), "records": size}


WORKERS = {"memora": worker_memora, "chroma": worker_chroma, "embed": worker_embed}


def run_worker(system: str, size: int, source: Path | None = None) -> dict[str, Any]:
    """One case in its own process; ``source``: a checkout whose memora it imports."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{system}-"))
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source.resolve())
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", system, "--size", str(size),
             "--workdir", str(workdir)],
            capture_output=True, text=True, check=False, env=env,
        )  # fmt: skip
        if proc.returncode != 0:
            return {"error": proc.stderr[-2000:]}
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for system in ("memora", "chroma"):
        for label, style in (("one_scope_all_records", "-o"), ("one_of_100_scopes", "--s")):
            points = [
                (int(size), case[label]["p50_ms"])
                for size, case in results[system].items()
                if label in case
            ]
            if points:
                xs, ys = zip(*sorted(points), strict=True)
                ax.plot(xs, ys, style, label=f"{system}, {label.replace('_', ' ')}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("records")
    ax.set_ylabel("search p50 (ms), embedding excluded")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


FIGURES = {
    "ingest_records_per_s": ("ingest_records_per_s",),
    "all_p50_ms": ("one_scope_all_records", "p50_ms"),
    "scoped_p50_ms": ("one_of_100_scopes", "p50_ms"),
    "hybrid_p50_ms": ("hybrid_one_of_100_scopes", "p50_ms"),
    "peak_rss_mb": ("peak_rss_mb",),
}


def compare(other: Path, sizes: list[int], repeats: int, out: Path) -> None:
    """memora on this tree against memora on ``other``, alternating, medians and ratios."""
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {"this": {}, "other": {}}
    for size in sizes:
        for _ in range(repeats):
            for label, source in (("other", other), ("this", None)):
                print(f"{label} {size} ...", flush=True)
                result = run_worker("memora", size, source)
                if "error" in result:
                    raise SystemExit(result["error"])
                runs[label].setdefault(size, []).append(result)
    report: dict[str, Any] = {"benchmark": "memory_store_compare", "repeats": repeats,
                              "other": str(other), "sizes": {}}  # fmt: skip
    for size in sizes:
        row: dict[str, Any] = {}
        for name, path in FIGURES.items():
            medians = {}
            for label in ("this", "other"):
                values = []
                for result in runs[label][size]:
                    value: Any = result
                    for key in path:
                        value = value[key]
                    values.append(float(value))
                medians[label] = statistics.median(values)
            row[name] = {**medians, "ratio": round(medians["this"] / medians["other"], 3)}
        report["sizes"][str(size)] = row
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--systems", default="memora,chroma")
    parser.add_argument("--embed-size", type=int, default=2000)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--size", type=int)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--compare-with", type=Path, help="another checkout of memora")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.compare_with:
        sizes = [int(s) for s in args.sizes.split(",")]
        compare(
            args.compare_with, sizes, args.repeats, RESULTS.with_name("memory_store_compare.json")
        )
        return
    if args.worker:
        out = WORKERS[args.worker](args.size, args.workdir)
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(out))
        return
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    results.update(
        {
            "benchmark": "memory_store",
            "vectors": (
                f"synthetic unit vectors, {DIM} dims near a random {INTRINSIC}-dim subspace, "
                f"noise {NOISE} (embedding excluded)"
            ),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "faiss": version("faiss-cpu"),
                "chromadb": version("chromadb") if "chroma" in args.systems else None,
            },
        }
    )
    for system in args.systems.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"{system} {size} ...", flush=True)
            results.setdefault(system, {})[str(size)] = run_worker(system, size)
            print(json.dumps(results[system][str(size)]), flush=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")
    if args.embed_size:
        results["embedding_included"] = run_worker("embed", args.embed_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()

"""The memory store on SQLite + faiss against PostgreSQL + pgvector, at 100k records.

Both backends run the same ``MemoryStore`` code (``MemoryStore("m.db")`` and
``MemoryStore("postgresql://...")``) with the same synthetic embedder (``SeededEmbedder``): each
text's vector comes from a generator seeded by the text's hash, so every process derives the
same vectors and the embedding costs ~0 (measured and reported); what is timed is the storage
and the search, not a model. The vectors are unit vectors near a fixed 32-dimensional subspace
(as in ``bench/memory_store.py``): like sentence embeddings they have meaningful neighbours,
where isotropic random vectors have none and make any approximate index look broken.

The PostgreSQL server is a throwaway local one (``LocalPostgres``, Unix socket) started with
``fsync=on`` (``synchronous_commit`` at its default, on) and ``shared_buffers`` as given; SQLite
runs in WAL mode with ``synchronous=NORMAL`` (memora's setting).

Measures, in one run:

- ingestion records/s, one process, ``add_many`` batches of ``--batch`` records, the users
  taken in turn (``--users`` x ``--per-user`` records);
- search latency p50 / p95 over ``--queries`` dense queries, top 10, the two backends
  alternating query by query: one user of ``--users`` (filtered) and every record
  (``all_scopes=True``, unfiltered); recall@10 against exact top 10 computed with numpy over the
  same vectors;
- that the unfiltered Postgres search walks the HNSW index (EXPLAIN, and its time against the
  same query forced exact);
- bytes on disk (the SQLite file with its WAL and the faiss index file; Postgres:
  ``pg_database_size``);
- 1 against ``--writers`` concurrent writer processes, each into a fresh store (SQLite file or
  Postgres database, ``--concurrent-records`` records in all), records/s; on Postgres the
  backends' waits are sampled from ``pg_stat_activity`` and the CPU time is split between the
  writer processes and the rest of the machine.

    python bench/memory_postgres.py [--users 100] [--per-user 1000] [--queries 200]

Writes bench/results/memory_postgres.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULT = ROOT / "bench" / "results" / "memory_postgres.json"
DIM = 384
INTRINSIC = 32
NOISE = 0.02


class SeededEmbedder:
    """Deterministic synthetic embeddings: a generator seeded by the text's hash draws 32
    coordinates in a fixed random subspace plus a little noise in all 384 dimensions."""

    name = "synthetic-seeded-384"
    dim = DIM

    def __init__(self) -> None:
        basis = np.linalg.qr(np.random.default_rng(0).standard_normal((DIM, INTRINSIC)))[0]
        self._basis_t = basis.T.astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        latent = np.empty((len(texts), INTRINSIC), dtype=np.float32)
        noise = np.empty((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            rng = np.random.default_rng(seed)
            latent[i] = rng.standard_normal(INTRINSIC, dtype=np.float32)
            noise[i] = rng.standard_normal(DIM, dtype=np.float32)
        out = latent @ self._basis_t + NOISE * noise
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def record_text(user: int, i: int, tag: str = "") -> str:
    return f"{tag}user {user} memory {i}: a fact worth keeping about project {i % 97}."


def query_text(j: int) -> str:
    return f"query {j}: what do I know about project {j % 97}?"


def user_id(user: int, tag: str = "") -> str:
    return f"{tag}user-{user}"


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# -- ingestion --------------------------------------------------------------------------------


def ingest(store: Any, users: int, per_user: int, batch: int) -> dict[str, Any]:
    """``users`` x ``per_user`` records in batches of ``batch``, the users taken in turn."""
    times: list[float] = []
    start = time.perf_counter()
    for first in range(0, per_user, batch):
        for user in range(users):
            texts = [record_text(user, i) for i in range(first, min(per_user, first + batch))]
            t0 = time.perf_counter()
            store.add_many(texts, user_id=user_id(user))
            times.append(time.perf_counter() - t0)
        done = min(per_user, first + batch) * users
        print(f"  {done} records, {time.perf_counter() - start:.0f} s", flush=True)
    total = time.perf_counter() - start
    n = users * per_user
    tenth = max(1, len(times) // 10)
    return {
        "records": n,
        "seconds": round(total, 2),
        "records_per_s": round(n / total, 1),
        "first_tenth_records_per_s": round(tenth * batch / sum(times[:tenth]), 1),
        "last_tenth_records_per_s": round(tenth * batch / sum(times[-tenth:]), 1),
    }


# -- concurrent writers -----------------------------------------------------------------------


def writer(location: str, worker: int, records: int, batch: int, barrier: Any, out: Any) -> None:
    from memora.memory.store import MemoryStore

    tag = f"w{worker}-"
    with MemoryStore(location, embedder=SeededEmbedder()) as store:
        store.count(all_scopes=True)  # opened before the clock starts
        barrier.wait()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        done = 0
        while done < records:
            n = min(batch, records - done)
            user = done // 1000
            texts = [record_text(user, i, tag) for i in range(done, done + n)]
            store.add_many(texts, user_id=user_id(user, tag))
            done += n
        end = time.monotonic()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out.put((worker, start, end, cpu))


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / tick, sum(fields) / tick


class WaitSampler(threading.Thread):
    """Samples what the writers' Postgres backends do, every ``every`` seconds."""

    def __init__(self, dsn: str, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.dsn, self.every = dsn, every
        self.samples: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = current_database() AND backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid()"
                ).fetchall()
                for state, wtype, wevent in rows:
                    if state != "active":
                        key = "idle (client side)" if state == "idle" else f"{state}"
                    elif wtype is None:
                        key = "active, running (CPU)"
                    else:
                        key = f"active, waiting {wtype}:{wevent}"
                    self.samples[key] += 1
                time.sleep(self.every)


def concurrent(location: str, writers: int, total: int, batch: int,
               sample_dsn: str | None) -> dict[str, Any]:  # fmt: skip
    """``total`` records written by ``writers`` processes at once into ``location``."""
    from memora.memory.store import MemoryStore

    with MemoryStore(location, embedder=SeededEmbedder()) as store:  # schema and vector column
        store.add_many([f"seed {i}" for i in range(10)], user_id="seed")
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [
        ctx.Process(target=writer, args=(location, w, total // writers, batch, barrier, out))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    sampler = WaitSampler(sample_dsn) if sample_dsn else None
    barrier.wait()
    busy0, all0 = machine_busy()
    if sampler:
        sampler.start()
    reports = [out.get(timeout=1800) for _ in procs]
    busy1, all1 = machine_busy()
    for p in procs:
        p.join()
    if sampler:
        sampler.stop.set()
        sampler.join()
    wall = max(r[2] for r in reports) - min(r[1] for r in reports)
    client_cpu = sum(r[3] for r in reports)
    result: dict[str, Any] = {
        "writers": writers,
        "records": total // writers * writers,
        "seconds": round(wall, 2),
        "records_per_s": round(total // writers * writers / wall, 1),
        "cpu_seconds": {
            "writer_processes": round(client_cpu, 2),
            "machine_busy": round(busy1 - busy0, 2),
            "rest_of_machine (server, other work)": round(busy1 - busy0 - client_cpu, 2),
            "machine_capacity": round(all1 - all0, 2),
        },
    }
    if sampler:
        n = sum(sampler.samples.values())
        result["backend_samples"] = {k: round(v / n, 3) for k, v in sampler.samples.most_common()}
    return result


# -- search -----------------------------------------------------------------------------------


def exact_top(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int = 10) -> set[int]:
    sims = vectors @ query
    top = np.argpartition(-sims, k)[:k]
    return {int(i) for i in ids[top]}


def search_all(stores: dict[str, Any], users: int, per_user: int,
               queries: int) -> dict[str, Any]:  # fmt: skip
    embedder = SeededEmbedder()
    index = {}  # text -> row of the vector matrix
    texts = [record_text(u, i) for u in range(users) for i in range(per_user)]
    for row, text in enumerate(texts):
        index[text] = row
    vectors = embedder.encode(texts)
    rows = np.arange(len(texts))
    qvecs = embedder.encode([query_text(j) for j in range(queries)])
    cases = {
        "filtered": lambda j: {"user_id": user_id(j % users)},
        "unfiltered": lambda j: {"all_scopes": True},
    }
    out: dict[str, Any] = {}
    for case, scope in cases.items():
        for store in stores.values():  # warm-up
            for j in range(10):
                store.search(query_text(queries + j), mode="dense", k=10, **scope(j))
        lat: dict[str, list[float]] = {name: [] for name in stores}
        rec: dict[str, list[float]] = {name: [] for name in stores}
        for j in range(queries):
            if case == "filtered":
                user = j % users
                part = slice(user * per_user, (user + 1) * per_user)
                truth = exact_top(vectors[part], rows[part], qvecs[j])
            else:
                truth = exact_top(vectors, rows, qvecs[j])
            order = list(stores.items()) if j % 2 == 0 else list(stores.items())[::-1]
            for name, store in order:
                t0 = time.perf_counter()
                hits = store.search(query_text(j), mode="dense", k=10, **scope(j))
                lat[name].append(time.perf_counter() - t0)
                rec[name].append(len({index[h.record.text] for h in hits} & truth) / 10)
        out[case] = {
            name: {
                "p50_ms": ms(pct(lat[name], 50)),
                "p95_ms": ms(pct(lat[name], 95)),
                "recall_at_10": round(statistics.mean(rec[name]), 4),
                "min_recall_at_10": min(rec[name]),
            }
            for name in stores
        }
        base = out[case]["sqlite"]["p50_ms"]
        for name in stores:
            out[case][name]["p50_vs_sqlite"] = round(out[case][name]["p50_ms"] / base, 2)
    return out


def verify_hnsw(store: Any, queries: int) -> dict[str, Any]:
    """EXPLAIN of the unfiltered search's statement, and its time against the same statement
    forced exact; and the time of the exact-or-approximate check that precedes it (the
    planner's row estimate for a search across every scope of a large table)."""
    from memora.memory.rows import scope_sql

    records = store.records
    embedder = SeededEmbedder()
    qvecs = embedder.encode([query_text(j) for j in range(queries)])
    cond, params = scope_sql(None, live=True)
    approx_sql = (
        "WITH nearest AS MATERIALIZED (SELECT key, embedding <=> %s AS distance FROM "
        f"memories WHERE {cond.replace('?', '%s')} ORDER BY embedding <=> %s LIMIT 10) "
        "SELECT key FROM nearest ORDER BY distance, key"
    )
    exact_sql = (
        f"SELECT key FROM memories WHERE {cond.replace('?', '%s')} "
        "ORDER BY (embedding <=> %s) + 0, key LIMIT 10"
    )
    timings: dict[str, list[float]] = {"hnsw": [], "exact": [], "check": []}
    with records.db.write() as conn:
        raw = conn.raw
        raw.execute(f"SET LOCAL hnsw.ef_search = {max(records.ef_search, 20)}")
        raw.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        plan = "\n".join(
            r[0] for r in raw.execute("EXPLAIN " + approx_sql, (qvecs[0], *params, qvecs[0]))
        )
        for q in qvecs:
            t0 = time.perf_counter()
            raw.execute(approx_sql, (q, *params, q)).fetchall()
            timings["hnsw"].append(time.perf_counter() - t0)
        for q in qvecs[: max(5, queries // 10)]:
            t0 = time.perf_counter()
            raw.execute(exact_sql, (*params, q)).fetchall()
            timings["exact"].append(time.perf_counter() - t0)
    exact_chosen = False
    for _ in range(queries):
        t0 = time.perf_counter()
        exact_chosen = records._small(None, cond, params) or exact_chosen
        timings["check"].append(time.perf_counter() - t0)
    stats = records.db.one(
        "SELECT n_live_tup, last_autoanalyze, last_analyze FROM pg_stat_user_tables "
        "WHERE relname = 'memories'"
    )
    return {
        "table_stats": {
            "n_live_tup": stats[0],
            "last_autoanalyze": str(stats[1]),
            "last_analyze": str(stats[2]),
        },
        "explain": plan,
        "uses_hnsw_index": "memories_hnsw" in plan,
        "hnsw_statement_p50_ms": ms(pct(timings["hnsw"], 50)),
        "exact_statement_p50_ms": ms(pct(timings["exact"], 50)),
        "exact_or_approximate_check_p50_ms": ms(pct(timings["check"], 50)),
        "check_chose_exact": exact_chosen,
        "ef_search": records.ef_search,
    }


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--per-user", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--concurrent-records", type=int, default=4_000)
    parser.add_argument("--shared-buffers", default="1GB")
    parser.add_argument("--skip", default="", help="comma list of: concurrency")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    from memora.memory.postgres.local import LocalPostgres

    folder = Path(tempfile.mkdtemp(prefix="memora-pgbench-"))
    folder.chmod(0o755)  # as root the server runs as nobody, in a folder under this one
    settings = {"fsync": "on", "shared_buffers": args.shared_buffers}
    embedder = SeededEmbedder()
    texts = [record_text(0, i) for i in range(5000)]
    t0 = time.perf_counter()
    embedder.encode(texts)
    embed_rate = len(texts) / (time.perf_counter() - t0)
    result: dict[str, Any] = {
        "records": args.users * args.per_user,
        "users": args.users,
        "batch": args.batch,
        "queries": args.queries,
        "embedder": f"{embedder.name}: seeded synthetic, {embed_rate:,.0f} texts/s alone",
        "postgres_settings": {**settings, "synchronous_commit": "on (default)"},
        "sqlite_settings": {"journal_mode": "WAL", "synchronous": "NORMAL"},
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_at_start": os.getloadavg(),
        },
    }
    with LocalPostgres(folder / "pg", settings=settings) as pg:
        run(args, pg, folder, result)
    summary = {k: result[k] for k in ("ingestion", "search", "disk_mb") if k in result}
    print(json.dumps(summary, indent=1))


def run(args: argparse.Namespace, pg: Any, folder: Path, result: dict[str, Any]) -> None:
    from memora.memory.store import MemoryStore

    def save() -> None:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    if "concurrency" not in args.skip.split(","):
        result["concurrency"] = {}
        for name in ("postgres", "sqlite"):
            runs = {}
            for n in (1, args.writers):
                loc = (pg.create_database(f"w{n}") if name == "postgres"
                       else str(folder / f"w{n}.db"))  # fmt: skip
                runs[str(n)] = concurrent(loc, n, args.concurrent_records, args.batch,
                                          loc if name == "postgres" else None)  # fmt: skip
                print(name, runs[str(n)], flush=True)
            runs["ratio"] = round(
                runs[str(args.writers)]["records_per_s"] / runs["1"]["records_per_s"], 2
            )
            result["concurrency"][name] = runs
            save()

    locations = {"sqlite": str(folder / "m.db"), "postgres": pg.create_database("bench")}
    stores = {name: MemoryStore(loc, embedder=SeededEmbedder()) for name, loc in locations.items()}
    result["ingestion"] = {}
    for name, store in stores.items():
        result["ingestion"][name] = ingest(store, args.users, args.per_user, args.batch)
        print(name, result["ingestion"][name], flush=True)
    base = result["ingestion"]["sqlite"]["records_per_s"]
    for entry in result["ingestion"].values():
        entry["vs_sqlite"] = round(entry["records_per_s"] / base, 3)
    save()

    result["search"] = search_all(stores, args.users, args.per_user, args.queries)
    print(json.dumps(result["search"]), flush=True)
    result["search"]["postgres_unfiltered_path"] = verify_hnsw(stores["postgres"], args.queries)
    print(json.dumps(result["search"]["postgres_unfiltered_path"], indent=1), flush=True)
    save()

    pg_bytes = int(stores["postgres"].records.db.one(
        "SELECT pg_database_size(current_database())")[0])  # fmt: skip
    stores["postgres"].close()
    stores["sqlite"].close()  # saves the faiss index file
    sqlite_files = {p.name: p.stat().st_size for p in folder.glob("m.db*") if p.is_file()}
    sqlite_files |= {
        f"m.db.index/{p.name}": p.stat().st_size for p in (folder / "m.db.index").glob("*")
    }
    sqlite_bytes = sum(sqlite_files.values())
    result["disk_mb"] = {
        "sqlite": round(sqlite_bytes / 2**20, 1),
        "sqlite_files_mb": {k: round(v / 2**20, 1) for k, v in sqlite_files.items()},
        "postgres": round(pg_bytes / 2**20, 1),
        "postgres_vs_sqlite": round(pg_bytes / sqlite_bytes, 2),
    }
    save()

    result["machine"]["load_at_end"] = os.getloadavg()
    save()


if __name__ == "__main__":
    main()

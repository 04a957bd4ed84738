"""``memora serve`` under load: a real server process (uvicorn, the bundled MiniLM, a SQLite
store) on 127.0.0.1, real HTTP clients (httpx, one thread and one API key per client).

Each client's user is preloaded with ``--preload`` records (``POST /v1/memories`` in batches of
50). Then, for a fixed ``--duration`` per cell:

- ``add``: one new text per request (``POST /v1/memories``), at 1, 4 and 16 clients;
- ``search``: ``POST /v1/memories/search`` with ``k=10``, at 1, 4 and 16 clients;
- ``rerank``: ``POST /v1/rerank`` of 20 documents, strategy ``biencoder`` (the server runs with
  ``--no-model``), at 1 and 4 clients.

Each cell reports requests/s, p50 and p95 latency (ms) and the count of non-2xx responses. The
baseline, measured in the same run (for ``--duration`` just before and just after the 1-client
HTTP cell of the same operation, averaged): the same add and search called in-process on a
``MemoryStore`` with the same embedder, one thread, on a store preloaded the same way;
``http_over_inprocess_1_client`` is the 1-client HTTP figure over the in-process one.

    python bench/serve.py [--duration 8] [--preload 200] [--clients 1,4,16]

Writes bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MEMORA_N_THREADS", "1")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "serve.json"
ENV = {**os.environ}

WORDS = tuple(
    [
        "river",
        "garden",
        "bicycle",
        "violin",
        "winter",
        "harbour",
        "lantern",
        "copper",
        "meadow",
        "orchard",
        "canal",
        "pepper",
        "museum",
        "ticket",
        "sister",
        "brother",
        "dentist",
        "recipe",
        "tomato",
        "island",
        "mountain",
        "library",
        "train",
        "bakery",
        "kitchen",
        "cousin",
        "holiday",
        "concert",
        "market",
        "village",
        "teacher",
        "doctor",
        "laptop",
        "camera",
        "notebook",
        "coffee",
        "tea",
        "chess",
        "tennis",
        "swimming",
        "guitar",
        "piano",
        "painting",
        "ferry",
        "airport",
        "bridge",
        "castle",
        "forest",
    ]
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_key(db: Path, user: str) -> str:
    """A new key's secret for ``user``, through ``memora keys create``."""
    done = subprocess.run([sys.executable, "-m", "memora.cli", "keys", "create", "--db", str(db),
                           "--user", user], env=ENV, text=True, capture_output=True,
                          timeout=120, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"memora keys create failed: {done.stderr}")
    return done.stdout.strip()


def start_server(db: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "memora.cli", "serve", "--db", str(db),
                                 "--port", str(port), "--no-model"], env=ENV, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"memora serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"memora serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.25)


class Texts:
    """Unique synthetic notes (a store skips a text it already holds in the scope)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.lock = threading.Lock()

    def next(self, who: str) -> str:
        with self.lock:
            self.n += 1
            words = self.rng.sample(WORDS, 6)
            n = self.n
        return f"{who} note {n}: the {words[0]} near the {words[1]} with {' and '.join(words[2:])}."

    def query(self) -> str:
        with self.lock:
            a, b = self.rng.sample(WORDS, 2)
        return f"what about the {a} and the {b}?"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(latencies: list[float], elapsed: float, failures: int, statuses: dict[str, int],
            ) -> dict[str, Any]:  # fmt: skip
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 2) if latencies else None,
        "non_2xx": failures,
        "statuses": statuses,
        "seconds": round(elapsed, 2),
    }


def http_cell(url: str, secrets: list[str], op: str, duration: float, texts: Texts,
              docs: list[str]) -> dict[str, Any]:  # fmt: skip
    """``len(secrets)`` clients, each in its own thread with its own key, calling ``op`` until
    ``duration`` seconds have passed."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    start_line = threading.Barrier(len(secrets) + 1)
    stop_at = [0.0]

    def request(http: httpx.Client, who: str) -> httpx.Response:
        if op == "add":
            return http.post("/v1/memories", json={"texts": [texts.next(who)]})
        if op == "search":
            return http.post("/v1/memories/search", json={"query": texts.query(), "k": 10})
        return http.post("/v1/rerank", json={"query": texts.query(), "documents": docs,
                                             "strategy": "biencoder"})  # fmt: skip

    def client(i: int, secret: str) -> None:
        mine: list[float] = []
        codes: list[int] = []
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            start_line.wait()
            while time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                try:
                    code = request(http, f"c{i}").status_code
                except httpx.TransportError:
                    code = 0
                mine.append(time.perf_counter() - t0)
                codes.append(code)
        with lock:
            latencies.extend(mine)
            for code in codes:
                statuses[str(code)] = statuses.get(str(code), 0) + 1

    threads = [threading.Thread(target=client, args=(i, s)) for i, s in enumerate(secrets)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + duration + 1e9  # set for real once all are ready
    start_line.wait()
    began = time.perf_counter()
    stop_at[0] = began + duration
    for t in threads:
        t.join(timeout=duration + 120)
    elapsed = time.perf_counter() - began
    failures = sum(n for code, n in statuses.items() if not code.startswith("2"))
    return summary(latencies, elapsed, failures, statuses)


def inprocess_cell(call: Callable[[], Any], duration: float) -> dict[str, Any]:
    latencies: list[float] = []
    began = time.perf_counter()
    while time.perf_counter() - began < duration:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    return summary(latencies, time.perf_counter() - began, 0, {})


class InProcess:
    """The baseline: the same add and search on a ``MemoryStore`` in this process, one thread,
    with the embedder ``memora serve`` loads (the settings' embedder and threads), on a store
    preloaded like each HTTP user."""

    def __init__(self, path: Path, preload: int, texts: Texts) -> None:
        from memora.embed import load_embedder
        from memora.memory.store import MemoryStore
        from memora.settings import load_settings

        settings = load_settings()
        embedder = load_embedder(settings.embedder, threads=settings.embed_threads)
        self.store, self.texts = MemoryStore(path, embedder=embedder), texts
        for start in range(0, preload, 50):
            batch = [texts.next("base") for _ in range(min(50, preload - start))]
            self.store.add_many(batch, user_id="base")
        self.store.search("warm up", user_id="base", k=10)

    def cell(self, op: str, duration: float) -> dict[str, Any]:
        store, texts = self.store, self.texts
        if op == "add":
            return inprocess_cell(lambda: store.add(texts.next("base"), user_id="base"), duration)
        return inprocess_cell(lambda: store.search(texts.query(), user_id="base", k=10), duration)


def preload_users(url: str, secrets: list[str], preload: int, texts: Texts) -> float:
    began = time.perf_counter()
    for i, secret in enumerate(secrets):
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            for start in range(0, preload, 50):
                batch = [texts.next(f"c{i}") for _ in range(min(50, preload - start))]
                response = http.post("/v1/memories", json={"texts": batch})
                if response.status_code != 201:
                    raise RuntimeError(f"preload failed: {response.status_code} {response.text}")
    return time.perf_counter() - began


def table(result: dict[str, Any]) -> str:
    rows = [
        "| operation | clients | requests/s | p50 ms | p95 ms | non-2xx | p50 over in-process |",
        "|---|---|---|---|---|---|---|",
    ]
    base = result["inprocess"]
    for op in ("add", "search"):
        b = base[op]
        rows.append(
            f"| {op}, in-process `MemoryStore` (baseline) | 1 thread | "
            f"{b['requests_per_s']:,} | {b['p50_ms']} | {b['p95_ms']} | - | 1 |"
        )
        for cell in result["http"][op]:
            ratio = round(cell["p50_ms"] / b["p50_ms"], 2) if cell["p50_ms"] else None
            rows.append(f"| {op}, HTTP | {cell['clients']} | {cell['requests_per_s']:,} | "
                        f"{cell['p50_ms']} | {cell['p95_ms']} | {cell['non_2xx']} | "
                        f"{ratio} |")  # fmt: skip
    for cell in result["http"]["rerank"]:
        rows.append(f"| rerank 20 documents (biencoder), HTTP | {cell['clients']} | "
                    f"{cell['requests_per_s']:,} | {cell['p50_ms']} | {cell['p95_ms']} | "
                    f"{cell['non_2xx']} | - |")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per cell")
    parser.add_argument("--preload", type=int, default=200, help="records per user before timing")
    parser.add_argument("--clients", default="1,4,16", help="client counts for add and search")
    parser.add_argument("--rerank-clients", default="1,4")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    rerank_counts = [int(c) for c in args.rerank_clients.split(",")]
    if max(counts + rerank_counts) > 16:
        parser.error("at most 16 clients")
    texts = Texts(seed=11)
    docs = [texts.next("doc") for _ in range(20)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True, check=False).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        db = tmp / "serve.db"
        n = max(counts + rerank_counts)
        began = time.perf_counter()
        secrets = [create_key(db, f"user{i}") for i in range(n)]
        print(f"{n} keys created in {time.perf_counter() - began:.1f} s", flush=True)
        baseline = InProcess(tmp / "inprocess.db", args.preload, texts)
        runs: dict[str, list[dict[str, Any]]] = {"add": [], "search": []}
        proc, url = start_server(db, tmp / "server.log")
        try:
            preload_s = preload_users(url, secrets, args.preload, texts)
            print(f"preloaded {n} users x {args.preload} records in {preload_s:.1f} s", flush=True)
            for secret in secrets:  # one request each before timing (first-call costs)
                httpx.post(f"{url}/v1/memories/search", json={"query": "warm up", "k": 10},
                           headers={"Authorization": f"Bearer {secret}"}, timeout=60)  # fmt: skip
            http: dict[str, list[dict[str, Any]]] = {"add": [], "search": [], "rerank": []}
            plan = [(op, c) for c in counts for op in ("search", "add")]
            plan += [("rerank", c) for c in rerank_counts]
            for op, c in plan:
                if c == 1 and op in runs:  # the baseline just before and just after
                    runs[op].append(baseline.cell(op, args.duration))
                    print(f"{op} in-process: {json.dumps(runs[op][-1])}", flush=True)
                load = os.getloadavg()[0]
                cell = http_cell(url, secrets[:c], op, args.duration, texts, docs)
                cell = {"clients": c, **cell, "load_average_1min_before": round(load, 2)}
                http[op].append(cell)
                print(f"{op} x{c}: {json.dumps(cell)}", flush=True)
                if c == 1 and op in runs:
                    runs[op].append(baseline.cell(op, args.duration))
                    print(f"{op} in-process: {json.dumps(runs[op][-1])}", flush=True)
            alive = proc.poll() is None
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            baseline.store.close()
    keys = ("requests_per_s", "p50_ms", "p95_ms")
    base = {op: {k: round(statistics.mean(r[k] for r in runs[op]), 2) for k in keys}
            for op in runs}  # fmt: skip
    one = {op: next(c for c in http[op] if c["clients"] == 1) for op in runs}
    ratios = {op: {"p50_latency": round(one[op]["p50_ms"] / base[op]["p50_ms"], 2),
                   "requests_per_s": round(one[op]["requests_per_s"]
                                           / base[op]["requests_per_s"], 3)}
              for op in runs}  # fmt: skip
    result: dict[str, Any] = {
        "benchmark": "serve",
        "duration_s_per_cell": args.duration,
        "preload_records_per_user": args.preload,
        "users": n,
        "rerank_documents": len(docs),
        "server": "memora serve --no-model (uvicorn, SQLite store, bundled MiniLM)",
        "inprocess": base,
        "inprocess_runs_before_and_after_the_1_client_cell": runs,
        "http": http,
        "http_over_inprocess_1_client": ratios,
        "non_2xx_total": sum(c["non_2xx"] for cells in http.values() for c in cells),
        "server_alive_at_end": alive,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "commit": commit,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(json.dumps(result["http_over_inprocess_1_client"], indent=1))


if __name__ == "__main__":
    main()

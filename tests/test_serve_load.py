"""``memora serve`` under concurrent load, and killed mid-write: real server processes on
127.0.0.1 (a SQLite store; the bundled model for two chats amid the load), real HTTP clients
(httpx, one thread and one API key per client). Bounded: about 10 s of load, a few seconds of
writes before the kill."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.serving import Served, create_key, start

CLIENTS = 8
CHATS = 2  # the bundled model on the CPU: a few seconds each
LOAD_SECONDS = 10.0
WORDS = ("bees", "tram", "violin", "harbour", "recipe", "sister", "garden", "ferry", "chess",
         "bakery", "dentist", "lantern", "meadow", "copper", "camera", "island")  # fmt: skip


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Served]]:
    """The servers a test starts (stopped after it, killed or not)."""
    started: list[Served] = []
    yield started
    for server in started:
        server.stop()


@dataclass
class Client:
    user: str
    secret: str
    acked: dict[str, str] = field(default_factory=dict)  # id -> text, each add answered 201
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    foreign: list[dict[str, object]] = field(default_factory=list)  # another user's hits
    searches: int = 0


def note(user: str, rng: random.Random, n: int) -> str:
    a, b, c = rng.sample(WORDS, 3)
    return f"{user} wrote note {n} about the {a}, the {b} and the {c}."


def run_client(server: Served, client: Client, stop_at: float, seed: int) -> None:
    """Adds (one to three texts a request) and searches (k=10) mixed, until ``stop_at``; every
    text and every query uses the same words for every user, so a search that crossed scopes
    would find the others' records."""
    rng = random.Random(seed)
    n = 0
    with server.client(client.secret) as http:
        while time.monotonic() < stop_at:
            try:
                if rng.random() < 0.5:
                    texts = [note(client.user, rng, n + i) for i in range(rng.randint(1, 3))]
                    n += len(texts)
                    response = http.post("/v1/memories", json={"texts": texts})
                    if response.status_code == 201:
                        for result in response.json()["results"]:
                            client.acked[result["id"]] = result["text"]
                else:
                    query = f"the {rng.choice(WORDS)} and the {rng.choice(WORDS)}"
                    response = http.post("/v1/memories/search", json={"query": query, "k": 10})
                    if response.status_code == 200:
                        client.searches += 1
                        mine = f"{client.user} "
                        client.foreign += [h for h in response.json()["hits"]
                                           if h["user_id"] != client.user
                                           or not h["text"].startswith(mine)]  # fmt: skip
                client.statuses.append(response.status_code)
            except httpx.HTTPError as exc:
                client.errors.append(repr(exc))


def run_chat(server: Served, secret: str, statuses: list[int], errors: list[str]) -> None:
    """Two chat completions on the bundled model, one after the other, amid the load."""
    body = {"model": "memora", "messages": [{"role": "user", "content": "Hello, who are you?"}]}
    with server.client(secret) as http:
        for _ in range(CHATS):
            try:
                statuses.append(http.post("/v1/chat/completions", json=body,
                                          timeout=300).status_code)  # fmt: skip
            except httpx.HTTPError as exc:
                errors.append(repr(exc))


def test_concurrent_clients_lose_nothing_and_see_only_their_own(
    tmp_path: Path, servers: list[Served]
) -> None:
    db = tmp_path / "memory.db"
    clients = [Client(f"user{i}", create_key(db, "--user", f"user{i}")[0])
               for i in range(CLIENTS)]  # fmt: skip
    chatter = create_key(db, "--user", "chatter")[0]
    server = start(db, log=tmp_path / "server.log")  # with the bundled model, for the chats
    servers.append(server)
    stop_at = time.monotonic() + LOAD_SECONDS
    threads = [threading.Thread(target=run_client, args=(server, c, stop_at, i))
               for i, c in enumerate(clients)]  # fmt: skip
    chats: list[int] = []
    chat_errors: list[str] = []
    threads.append(threading.Thread(target=run_chat, args=(server, chatter, chats, chat_errors)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=LOAD_SECONDS + 600)
    assert not any(t.is_alive() for t in threads)
    assert not chat_errors and set(chats) <= {200, 429} and 200 in chats, (chats, chat_errors)
    statuses = [s for c in clients for s in c.statuses]
    errors = [e for c in clients for e in c.errors]
    assert not errors, errors[:5]
    assert not [s for s in statuses if s >= 500], sorted(set(statuses))
    assert set(statuses) <= {200, 201}, sorted(set(statuses))
    assert all(c.acked and c.searches for c in clients), [
        (c.user, len(c.acked), c.searches) for c in clients]  # fmt: skip
    assert not [h for c in clients for h in c.foreign], [h for c in clients for h in c.foreign][:3]
    assert server.proc.poll() is None, server.log.read_text()[-2000:]
    print(f"{len(statuses)} requests, {sum(len(c.acked) for c in clients)} records acknowledged, "
          f"{sum(c.searches for c in clients)} searches")  # fmt: skip
    for c in clients:
        with server.client(c.secret) as http:
            exported = http.get("/v1/export")
            assert exported.status_code == 200, exported.text
            records = {r["id"]: r for r in exported.json()["records"]}
            missing = set(c.acked) - set(records)
            assert not missing, (c.user, len(missing), len(c.acked))
            assert all(records[i]["text"] == text for i, text in c.acked.items())
            assert all(r["user_id"] == c.user for r in records.values())
            for record_id in list(c.acked)[:: max(1, len(c.acked) // 5)]:  # a few, one by one
                got = http.get(f"/v1/memories/{record_id}")
                assert got.status_code == 200 and got.json()["user_id"] == c.user, got.text
    others = clients[1].secret
    with server.client(others) as http:  # another user's ids are not found, one by one
        for record_id in list(clients[0].acked)[:5]:
            assert http.get(f"/v1/memories/{record_id}").status_code == 404


def test_every_acknowledged_add_survives_a_kill_9(tmp_path: Path, servers: list[Served]) -> None:
    db = tmp_path / "memory.db"
    secret = create_key(db, "--user", "ana")[0]
    server = start(db, "--no-model", log=tmp_path / "server.log")
    servers.append(server)
    acked: dict[str, str] = {}
    stop = threading.Event()

    def writer() -> None:
        rng = random.Random(3)
        n = 0
        with server.client(secret) as http:
            while not stop.is_set():
                texts = [note("ana", rng, n + i) for i in range(rng.randint(1, 3))]
                n += len(texts)
                try:
                    response = http.post("/v1/memories", json={"texts": texts})
                except httpx.HTTPError:
                    if server.proc.poll() is not None:
                        return  # killed: this request is not acknowledged
                    continue
                if response.status_code == 201:
                    for result in response.json()["results"]:
                        acked[result["id"]] = result["text"]

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < 20 and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    time.sleep(random.Random(7).uniform(0.3, 1.0))  # somewhere in the middle of a write
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=20)
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(acked) >= 20, len(acked)
    before_kill = dict(acked)
    print(f"{len(before_kill)} records acknowledged before the kill")

    again = start(db, "--no-model", log=tmp_path / "server2.log")
    servers.append(again)
    with again.client(secret) as http:
        records = {r["id"]: r["text"] for r in http.get("/v1/export").json()["records"]}
        missing = set(before_kill) - set(records)
        assert not missing, (len(missing), len(before_kill))
        assert all(records[i] == text for i, text in before_kill.items())
        last_id = list(before_kill)[-1]
        got = http.get(f"/v1/memories/{last_id}")
        assert got.status_code == 200 and got.json()["text"] == before_kill[last_id]
        # the restarted server still searches (the last acknowledged text is found) and adds
        found = http.post("/v1/memories/search", json={"query": before_kill[last_id], "k": 10})
        assert found.status_code == 200, found.text
        assert last_id in [h["id"] for h in found.json()["hits"]]
        added = http.post("/v1/memories", json={"texts": ["ana after the restart"]})
        assert added.status_code == 201, added.text

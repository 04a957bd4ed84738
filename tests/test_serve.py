"""``memora serve``: a real server process on 127.0.0.1 (uvicorn, the bundled MiniLM, a SQLite
store), a real HTTP client (httpx); API keys made with ``memora keys create``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving import ENV, cli, create_key, running


@dataclass
class Server:
    url: str
    db: str | Path
    ana: str
    bob: str
    reader: str
    proc: subprocess.Popen[bytes]

    def client(self, secret: str | None) -> httpx.Client:
        headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("serve") / "memory.db"
    ana, _ = create_key(db, "--user", "ana")
    bob, _ = create_key(db, "--user", "bob")
    reader, _ = create_key(db, "--user", "ana", "--scopes", "read")
    with running(db, "--max-body-bytes", "20000", log=db.with_name("server.log")) as served:
        yield Server(served.url, db, ana, bob, reader, served.proc)


def texts_of(response: httpx.Response, field: str) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["text"] for r in response.json()[field]]


def test_the_memory_api_round_trip(server: Server) -> None:
    with server.client(server.ana) as ana:
        added = ana.post("/v1/memories", json={"texts": ["Ana keeps bees in Braga.",
                                                         "Ana's sister is called Rita."],
                                               "metadata": {"source": "test"}})  # fmt: skip
        assert added.status_code == 201, added.text
        first, second = added.json()["results"]
        assert (
            first["created"]
            and first["user_id"] == "ana"
            and first["metadata"] == {"source": "test"}
        )
        hits = ana.post("/v1/memories/search", json={"query": "who is Ana's sister?", "k": 1})
        assert texts_of(hits, "hits") == ["Ana's sister is called Rita."]
        assert ana.get(f"/v1/memories/{first['id']}").json()["text"] == first["text"]
        updated = ana.patch(f"/v1/memories/{first['id']}",
                            json={"text": "Ana keeps bees in Porto now."})  # fmt: skip
        assert updated.status_code == 200 and updated.json()["text"].endswith("Porto now.")
        events = ana.get(f"/v1/memories/{first['id']}/history").json()["history"]
        assert [e["event"] for e in events] == ["ADD", "UPDATE"]
        assert ana.delete(f"/v1/memories/{second['id']}").json() == {
            "id": second["id"], "deleted": True}  # fmt: skip
        assert ana.get(f"/v1/memories/{second['id']}").json()["deleted"] is True
        listed = texts_of(ana.get("/v1/memories"), "records")
        assert "Ana keeps bees in Porto now." in listed
        exported = ana.get("/v1/export").json()["records"]
        assert {r["id"] for r in exported} >= {first["id"], second["id"]}
        assert all(r["user_id"] == "ana" for r in exported)
    schema = httpx.get(f"{server.url}/v1/openapi.json").json()
    assert "/v1/memories/search" in schema["paths"]


def test_a_key_reaches_its_own_user_only(server: Server) -> None:
    with server.client(server.bob) as bob:
        made = bob.post("/v1/memories", json={"texts": ["Bob's locker code is 4417."]}).json()
        bob_id = made["results"][0]["id"]
    with server.client(server.ana) as ana:
        assert ana.get(f"/v1/memories/{bob_id}").status_code == 404
        assert ana.delete(f"/v1/memories/{bob_id}").status_code == 404
        found = ana.post("/v1/memories/search", json={"query": "locker code", "k": 10})
        assert "Bob's locker code is 4417." not in texts_of(found, "hits")
    with server.client(server.bob) as bob:  # still there
        assert bob.get(f"/v1/memories/{bob_id}").json()["deleted"] is False


HOSTILE_FIELDS = st.sampled_from(["user_id", "agent_id", "scope", "all_users", "all_scopes"])


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(field=HOSTILE_FIELDS, value=st.sampled_from(["bob", None, True, "*", ["bob"]]),
       where=st.sampled_from(["body", "query", "header"]))  # fmt: skip
def test_hostile_requests_never_reach_the_other_key(server: Server, field: str, value: object,
                                                    where: str) -> None:  # fmt: skip
    body: dict[str, object] = {"query": "locker code", "k": 10}
    params: dict[str, str] = {}
    headers = {"Authorization": f"Bearer {server.ana}"}
    if where == "body":
        body[field] = value
    elif where == "query":
        params[field] = json.dumps(value)
    else:
        headers[f"X-{field.replace('_', '-')}"] = json.dumps(value)
    response = httpx.post(f"{server.url}/v1/memories/search", json=body, params=params,
                          headers=headers, timeout=60)  # fmt: skip
    if where == "body":  # the scope comes from the key: a body naming one is refused
        assert response.status_code == 422, response.text
        assert "unknown field" in response.json()["error"]["message"]
    elif where == "query" and field in ("user_id", "agent_id"):  # naming another user: refused
        assert response.status_code == 403, response.text
        assert "another user" in response.json()["error"]["message"]
    else:
        assert all(h["user_id"] == "ana" for h in response.json()["hits"])
        assert "Bob's locker code is 4417." not in texts_of(response, "hits")


def test_keys_are_checked_on_every_request(server: Server) -> None:
    for secret in (None, "mk_nothing_here", server.ana + "x"):
        with server.client(secret) as client:
            response = client.post("/v1/memories/search", json={"query": "bees"})
            assert response.status_code == 401
            assert response.json()["error"]["type"] == "AccessError"
    with server.client(server.reader) as reader:
        assert reader.post("/v1/memories/search", json={"query": "bees"}).status_code == 200
        refused = reader.post("/v1/memories", json={"texts": ["a reader may not write"]})
        assert refused.status_code == 403 and "write" in refused.json()["error"]["fix"]
        assert refused.json()["error"]["type"] == "ForbiddenError"
    secret, key_id = create_key(server.db, "--user", "carla")
    with server.client(secret) as carla:
        assert carla.get("/v1/memories").status_code == 200
        done = cli("keys", "revoke", "--db", str(server.db), key_id)
        assert done.returncode == 0, done.stderr
        assert carla.get("/v1/memories").status_code == 401  # the next request
    listed = cli("keys", "list", "--db", str(server.db)).stdout
    assert f"{key_id}  revoked" in listed and "mk_" not in listed


@pytest.mark.parametrize(
    ("request_", "status", "says"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"},
          "path": "/v1/memories"}, 422, "not valid JSON"),
        ({"content": b"texts=x", "path": "/v1/memories"}, 422, "a JSON object"),
        ({"json": {"texts": "one text"}, "path": "/v1/memories"}, 422, "texts"),
        ({"json": {"texts": ["x"], "colour": "red"}, "path": "/v1/memories"}, 422,
         "unknown field 'colour'"),
        ({"json": {"texts": [""]}, "path": "/v1/memories"}, 422, "empty"),
        ({"json": {"texts": ["x" * 30_000]}, "path": "/v1/memories"}, 413, "max_body_bytes"),
        ({"json": {"texts": [f"t{i}" for i in range(101)]}, "path": "/v1/memories"}, 422,
         "max_records"),
        ({"json": {"query": "  "}, "path": "/v1/memories/search"}, 422, "query"),
        ({"json": {"query": "bees", "k": 10**6}, "path": "/v1/memories/search"}, 422, "max_k"),
        ({"json": {"query": "bees", "k": "10"}, "path": "/v1/memories/search"}, 422, "k"),
    ],
    ids=["malformed JSON", "not JSON", "wrong type", "unknown field", "empty text", "oversize body",
         "too many records", "empty query", "huge k", "k as a string"],
)  # fmt: skip
def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    server: Server, request_: dict[str, object], status: int, says: str
) -> None:
    with server.client(server.ana) as ana:
        before = ana.get("/v1/export").json()["records"]
        path = str(request_.pop("path"))
        response = ana.post(path, **request_)  # type: ignore[arg-type]
        request_["path"] = path
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert says in f"{error['message']} {error.get('fix')}", error
        assert "Traceback" not in response.text
        assert ana.get("/v1/export").json()["records"] == before


DOCS = [
    "The recipe needs two eggs, flour and a pinch of salt.",
    "Lisbon's trams climb the steep streets of Alfama.",
    "Beekeepers wear veils so that the bees do not sting their faces.",
]


def test_rerank_orders_documents_in_the_common_shape(server: Server) -> None:
    with server.client(server.ana) as ana:
        body = {"query": "how do beekeepers avoid stings?", "documents": DOCS,
                "strategy": "biencoder", "top_n": 2, "return_documents": True}  # fmt: skip
        response = ana.post("/v1/rerank", json=body)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["index"] for r in results][:1] == [2] and len(results) == 2
        assert results[0]["document"]["text"] == DOCS[2]
        assert results[0]["relevance_score"] >= results[1]["relevance_score"]
        # the model's listwise ranking: every index once
        full = ana.post("/v1/rerank", json={"query": "trams", "documents": DOCS})
        assert full.status_code == 200, full.text
        assert sorted(r["index"] for r in full.json()["results"]) == [0, 1, 2]
        assert full.json()["model"] == "full"
        # a long document is ranked by its passages, and says so
        long = " ".join(["Nothing about the query here."] * 40) + " Beekeepers wear veils."
        asked = {"query": "beekeepers veils", "strategy": "biencoder",
                 "documents": [DOCS[0], long], "passage_words": 20}  # fmt: skip
        split = ana.post("/v1/rerank", json=asked)
        assert split.json()["meta"]["split"] == [{"index": 1, "words": len(long.split())}]
        assert split.json()["results"][0]["index"] == 1
        many = ana.post("/v1/rerank", json={"query": "q", "documents": ["d"] * 101})
        assert many.status_code == 422 and "max_documents" in many.json()["error"]["message"]


def test_chat_completions_with_the_openai_client_remember_across_processes(
    server: Server,
) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=server.bob, max_retries=0, timeout=300)
    said = client.chat.completions.create(
        model="memora", messages=[{"role": "user", "content": "Remember this: my bike is red."}]
    )
    assert said.choices[0].message.role == "assistant"
    assert isinstance(said.choices[0].message.content, str)
    assert said.usage is not None and said.usage.prompt_tokens > 0
    assert said.usage.total_tokens == said.usage.prompt_tokens + said.usage.completion_tokens
    assert (said.usage.completion_tokens > 0) == bool(said.choices[0].message.content)
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="memora", stream=True,
        messages=[{"role": "user", "content": "Say hello."}])]  # fmt: skip
    assert "".join(pieces).strip()
    # the facts of bob's turns reach his memory (extraction runs after each answer)
    deadline = time.monotonic() + 240
    with server.client(server.bob) as bob:
        while not any("red" in t.lower() for t in texts_of(bob.get("/v1/memories"), "records")):
            assert time.monotonic() < deadline, "no memory extracted from bob's turn"
            time.sleep(1)
    # a second process, another client: the memory is in its answer's context
    code = (
        "import json, sys; from openai import OpenAI\n"
        f"c = OpenAI(base_url={server.url + '/v1'!r}, api_key={server.bob!r}, max_retries=0,"
        " timeout=300)\n"
        "r = c.chat.completions.create(model='memora', messages=[{'role': 'user',"
        " 'content': 'What colour is my bike?'}])\n"
        "print(json.dumps(r.model_dump()['memora']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=ENV, text=True, capture_output=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    memories = [m["text"].lower() for m in json.loads(done.stdout)["memories"]]
    assert any("red" in m for m in memories), memories
    # ana's chat never sees bob's memory
    other = OpenAI(base_url=f"{server.url}/v1", api_key=server.ana, max_retries=0, timeout=300)
    answer = other.chat.completions.create(
        model="memora", messages=[{"role": "user", "content": "What colour is my bike?"}]
    )
    assert not any("red" in m["text"].lower() for m in answer.model_dump()["memora"]["memories"])


def test_a_full_model_queue_is_a_429_with_retry_after(server: Server) -> None:
    asked = [{"role": "user", "content": "Count slowly from one to fifty."}]
    body = {"model": "memora", "stream": True, "messages": asked}
    headers = {"Authorization": f"Bearer {server.ana}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=300) as http:
        streams = [http.stream("POST", "/v1/chat/completions", json=body) for _ in range(2)]
        opened = [s.__enter__() for s in streams]
        try:
            assert all(r.status_code == 200 for r in opened)
            refused = http.post("/v1/chat/completions", json={**body, "stream": False})
            assert refused.status_code == 429, refused.text
            assert refused.headers["retry-after"] == "2"
            assert "max_generations_per_key" in refused.json()["error"]["message"]
        finally:
            for s in streams:
                s.__exit__(None, None, None)


def test_an_admin_key_acts_for_the_user_it_names(server: Server) -> None:
    with server.client(server.bob) as bob:
        assert bob.post("/v1/memories", json={"texts": ["Bob collects stamps."]}).is_success
    admin, _ = create_key(server.db, "--admin")
    with server.client(admin) as client:
        assert client.get("/v1/memories").status_code == 422  # names no user
        as_bob = client.get("/v1/memories", params={"user_id": "bob"})
        assert "Bob collects stamps." in texts_of(as_bob, "records")
        added = client.post("/v1/memories", params={"user_id": "dora"},
                            json={"texts": ["Dora plays the cello."]})  # fmt: skip
        assert added.status_code == 201 and added.json()["results"][0]["user_id"] == "dora"
    with server.client(server.ana) as ana:
        assert ana.get("/v1/memories", params={"user_id": "bob"}).status_code == 403
        assert ana.get("/v1/memories", params={"user_id": "ana"}).status_code == 200


def test_metrics_count_requests_by_route(server: Server) -> None:
    with server.client(server.ana) as ana:
        ana.get("/v1/memories/no-such-id")
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert (
        'memora_requests_total{method="GET",route="/v1/memories/{record_id}",status="404"}' in text
    )
    assert "memora_request_seconds_bucket" in text and "memora_model_queue_depth" in text
    assert "no-such-id" not in text


def test_the_served_schema_is_the_one_checked_in(server: Server) -> None:
    served = httpx.get(f"{server.url}/v1/openapi.json", timeout=30).json()
    path = Path(__file__).parent.parent / "docs" / "openapi.json"
    if os.environ.get("MEMORA_UPDATE_GOLDEN"):
        path.write_text(json.dumps(served, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    assert path.exists(), "no docs/openapi.json: run with MEMORA_UPDATE_GOLDEN=1, then review it"
    assert served == json.loads(path.read_text(encoding="utf-8")), "the API changed: see the diff"


def test_the_server_on_postgresql_keeps_keys_and_scopes_there(pg_dsn: str,
                                                              tmp_path: Path) -> None:  # fmt: skip
    ana, _ = create_key(pg_dsn, "--user", "ana")
    bob, _ = create_key(pg_dsn, "--user", "bob")
    with running(pg_dsn, "--no-model", log=tmp_path / "server.log") as served:
        url = served.url
        auth = {"Authorization": f"Bearer {ana}"}
        added = httpx.post(f"{url}/v1/memories", headers=auth, timeout=60,
                           json={"texts": ["Ana's passport expires in May."]})  # fmt: skip
        assert added.status_code == 201, added.text
        found = httpx.post(f"{url}/v1/memories/search", headers=auth, timeout=60,
                           json={"query": "when does the passport expire?"})  # fmt: skip
        assert texts_of(found, "hits") == ["Ana's passport expires in May."]
        other = httpx.post(f"{url}/v1/memories/search", timeout=60,
                           headers={"Authorization": f"Bearer {bob}"},
                           json={"query": "when does the passport expire?"})  # fmt: skip
        assert texts_of(other, "hits") == []


def test_the_model_queue_runs_one_call_at_a_time_and_refuses_beyond_its_depth() -> None:
    import threading

    from memora.errors import ServerBusyError
    from memora.serve.keys import ApiKey
    from memora.serve.models import ModelQueue

    keys = [ApiKey(f"k{i}", f"u{i}", None, ("chat",), False, 0.0) for i in range(3)]
    queue = ModelQueue(depth=2, per_key=1)
    queue.enter(keys[0])
    with pytest.raises(ServerBusyError, match="max_generations_per_key=1"):
        queue.enter(keys[0])
    queue.enter(keys[1])
    with pytest.raises(ServerBusyError, match="max_queue=2"):
        queue.enter(keys[2])
    assert queue.waiting == 2
    inside, most = [0], [0]

    def call(key: ApiKey) -> None:
        with queue.running(key):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            inside[0] -= 1

    threads = [threading.Thread(target=call, args=(k,)) for k in keys[:2]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and queue.waiting == 0  # one at a time, and every place given back
    with queue.slot(keys[2]):
        assert queue.waiting == 1

"""What only the OpenAI-compatible backend does, against the real server on loopback and against
small local servers that misbehave on purpose (tests/fake_servers.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from conftest import N_CTX, SERVER_KEY, SERVER_MODEL, free_port
from fake_servers import FakeServer, cut_off, events, hang, html_page, json_body, sse_chunk

from memora import (
    AuthenticationError,
    BackendError,
    ConnectionFailedError,
    ContextOverflowError,
    ServerError,
    UnsupportedError,
)
from memora.errors import ProtocolError
from memora.llm.openai import OpenAILLM

pytestmark = pytest.mark.slow

CHAT = [{"role": "user", "content": "Say hello."}]


def test_unreachable_server_fails_fast_with_the_fix() -> None:
    llm = OpenAILLM("m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1, timeout=5)
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError, match="start the server"):
        llm.generate(CHAT, max_tokens=4)
    assert time.monotonic() - started < 30


def test_wrong_api_key_is_an_authentication_error(server_url: str) -> None:
    llm = OpenAILLM(SERVER_MODEL, base_url=server_url, api_key="wrong", max_retries=0)
    with pytest.raises(AuthenticationError, match="API key") as info:
        llm.generate(CHAT, max_tokens=4)
    assert info.value.status_code == 401


def test_prompt_longer_than_the_servers_context(remote_llm: OpenAILLM) -> None:
    with pytest.raises(ContextOverflowError, match="larger context"):
        remote_llm.generate([{"role": "user", "content": "word " * (N_CTX + 500)}], max_tokens=4)


def test_json_for_a_raw_prompt_asks_for_chat_messages(remote_llm: OpenAILLM) -> None:
    with pytest.raises(UnsupportedError, match="list of messages"):
        remote_llm.generate_json("Invent a person", {"type": "object"})


def test_a_refused_response_format_falls_back_to_the_other_style_once(server_url: str) -> None:
    # llama-cpp-python's server knows only {"type": "json_object", "schema": ...}: the refused
    # json_schema style is replaced by json_object once, and kept.
    llm = OpenAILLM(
        SERVER_MODEL, base_url=server_url, api_key=SERVER_KEY, structured_output="json_schema"
    )
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "maxLength": 20}},
        "required": ["a"],
    }
    data = llm.generate_json(CHAT, schema, max_tokens=40)
    assert isinstance(data["a"], str) and llm.structured_output == "json_object"
    assert isinstance(llm.generate_json(CHAT, schema, max_tokens=40)["a"], str)


def test_token_count_without_a_tokenizer_route_is_a_high_estimate(remote_llm: OpenAILLM) -> None:
    plain = OpenAILLM(SERVER_MODEL, base_url="http://127.0.0.1:9/v1")
    assert not plain.supports_tokenize
    text = "An estimate must not undercount the tokens of ordinary English prose."
    assert plain.count_tokens(text) >= remote_llm.count_tokens(text)
    with pytest.raises(UnsupportedError, match="tokenizer"):
        plain.tokenize(text)


# -- endpoints that misbehave on purpose (tests/fake_servers.py), each bounded in time -----


def _fake_llm(server: FakeServer, **options: Any) -> OpenAILLM:
    return OpenAILLM("m", base_url=server.url + "/v1", **options)


def test_a_hung_server_surfaces_within_20_s_with_the_default_timeouts() -> None:
    with FakeServer(hang) as server:
        llm = _fake_llm(server)
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError, match="did not answer within 15 s") as info:
            llm.generate(CHAT, max_tokens=4)
        took = time.monotonic() - started
    assert took < 20, took
    assert server.url in str(info.value) and "MEMORA_OPENAI_TIMEOUT" in str(info.value)
    assert len(server.requests) == 1  # a timeout is not retried


def test_a_longer_timeout_is_an_option() -> None:
    with FakeServer(hang) as server:
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError, match=r"within 2\.5 s"):
            _fake_llm(server, timeout=2.5, max_retries=3).call_tools(CHAT, [])
        assert 2.5 <= time.monotonic() - started < 8
        assert len(server.requests) == 1


def test_a_server_that_stops_midway_through_a_stream_times_out() -> None:
    with FakeServer(events([sse_chunk("Hel")], then_hang=True)) as server:
        stream = _fake_llm(server, timeout=2).stream(CHAT, max_tokens=4)
        with pytest.raises(ConnectionFailedError, match="did not answer within 2 s"):
            assert next(stream) == "Hel"
            next(stream)


def test_a_connection_cut_midway_is_not_an_unreachable_server() -> None:
    with FakeServer(cut_off) as server:
        with pytest.raises(ConnectionFailedError, match="broke midway") as info:
            _fake_llm(server).generate(CHAT, max_tokens=4)
        assert "start the server" not in str(info.value) and len(server.requests) == 1


def test_server_errors_are_retried_a_bounded_number_of_times() -> None:
    with FakeServer(html_page("503 Service Unavailable")) as server:
        with pytest.raises(ServerError, match=r"HTTP 503 after the retries.*It works!"):
            _fake_llm(server, max_retries=2).generate(CHAT, max_tokens=4)
        assert len(server.requests) == 3


@pytest.mark.parametrize("call", ["stream", "tools", "tokenize"])
def test_an_html_page_is_not_json_and_names_the_base_url(call: str) -> None:
    with FakeServer(html_page()) as server:
        llm = _fake_llm(server, tokenizer="llama-cpp-python" if call == "tokenize" else None)
        with pytest.raises(ProtocolError) as info:
            if call == "stream":
                llm.generate(CHAT, max_tokens=4)
            elif call == "tools":
                llm.call_tools(CHAT, [])
            else:
                llm.tokenize("hi")
    message = str(info.value)
    assert "text/html" in message and "<!DOCTYPE html>" in message
    assert server.url in message and "/v1" in message and "context" not in message
    assert len(server.requests) == 1


BROKEN_STREAMS = {
    "not-json": (["{not json", "[DONE]"], "not valid JSON: '{not json'"),
    "choices-not-a-list": ([json.dumps({"id": "x", "choices": "oops"})], '"choices": "oops"'),
    "no-choices": ([json.dumps({"hello": 1})], '{"hello": 1}'),
    "delta-not-an-object": (
        [json.dumps({"choices": [{"index": 0, "delta": "zz", "finish_reason": None}]})],
        "zz",
    ),
    "content-not-text": (
        [json.dumps({"choices": [{"index": 0, "delta": {"content": 5}, "finish_reason": None}]})],
        '"content": 5',
    ),
}


@pytest.mark.parametrize("name", BROKEN_STREAMS)
def test_a_broken_stream_says_what_was_received_and_from_where(name: str) -> None:
    datas, received = BROKEN_STREAMS[name]
    with FakeServer(events(datas)) as server, pytest.raises(ProtocolError) as info:
        _fake_llm(server).generate(CHAT, max_tokens=4)
    message = str(info.value)
    assert received in message, message
    assert f"{server.url}/v1/chat/completions" in message
    assert isinstance(info.value, BackendError) and len(server.requests) == 1


def test_a_non_streamed_json_answer_to_a_stream_is_a_protocol_error() -> None:
    answer = json_body({"object": "chat.completion", "choices": []})
    with FakeServer(answer) as server, pytest.raises(ProtocolError, match=r"json.*event stream"):
        _fake_llm(server).generate(CHAT, max_tokens=4)


def test_a_shown_answer_is_cut_to_200_characters() -> None:
    with FakeServer(events(["x" * 5000])) as server, pytest.raises(ProtocolError) as info:
        _fake_llm(server).generate(CHAT, max_tokens=4)
    assert "x" * 200 + "..." in str(info.value) and "x" * 201 not in str(info.value)


def test_a_well_formed_fake_stream_still_works() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    chunks = [sse_chunk("Hel"), sse_chunk("lo", "stop"), sse_chunk(None, None, usage=usage)]
    with FakeServer(events([*chunks, "[DONE]"])) as server:
        done = _fake_llm(server).generate(CHAT, max_tokens=4)
    assert done.text == "Hello" and done.finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (3, 2)

"""What only the OpenAI-compatible backend does, against the real server on loopback."""

from __future__ import annotations

import time

import pytest
from conftest import N_CTX, SERVER_KEY, SERVER_MODEL, free_port

from memora import (
    AuthenticationError,
    ConnectionFailedError,
    ContextOverflowError,
    UnsupportedError,
)
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

"""One contract, both backends: llama.cpp in process, and the same model behind a real
OpenAI-compatible server on loopback."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from memora import InvalidOptionError, InvalidSchemaError, OutputValidationError, UnsupportedError
from memora.llm import LLM, Completion

pytestmark = pytest.mark.slow

CHAT = [{"role": "user", "content": "Name three colors of the rainbow."}]
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
PERSON_PROMPT = [
    {"role": "user", "content": "Invent a person. Answer in JSON with their name and age."}
]


class Person(BaseModel):
    name: str = Field(min_length=2, max_length=30)
    age: int = Field(ge=0, le=120)


def test_generate_returns_text_and_usage(llm: LLM) -> None:
    done = llm.generate(CHAT, temperature=0, max_tokens=24)
    assert isinstance(done, Completion)
    assert done.text.strip()
    assert done.finish_reason in ("stop", "length")
    assert 0 < done.usage.completion_tokens <= 24
    assert done.usage.prompt_tokens > 5


def test_stream_yields_the_same_text_as_generate(llm: LLM) -> None:
    blocking = llm.generate(CHAT, temperature=0, max_tokens=24, seed=1)
    stream = llm.stream(CHAT, temperature=0, max_tokens=24, seed=1)
    assert stream.completion is None
    chunks = list(stream)
    assert len(chunks) > 1, "a stream must deliver text in pieces"
    assert "".join(chunks) == blocking.text
    assert stream.completion is not None and stream.completion.text == blocking.text


def test_max_tokens_caps_the_output(llm: LLM) -> None:
    done = llm.generate("Once upon a time", temperature=0, max_tokens=5)
    assert done.finish_reason == "length"
    assert done.usage.completion_tokens == 5


def test_stop_string_ends_generation(llm: LLM) -> None:
    free = llm.generate("1, 2, 3, 4, 5,", temperature=0, max_tokens=16)
    assert "," in free.text, free.text
    stopped = llm.generate("1, 2, 3, 4, 5,", temperature=0, max_tokens=16, stop=[","])
    assert "," not in stopped.text
    assert stopped.finish_reason == "stop"
    assert free.text.startswith(stopped.text)


def test_closing_a_stream_early_leaves_the_model_usable(llm: LLM) -> None:
    with llm.stream("Once upon a time", temperature=0, max_tokens=64) as stream:
        first = next(stream)
    assert first
    again = llm.generate("Once upon a time", temperature=0, max_tokens=8)
    assert again.text.startswith(first)


def test_json_schema_output_validates(llm: LLM) -> None:
    data = llm.generate_json(PERSON_PROMPT, PERSON_SCHEMA, temperature=0, max_tokens=64)
    assert set(data) == {"name", "age"}
    assert isinstance(data["age"], int) and 0 <= data["age"] <= 120
    assert 2 <= len(data["name"]) <= 30


def test_json_output_into_a_pydantic_model(llm: LLM) -> None:
    person = llm.generate_json(PERSON_PROMPT, Person, temperature=0, max_tokens=64)
    assert isinstance(person, Person)
    assert 0 <= person.age <= 120


def test_output_that_never_validates_raises_after_bounded_retries(llm: LLM) -> None:
    # Two tokens cannot hold a person: every attempt is cut off.
    with pytest.raises(OutputValidationError) as info:
        llm.generate_json(PERSON_PROMPT, PERSON_SCHEMA, retries=2, temperature=0, max_tokens=2)
    assert len(info.value.outputs) == 3
    assert len(info.value.errors) == 3
    assert "max_tokens" in str(info.value)


def test_unknown_option_is_an_error(llm: LLM) -> None:
    with pytest.raises(InvalidOptionError, match="did you mean 'temperature'"):
        llm.generate(CHAT, temprature=0.2)
    with pytest.raises(InvalidOptionError, match="max_tokens"):
        llm.generate(CHAT, max_tokens=0)


def test_invalid_schema_is_an_error(llm: LLM) -> None:
    with pytest.raises(InvalidSchemaError, match="not a valid JSON schema"):
        llm.generate_json(PERSON_PROMPT, {"type": "object", "properties": {"x": {"type": 12}}})


@pytest.mark.parametrize(
    "text", ["Hello world", "naïve café, 東京 and emoji 🙂", "  spaced  out  "]
)
def test_tokenize_round_trip(llm: LLM, text: str) -> None:
    assert llm.supports_tokenize
    tokens = llm.tokenize(text)
    assert tokens and all(isinstance(t, int) for t in tokens)
    assert llm.detokenize(tokens) == text
    assert llm.count_tokens(text) >= len(tokens)


def test_logits_where_supported(llm: LLM) -> None:
    prompt = "The capital of France is"
    if not llm.supports_logits:
        with pytest.raises(UnsupportedError, match="logits"):
            llm.logits(prompt)
        return
    logits = llm.logits(prompt)
    assert logits.dtype.name == "float32"
    assert logits.shape == (llm.n_vocab,)  # type: ignore[attr-defined]
    greedy = llm.generate(prompt, temperature=0, max_tokens=1)
    assert llm.detokenize([int(logits.argmax())]) == greedy.text


def test_both_backends_tokenize_alike(local_llm: LLM, remote_llm: LLM) -> None:
    text = "Memory makes agents useful."
    assert local_llm.tokenize(text) == remote_llm.tokenize(text)
    assert local_llm.generate("The sky is", temperature=0, max_tokens=8).text == (
        remote_llm.generate("The sky is", temperature=0, max_tokens=8).text
    )

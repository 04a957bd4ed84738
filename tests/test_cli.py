from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from memora.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORA_N_THREADS", "1")
    monkeypatch.setenv("MEMORA_N_CTX", "512")


def test_models_lists_names_and_files() -> None:
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    assert "smollm2-135m-instruct (default)" in result.output
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in result.output
    assert "all-MiniLM-L6-v2" in result.output


def test_generate_streams_text() -> None:
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "The capital of France is",
            "--raw",
            "--max-tokens",
            "6",
            "--temperature",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip()
    assert "Paris" in result.output


def test_generate_with_a_json_schema(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"city": {"type": "string", "minLength": 2, "maxLength": 20}},
                "required": ["city"],
            }
        )
    )
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "Name a city in Japan.",
            "--json-schema",
            str(schema),
            "--temperature",
            "0",
            "--max-tokens",
            "40",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert 2 <= len(data["city"]) <= 20


def test_errors_are_one_line_with_the_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["generate", "hi", "--model", "smollm3"])
    assert result.exit_code == 1
    assert "ModelNotFoundError" in result.output and "Known names" in result.output
    assert "Traceback" not in result.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(main, ["generate", "hi", "--json-schema", str(bad)])
    assert result.exit_code == 1
    assert "InvalidSchemaError" in result.output

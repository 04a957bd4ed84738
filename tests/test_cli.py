from __future__ import annotations

import errno
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from memora.cli import main
from memora.errors import MemoraError

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


def test_threads_and_context_length_reach_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from memora.llm import registry

    seen: list[dict[str, object]] = []
    real = registry.load_model

    def load_model(spec: str, **options: object) -> object:
        seen.append(options)
        return real(spec, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "load_model", load_model)
    argv = ["generate", "word " * 600, "--raw", "--threads", "2", "--n-ctx", "64"]
    result = CliRunner().invoke(main, [*argv, "--max-tokens", "4"])
    assert seen[0]["n_threads"] == 2 and seen[0]["n_ctx"] == 64
    # the model really got the small context (llama.cpp rounds it up to 256): 600 words do not fit
    assert result.exit_code == 1 and "ContextOverflowError" in result.stderr, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("option", "value"), [("--threads", "0"), ("--n-ctx", "8"), ("--threads", "many")]
)
def test_threads_and_context_length_are_checked(option: str, value: str) -> None:
    result = CliRunner().invoke(main, ["generate", "hi", option, value])
    assert result.exit_code == 2 and option in result.stderr


# -- the one error boundary (memora.cli.boundary) ------------------------------------------


def _decode_error() -> Exception:
    try:
        b"ok \xff".decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc
    raise AssertionError


def _json_error() -> Exception:
    try:
        json.loads('{"a": }')
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError


ESCAPES = [
    (FileNotFoundError(2, "No such file", "/in/q.jsonl"), "FileAccessError", "/in/q.jsonl does"),
    (IsADirectoryError(21, "Is a directory", "/in/d"), "FileAccessError", "/in/d is a folder"),
    (PermissionError(13, "Permission denied", "/in/p"), "FileAccessError", "no permission"),
    (FileExistsError(17, "File exists", "/in/e"), "FileAccessError", "/in/e already exists"),
    (OSError(errno.ENOSPC, "No space left", "/in/f"), "FileAccessError", "no space left"),
    (sqlite3.OperationalError("database is locked"), "StoreBusyError", "retry"),
    (sqlite3.OperationalError("unable to open database file"), "FileAccessError", "folder"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "FileAccessError", "read-"),
    (sqlite3.DatabaseError("file is not a database"), "NotMemoraFileError", "not a memora"),
    (sqlite3.DatabaseError("database disk image is malformed"), "DamagedFileError", "copy"),
    (sqlite3.IntegrityError("UNIQUE constraint failed"), "StoreError", "UNIQUE"),
    (_decode_error(), "InputFormatError", "not UTF-8 text"),
    (_json_error(), "InputFormatError", "line 1, column 7"),
    (httpx.ConnectError("refused"), "ConnectionFailedError", "refused"),
    (httpx.ReadTimeout("slow"), "ConnectionFailedError", "slow"),
    (ConnectionResetError(104, "Connection reset by peer"), "ConnectionFailedError", "reset"),
    (MemoraError("two\nlines with [/v1] [bold]markup"), "MemoraError", "two lines with [/v1] ["),
    (TimeoutError(), "ConnectionFailedError", "timed out waiting"),
    (RuntimeError("boom"), "RuntimeError", "boom (an unexpected error, probably a bug"),
    (AssertionError(), "AssertionError", ": an unexpected error, probably a bug"),
]


@pytest.fixture
def boom() -> Iterator[list[BaseException]]:
    """``memora boom``: a command that raises the exception put in the list."""
    raised: list[BaseException] = []

    @main.command(name="boom")
    def boom_command() -> None:
        raise raised[0]

    yield raised
    main.commands.pop("boom")


@pytest.mark.parametrize(("exc", "name", "says"), ESCAPES, ids=lambda x: type(x).__name__)
def test_whatever_escapes_a_command_is_one_error_line(
    boom: list[BaseException], exc: BaseException, name: str, says: str
) -> None:
    boom.append(exc)
    result = CliRunner().invoke(main, ["boom"])
    lines = result.stderr.splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {name}: ") and says in lines[0], lines[0]
    assert result.stdout == ""
    # --debug lets it through, traceback and all
    debug = CliRunner().invoke(main, ["--debug", "boom"])
    assert debug.exception is exc and "error:" not in debug.stderr


def test_ctrl_c_in_a_command(boom: list[BaseException]) -> None:
    boom.append(KeyboardInterrupt())
    result = CliRunner().invoke(main, ["boom"])
    assert result.exit_code == 130 and result.stderr == "interrupted\n"


def test_usage_errors_stay_click_errors(boom: list[BaseException]) -> None:
    boom.append(click.BadParameter("no good", param_hint="'--x'"))
    result = CliRunner().invoke(main, ["boom"])
    assert result.exit_code == 2 and "Invalid value for '--x': no good" in result.stderr

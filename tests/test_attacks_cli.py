"""Attacks on ``memora generate`` and the command line's one error boundary: bad input files,
bad settings, and OpenAI-compatible endpoints that misbehave on purpose (tests/fake_servers.py).
Each row must end in exactly one ``error:`` line naming the error, exit code 1, no traceback,
and its input files unchanged (tests/attack.py). Ctrl-C, ``--debug`` and a closed stdout are
checked after the table."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from attack import Case, run_case
from conftest import free_port
from fake_servers import FakeServer, Reply, events, hang, html_page, json_body, sse_chunk

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class EndpointCase(Case):
    """A case run against ``server`` (a fake endpoint); ``{server}`` in ``env`` is its URL."""

    server: Reply | None = None


def write(name: str, data: bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).write_bytes(data)

    return setup


def folder(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).mkdir()

    return setup


SCHEMA = json.dumps({"type": "object", "properties": {"a": {"type": "string"}}}).encode()
OPENAI = {"MEMORA_OPENAI_BASE_URL": "{server}/v1", "MEMORA_MODEL": "openai:m"}
GEN = ["generate", "Say hi", "--max-tokens", "4"]

CASES: list[Case] = [
    # -- input files and settings --------------------------------------------------------
    Case("schema-not-utf8", [*GEN, "--json-schema", "{tmp}/s.json"],
         setup=write("s.json", b"\xff\xfe{\x00"), error="InputFormatError",
         says="not UTF-8", unchanged=("s.json",)),
    Case("schema-not-json", [*GEN, "--json-schema", "{tmp}/s.json"],
         setup=write("s.json", b"{not json"), error="InvalidSchemaError", says="s.json",
         unchanged=("s.json",)),
    Case("model-not-gguf", [*GEN, "--model", "{tmp}/m.gguf"],
         setup=write("m.gguf", b"hello, not a model\n"), error="ModelLoadError",
         says="not a GGUF file", unchanged=("m.gguf",)),
    Case("model-is-a-folder", [*GEN, "--model", "{tmp}/m.gguf"], setup=folder("m.gguf"),
         error="ModelNotFoundError", unchanged=("m.gguf",)),
    Case("model-missing", [*GEN, "--model", "{tmp}/gone.gguf"], error="ModelNotFoundError",
         says="gone.gguf", unchanged=("gone.gguf",)),
    Case("setting-not-a-number", GEN, env={"MEMORA_N_CTX": "lots"},
         error="InvalidOptionError", says="MEMORA_N_CTX"),
    Case("timeout-not-positive", GEN, env={"MEMORA_OPENAI_TIMEOUT": "0"},
         error="InvalidOptionError", says="MEMORA_OPENAI_TIMEOUT"),
    # -- OpenAI-compatible endpoints that misbehave --------------------------------------
    EndpointCase("endpoint-html-page", GEN, server=html_page(), env=OPENAI,
                 error="ProtocolError", says="text/html"),
    EndpointCase("endpoint-html-page-for-json", [*GEN, "--json-schema", "{tmp}/s.json"],
                 setup=write("s.json", SCHEMA), server=html_page(), env=OPENAI,
                 error="ProtocolError", says="<!DOCTYPE html>", unchanged=("s.json",)),
    EndpointCase("endpoint-json-not-a-stream", GEN, server=json_body({"choices": []}),
                 env=OPENAI, error="ProtocolError", says="application/json"),
    EndpointCase("endpoint-stream-not-json", GEN, server=events(["{oops", "[DONE]"]),
                 env=OPENAI, error="ProtocolError", says="'{oops'"),
    EndpointCase("endpoint-chunk-wrong-shape", GEN,
                 server=events([json.dumps({"choices": [{"delta": 7}]}), "[DONE]"]),
                 env=OPENAI, error="ProtocolError", says="choices[0].delta.content"),
    EndpointCase("endpoint-hung-default-timeout", GEN, server=hang, env=OPENAI,
                 error="ConnectionFailedError", says="did not answer within 15 s",
                 timeout=30),  # 15 s, plus starting Python on a loaded machine
    EndpointCase("endpoint-hung-short-timeout", GEN, server=hang,
                 env={**OPENAI, "MEMORA_OPENAI_TIMEOUT": "1"},
                 error="ConnectionFailedError", says="within 1 s"),
    EndpointCase("endpoint-stops-midway", GEN, server=events([sse_chunk("Hi")], then_hang=True),
                 env={**OPENAI, "MEMORA_OPENAI_TIMEOUT": "2"},
                 error="ConnectionFailedError", says="did not answer"),
    EndpointCase("endpoint-ends-without-finish", GEN, server=events([sse_chunk("Hi")]),
                 env=OPENAI, error="GenerationError", says="without a finish reason"),
    EndpointCase("endpoint-rejects-key", GEN, env=OPENAI,
                 server=json_body({"error": {"message": "bad key"}}, "401 Unauthorized"),
                 error="AuthenticationError", says="API key"),
    EndpointCase("endpoint-fails", GEN, server=html_page("500 Internal Server Error"),
                 env={**OPENAI, "MEMORA_OPENAI_MAX_RETRIES": "1"},
                 error="ServerError", says="HTTP 500 after the retries"),
    EndpointCase("endpoint-without-v1", GEN, server=html_page("404 Not Found"),
                 env={**OPENAI, "MEMORA_OPENAI_BASE_URL": "{server}"},
                 error="ModelNotFoundError", says="/v1"),
    EndpointCase("endpoint-refused", GEN,
                 env={**OPENAI, "MEMORA_OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
                      "MEMORA_OPENAI_MAX_RETRIES": "0"},
                 error="ConnectionFailedError", says="cannot reach"),
    EndpointCase("endpoint-well-formed", GEN, env=OPENAI,
                 server=events([sse_chunk("Hi"), sse_chunk(None, "stop"), "[DONE]"])),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_attack(case: Case, tmp_path: Path) -> None:
    server = getattr(case, "server", None)
    if server is None:
        run_case(case, tmp_path)
        return
    with FakeServer(server) as fake:
        env = {k: v.replace("{server}", fake.url) for k, v in case.env.items()}
        started = time.monotonic()
        run_case(dataclasses.replace(case, env=env), tmp_path)
        assert time.monotonic() - started < case.timeout


def _memora(*argv: str, **env: str) -> subprocess.Popen[str]:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEMORA_N_THREADS": "1", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "memora.cli", *argv], env=full_env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_ctrl_c_as_in_a_terminal,
    )  # fmt: skip


def _ctrl_c_as_in_a_terminal() -> None:
    """A test run started in the background (``make test &``, CI) ignores SIGINT, and children
    inherit that; a user's terminal does not. Give the command the terminal's default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_is_one_line_and_exit_130() -> None:
    with FakeServer(hang) as server:
        # a long client timeout: on a loaded machine the Ctrl-C must not race the 15 s default
        proc = _memora(*GEN, MEMORA_MODEL="openai:m", MEMORA_OPENAI_BASE_URL=server.url + "/v1",
                       MEMORA_OPENAI_TIMEOUT="300")  # fmt: skip
        deadline = time.monotonic() + 120
        while not server.requests and time.monotonic() < deadline:  # waiting on the answer
            time.sleep(0.05)
        assert server.requests, "the command never reached the server"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted" and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "s.json"
    bad.write_text("{not json")
    for argv, env in (
        (["--debug", *GEN, "--json-schema", str(bad)], {}),
        ([*GEN, "--json-schema", str(bad)], {"MEMORA_DEBUG": "1"}),
    ):
        proc = _memora(*argv, **env)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1
        assert "Traceback" in err and "InvalidSchemaError" in err and "error:" not in err
    assert (
        "--debug"
        not in subprocess.run(
            [sys.executable, "-m", "memora.cli", "--help"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def test_a_reader_that_goes_away_ends_quietly() -> None:
    chunks = [sse_chunk("word " * 50) for _ in range(2000)]
    with FakeServer(events([*chunks, sse_chunk(None, "stop"), "[DONE]"])) as server:
        proc = _memora(*GEN, MEMORA_MODEL="openai:m", MEMORA_OPENAI_BASE_URL=server.url + "/v1")
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read(10)
        proc.stdout.close()  # as `memora generate ... | head -c 10` does
        err = proc.stderr.read()
        proc.wait(timeout=60)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err and "error:" not in err

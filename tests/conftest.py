"""Shared fixtures: the bundled model through llama.cpp, and the same model behind a real
OpenAI-compatible server (``python -m llama_cpp.server``) on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

# The edge of the test process: no hub, one thread per llama.cpp instance (two threads collapse
# when another process shares the 2 CPU cores).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["MEMORA_N_THREADS"] = "1"

from memora.llm.registry import model_path

GOLDEN = Path(__file__).parent / "golden"

N_CTX = 2048
SERVER_MODEL = "smollm2"
SERVER_KEY = "memora-test-key"


@pytest.fixture(autouse=True)
def _own_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings files (the TUI's, stores) go to a fresh folder, never the user's."""
    monkeypatch.setenv("MEMORA_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    return model_path("default")


@pytest.fixture(scope="session")
def local_llm(gguf_path: Path) -> Iterator[object]:
    from memora.llm.llamacpp import LlamaCppLLM

    with LlamaCppLLM(gguf_path, name="smollm2", n_ctx=N_CTX, n_threads=1, seed=0) as llm:
        yield llm


def _as_text(prompt: object) -> str:
    """A prompt as checked-in text: a string as is, a message list as ``### role`` blocks."""
    if isinstance(prompt, str):
        return prompt
    blocks = [f"### {m['role']}\n{m['content']}" for m in prompt]  # type: ignore[attr-defined]
    return "\n".join(blocks)


@pytest.fixture
def golden() -> Callable[[str, object], None]:
    """``golden(name, prompt)`` checks a rendered prompt against ``tests/golden/<name>.txt``.
    ``MEMORA_UPDATE_GOLDEN=1`` rewrites the files (review the diff before committing)."""

    def check(name: str, prompt: object) -> None:
        text = _as_text(prompt)
        path = GOLDEN / f"{name}.txt"
        if os.environ.get("MEMORA_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"no golden file {path}: run with MEMORA_UPDATE_GOLDEN=1, then review it")
        assert text == path.read_text(encoding="utf-8"), f"prompt {name} changed: see {path}"

    return check


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def server_url(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama-cpp-python OpenAI-compatible server serving the bundled model."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf_path),
        "--model_alias",
        SERVER_MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(N_CTX),
        "--n_threads",
        "1",
        "--n_threads_batch",
        "1",
        "--api_key",
        SERVER_KEY,
        "--verbose",
        "False",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if (
                    httpx.get(
                        f"{base}/v1/models",
                        headers={"Authorization": f"Bearer {SERVER_KEY}"},
                        timeout=2,
                    ).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def remote_llm(server_url: str) -> Iterator[object]:
    from memora.llm.openai import OpenAILLM

    with OpenAILLM(
        SERVER_MODEL,
        base_url=server_url,
        api_key=SERVER_KEY,
        n_ctx=N_CTX,
        structured_output="json_object",
        tokenizer="llama-cpp-python",
        sampling_extras=True,
        timeout=120,
        max_retries=1,
    ) as llm:
        yield llm


@pytest.fixture(params=["llamacpp", "openai"])
def llm(request: pytest.FixtureRequest) -> object:
    """Each contract test runs on both backends."""
    name = "local_llm" if request.param == "llamacpp" else "remote_llm"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL server with pgvector, started for this test run on a Unix socket in a
    temporary folder (``initdb`` + ``pg_ctl``), stopped and removed at the end. When it cannot
    start, the tests that need it fail with the reason (they are never skipped)."""
    from memora.memory.postgres.local import LocalPostgres

    server = LocalPostgres().start()
    yield server
    server.stop()


_DATABASES = iter(range(1_000_000))


@pytest.fixture
def pg_dsn(postgres: object) -> str:
    """The DSN of a new, empty database on the test server (one per test)."""
    return postgres.create_database(f"t{os.getpid()}_{next(_DATABASES)}")  # type: ignore[attr-defined]

"""The attack table's harness: each case runs the real ``memora`` command in a subprocess and
checks what a user sees and what is left on disk.

A case is one row::

    Case("import-bad-vector", ["memory", "import", "{tmp}/bad.jsonl", "--db", "{tmp}/m.db"],
         setup=bad_vector_file, error="InvalidRecordError", unchanged=("bad.jsonl", "m.db"))

``{tmp}`` in an argument is the case's folder. ``setup(tmp)`` makes the inputs. The run must
end with exit code ``exit``, print exactly one ``error:`` line naming ``error`` (and ``says``,
when given) and no traceback; every file named in ``unchanged`` (relative to ``{tmp}``) is
byte-for-byte what it was, and ``after(tmp)`` can check more (a store still opens with all its
records). With ``error=None`` the command must succeed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["Case", "digests", "run_case", "run_memora", "unwritable"]


@dataclass(frozen=True)
class Case:
    id: str
    argv: Sequence[str]
    setup: Callable[[Path], None] | None = None
    error: str | None = None
    says: str | None = None
    exit: int = 1
    unchanged: Sequence[str] = ()
    after: Callable[[Path], None] | None = None
    stdin: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 300

    def __str__(self) -> str:
        return self.id


def run_memora(
    argv: Sequence[str],
    cwd: Path,
    *,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``memora ARGV`` in a fresh process (offline, one llama.cpp thread, its own data folder)."""
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MEMORA_N_THREADS": "1",
        "MEMORA_DATA_DIR": str(cwd / ".memora-data"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "memora.cli", *argv], cwd=cwd, input=stdin, env=full_env,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def digests(root: Path, names: Sequence[str]) -> dict[str, str | None]:
    """sha256 of each named file (None for one that does not exist; folders by their listing)."""
    found: dict[str, str | None] = {}
    for name in names:
        path = root / name
        if path.is_dir():
            found[name] = "dir:" + ",".join(sorted(p.name for p in path.iterdir()))
        elif path.exists():
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[name] = None
    return found


def run_case(case: Case, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run ``case`` in ``tmp`` and check it (see the module docstring)."""
    if case.setup is not None:
        case.setup(tmp)
    before = digests(tmp, case.unchanged)
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    done = run_memora(argv, tmp, stdin=case.stdin, env=case.env, timeout=case.timeout)
    report = f"memora {' '.join(argv)}\nexit {done.returncode}\nstderr:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, report
    if case.error is None:
        assert done.returncode == 0, report
    else:
        assert done.returncode == case.exit, report
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, report
        assert f"{case.error}:" in errors[0], report
        if case.says is not None:
            assert case.says in errors[0], report
    assert digests(tmp, case.unchanged) == before, f"an input changed\n{report}"
    if case.after is not None:
        case.after(tmp)
    return done


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """``path`` read-only for every process, root included: ``chmod 0444`` for a user, the
    immutable flag (``chattr +i``) for root, who writes through file modes. Skips the test on a
    file system without that flag."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    flag = shutil.which("chattr")
    if flag is None or subprocess.run([flag, "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root on a file system without the immutable flag")
    try:
        yield
    finally:
        subprocess.run([flag, "-i", str(path)], check=False)

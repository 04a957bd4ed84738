"""Every example runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_quickstart_streams_and_embeds() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--threads", "1", "--max-tokens", "24"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "tokens/s" in out.stdout
    assert "related sentences rank above the unrelated one: yes" in out.stdout


@pytest.mark.slow
def test_order_invariant_choice_example() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "order_invariant_choice.py"), "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "bit-identical logits across every order: yes" in out.stdout
    for method in ("likelihood", "label", "psc"):
        line = next(line for line in out.stdout.splitlines() if line.strip().startswith(method))
        assert "(one answer for 3 orders)" in line and "," not in line.split(":")[1].split("(")[0]


@pytest.mark.slow
def test_story_demo_writes_and_prints_a_story(tmp_path: Path) -> None:
    story = tmp_path / "demo.db"
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "story_demo.py"), "--steps", "2", "--threads", "1",
         "--story", str(story)],
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "# The Bottle at Gull Rock" in out.stdout
    assert "step 2 (model)" in out.stdout


@pytest.mark.slow
def test_long_document_example_finds_the_passkey() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "long_document.py"), "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert "x the context" in lines[0] and float(lines[0].split("(")[1].split("x")[0]) > 8
    for bank in ("text bank", "KV bank"):
        line = next(line for line in lines if line.startswith(bank))
        assert line.endswith("passkey retrieved: True"), line
        assert "40718" in line.split(";")[0]  # the model read it back

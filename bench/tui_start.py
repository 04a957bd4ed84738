"""Time to the TUI's first frame: ``memora tui <story>`` in a real 80x24 pseudo-terminal, from
starting the command until the main screen is painted (its side pane's ``Memory`` heading on
the alternate screen), and until the story is loaded and the keys work (the status line's
``press m to write the opening``).

Two trees, each run by the same virtual environment's console script, turn about:

- ``before``: the code of ``--before`` (a ``git worktree``), which loads the model and the
  embedder (torch) before the app starts;
- ``after``: this working tree, which draws first and loads in a worker.

    python bench/tui_start.py [--before REV] [--runs N]

Writes bench/results/tui_start.json (every run, and the median of each) and prints the table
of bench/README.md's ``tui start`` section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from terminal import Terminal  # noqa: E402 - the tests' pseudo-terminal driver

RESULTS = HERE / "results" / "tui_start.json"
BEFORE = "9de0da3"  # the last commit that loaded everything before the first frame
MEMORA = Path(sys.executable).parent / "memora"  # the console script
FRAME = b"Memory"
LOADED = b"press m to write the opening"


def story(path: Path) -> Path:
    """A story with a premise and no paragraphs yet (the same file for both trees)."""
    from memora.recurrent import Premise
    from memora.recurrent.storyfile import StoryFile

    file = StoryFile(path)
    file.init(Premise("A keeper finds a bottle."), "bench")
    file.close()
    return path


def one_run(template: Path, pythonpath: str | None) -> dict[str, float]:
    """One start on a fresh copy of the story: seconds to the first frame and to loaded."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(template, folder / "s.db")
        env = {"MEMORA_DATA_DIR": str(folder / "data"), "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
        if pythonpath is not None:
            env["PYTHONPATH"] = pythonpath
        with Terminal([str(MEMORA), "tui", "s.db"], cwd=folder, env=env) as term:
            frame = term.wait_for(FRAME, timeout=120)
            loaded = term.wait_for(LOADED, timeout=300)
            term.send(b"q")
            term.process.wait(timeout=60)
    return {"first_frame_s": round(frame, 3), "loaded_s": round(loaded, 3)}


def worktree(rev: str, tmp: Path) -> Path:
    """A checkout of ``rev`` importable as ``memora`` (with its ``memora.tui`` and
    ``memora.agents``, which the package maps from folders beside it)."""
    tree = tmp / "before"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                   check=True, capture_output=True)  # fmt: skip
    (tree / "memora" / "tui").symlink_to(tree / "tui")
    (tree / "memora" / "agents").symlink_to(tree / "agents")
    return tree


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "runs": runs,
        "first_frame_median_s": round(statistics.median(r["first_frame_s"] for r in runs), 3),
        "loaded_median_s": round(statistics.median(r["loaded_s"] for r in runs), 3),
    }


def table(results: dict[str, Any]) -> str:
    rows = ["| code | first frame, median (s) | loaded, median (s) | runs |",
            "|---|---:|---:|---:|"]  # fmt: skip
    for name in ("before", "after"):
        r = results[name]
        label = f"{name} ({results['meta'][name + '_rev']})"
        rows.append(f"| {label} | {r['first_frame_median_s']:.2f} | {r['loaded_median_s']:.2f} "
                    f"| {len(r['runs'])} |")  # fmt: skip
    return "\n".join(rows)


def meta(rev: str, runs: int) -> dict[str, Any]:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    return {
        "before_rev": rev, "after_rev": f"{head}+working tree", "runs": runs,
        "terminal": "80x24 pty, TERM=xterm-256color", "cpus": os.cpu_count(),
        "python": platform.python_version(), "textual": version("textual"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with")
    parser.add_argument("--runs", type=int, default=5, help="starts of each tree")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        template = story(Path(tmp) / "template.db")
        tree = worktree(args.before, Path(tmp))
        try:
            one_run(template, None)  # warm the file cache: the first start reads the models
            for n in range(args.runs):
                for name in ("before", "after") if n % 2 == 0 else ("after", "before"):
                    run = one_run(template, str(tree) if name == "before" else None)
                    print(name, run, file=sys.stderr, flush=True)
                    runs[name].append(run)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)  # fmt: skip
    results = {name: summary(r) for name, r in runs.items()}
    results["meta"] = meta(args.before, args.runs)
    after, before = results["after"], results["before"]
    results["first_frame_speedup"] = round(
        before["first_frame_median_s"] / after["first_frame_median_s"], 2
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n", "utf-8")
    print(table(results))


if __name__ == "__main__":
    main()

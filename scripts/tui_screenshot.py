"""Record docs/tui.svg: a real session of the story app on the bundled model (one thread),
driven by keys through Textual's pilot: a new story, plan 2, then the model's own pick.

    python scripts/tui_screenshot.py [OUT.svg]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


async def record(out: Path) -> None:
    from memora.tui.app import build_app

    from memora.llm.llamacpp import LlamaCppLLM

    with tempfile.TemporaryDirectory() as folder:
        os.environ["MEMORA_DATA_DIR"] = folder  # no settings file of the user's
        llm = LlamaCppLLM("default", n_ctx=2048, n_threads=1, seed=0)
        app = build_app(Path(folder) / "bottle.db", llm=llm, paragraph_tokens=120)
        with llm:
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press(*"A lighthouse keeper finds a message in a bottle.", "tab")
                await pilot.press(*"The Bottle", "tab", *"mystery", "enter")
                await app.workers.wait_for_complete()
                for key in ("2", "m"):
                    await pilot.press(key)
                    await pilot.pause()
                    await app.workers.wait_for_complete()
                await pilot.pause()
                app.save_screenshot(str(out.name), path=str(out.parent))
            app.engine.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/tui.svg").resolve()
    asyncio.run(record(target))

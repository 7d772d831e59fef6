"""Regenerate screenshots/*.svg: one per screen (and the main dialogs) at 120x36.

    python -m tests.tui.make_screenshots screenshots        (what `make screenshots` runs)

Uses the committed demo workspace and fixed clock of tests/tui/snapshot_app.py, so running it
twice gives the same files.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from textual.widgets import Input

from tests.tui.snapshot_app import copy_fixture, snapshot_app

QUARTER = timedelta(days=91)
"""The plan screenshots are taken when the next quarterly rotation is due, so they show one."""
SHOTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dashboard", ()),
    ("ceremony-plan", ("c", "p")),
    ("ceremony-approval", ("c", "p", "a")),
    ("ledger", ("l",)),
    ("ledger-entry", ("l", "enter")),
    ("exports", ("e",)),
    ("officers", ("o",)),
    ("hsm", ("h",)),
    ("help", ("question_mark",)),
)
SIZE = (120, 36)


async def _shoot(name: str, keys: tuple[str, ...], out: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        later = QUARTER if name.startswith("ceremony-") else timedelta(0)
        app = snapshot_app(copy_fixture(Path(tmp)), later=later)
        async with app.run_test(size=SIZE) as pilot:
            for key in ("", *keys):
                if key:
                    await pilot.press(key)
                for _ in range(3):
                    await app.workers.wait_for_complete()
                    await pilot.pause()
            for field in app.screen.query(Input):
                field.cursor_blink = False
            await pilot.pause()
            path = Path(app.save_screenshot(f"{name}.svg", path=str(out)))
        app.backend.ws.close()
    return path


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    for name, keys in SHOTS:
        print(asyncio.run(_shoot(name, keys, out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""One launch, from process start to the first frame (run by bench_tui in a fresh interpreter):

    python -m tests.bench.launch_child minimal|console STARTED [WORKSPACE]

STARTED is the parent's `time.time()` just before it started this process, so interpreter
start-up and every import count, as a user sees them. Prints one JSON line: seconds from STARTED
to the first composed frame and (console) to the first frame showing the dashboard's keyset
rows. Imports only what the console's own launch imports, in its order (`ceremony` makes its
`Backend` before importing Textual, whose launch child process reads the dashboard's data
meanwhile, then runs the app, whose first worker opens the workspace), so that the benchmark's
imports do not count.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


def main() -> None:
    kind, started = sys.argv[1], float(sys.argv[2])
    backend: Any = None
    if kind == "console":  # as `ceremony` (cli/commands/workspace.py open_tui): before Textual
        from console.tui.backend import Backend

        def open_workspace() -> Any:
            from console.workspace import Workspace

            return Workspace.open(Path(sys.argv[3]))

        backend = Backend.opening(open_workspace, prefetch=True)
    from textual.app import App, ComposeResult
    from textual.widgets import OptionList, Static

    moments: dict[str, float] = {}

    def watch(app: App[Any], shows_data: Any) -> None:
        display = app._display

        def timed(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if renderable is None or app._batch_count:
                return
            now = time.time() - started
            moments.setdefault("painted", now)
            if "loaded" not in moments and shows_data(screen):
                moments["loaded"] = now

        app._display = timed  # type: ignore[method-assign]

    async def run(app: App[Any], want: str) -> None:
        async with app.run_test(size=(120, 36)):
            deadline = time.monotonic() + 120
            while want not in moments and time.monotonic() < deadline:
                await asyncio.sleep(0.001)

    if kind == "minimal":
        class Minimal(App[None]):
            def compose(self) -> ComposeResult:
                yield Static("hello")

        app: App[Any] = Minimal()
        watch(app, lambda _s: True)
        asyncio.run(run(app, "painted"))
    else:
        from console.tui.app import launched

        app = launched(backend, check_health=False)  # as run_app makes it

        def keysets_shown(screen: Any) -> bool:
            return any(o.option_count for o in screen.query("#keysets").results(OptionList))

        watch(app, keysets_shown)
        asyncio.run(run(app, "loaded"))
        backend.ws.close()
        # Measured already: the launch's child must not go on reading a large ledger into the
        # next launch the benchmark times.
        backend.wait_for_prefetch(120)
    print(json.dumps({**moments, "modules": len(sys.modules),
                      "cryptography_at_exit": "cryptography" in sys.modules}))


if __name__ == "__main__":
    main()

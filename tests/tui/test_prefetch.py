"""The launch's child process (console/tui/prefetch.py) reads the dashboard's data the way the
console's own worker does, or sends nothing; each case runs in a fresh interpreter, which has one
thread as the console's launch has (a pytest worker may run more, and then nothing forks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.tui.snapshot_app import copy_fixture

SAME_DATA = """
import json, sys, threading
from pathlib import Path
from console.tui.backend import Backend
from console.workspace import Workspace
from tests.tui.snapshot_app import fixed_now

root = Path(sys.argv[1])
with Workspace.open(root) as ws:
    now = fixed_now(ws)
backend = Backend.opening(lambda: Workspace.open(root), clock=lambda: now, prefetch=True)
arrived = threading.Event()
got = []
data = backend.first_dashboard(lambda d: (got.append(d), arrived.set()))
if data is None:
    assert arrived.wait(60), "the child sent nothing"
    data = got[0]
assert not backend.ready  # the child's open is not the console's
own = backend.dashboard()
print(json.dumps({"same": json.loads(json.dumps(own)) == data,
                  "keysets": [k["name"] for k in data["status"]["keysets"]]}))
backend.ws.close()
"""

NOTHING_ON_FAILURE = """
import json, threading, time
from console.errors import WorkspaceError
from console.tui.backend import Backend

def opener():
    raise WorkspaceError("no workspace here", "make one")

backend = Backend.opening(opener, prefetch=True)
called = []
ended = threading.Event()
data = backend.first_dashboard(called.append, ended.set)
assert ended.wait(60), "the child's end was not told"
backend.wait_for_prefetch(60)
print(json.dumps({"data": data, "called": len(called), "failed_told": ended.is_set(),
                  "pending": backend.prefetch_pending,
                  "later": backend.first_dashboard(called.append)}))
"""

SILENT_CHILD = """
import json, sys, threading
from console.tui.prefetch import Prefetch

def job():
    print("from the child", flush=True)
    print("a warning", file=sys.stderr, flush=True)
    return 7

prefetch = Prefetch.start(job, decode=int)
arrived = threading.Event()
got = []
value = prefetch.take(lambda v: (got.append(v), arrived.set()))
if value is None:
    assert arrived.wait(60)
    value = got[0]
print(json.dumps({"value": value}))
"""

NO_FORK_WITH_THREADS = """
import json, threading
from console.tui.prefetch import Prefetch

stop = threading.Event()
threading.Thread(target=stop.wait, daemon=True).start()
print(json.dumps({"started": Prefetch.start(lambda: 1, decode=int) is not None}))
stop.set()
"""


def _run(code: str, *args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_child_reads_what_the_console_reads(tmp_path: Path) -> None:
    """Same opener, same service, same clock: the same data as the console's own worker's."""
    result = _run(SAME_DATA, str(copy_fixture(tmp_path)))
    assert result == {"same": True, "keysets": ["demo-api"]}


def test_a_failing_open_sends_nothing() -> None:
    """The console's own open reports the error; the dashboard is never given anything, and
    is told the child ended (the app then starts its own open at once)."""
    assert _run(NOTHING_ON_FAILURE) == {"data": None, "called": 0, "failed_told": True,
                                        "pending": False, "later": None}


def test_nothing_the_child_prints_reaches_the_screen() -> None:
    """The TUI owns the terminal by the time the child runs: its output goes nowhere."""
    out = subprocess.run([sys.executable, "-c", SILENT_CHILD], capture_output=True, text=True,
                         check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == json.dumps({"value": 7})
    assert out.stderr == ""


def test_no_fork_while_another_thread_runs() -> None:
    """A forked child of a threaded process may inherit a held lock: no prefetch then."""
    assert _run(NO_FORK_WITH_THREADS) == {"started": False}


async def test_the_console_opens_once_the_prefetched_rows_are_drawn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first frame the console's own open waits for the rows the launch's child
    reads (its worker would slow their drawing), then goes ahead."""
    from console.tui import app as app_module
    from console.tui.app import CeremonyApp
    from console.tui.backend import Backend
    from console.tui.prefetch import Prefetch
    from console.tui.values import dashboard_data
    from console.workspace import Workspace
    from tests.tui.snapshot_app import fixed_now

    monkeypatch.setattr(app_module, "PREFETCH_GRACE_SECONDS", 600.0)  # never, in this test
    root = copy_fixture(tmp_path)
    with Workspace.open(root) as ws:
        now = fixed_now(ws)
    opened: list[Workspace] = []

    def opener() -> Workspace:
        opened.append(Workspace.open(root))
        return opened[-1]

    backend = Backend.opening(opener, clock=lambda: now)
    data = json.dumps(Backend(Workspace.open(root), clock=lambda: now).dashboard()).encode()
    pending: Prefetch[object] = Prefetch()
    backend._prefetch = pending  # type: ignore[assignment]  # the launch's child, still reading
    app = CeremonyApp(backend, check_health=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.5)  # room for a worker started now (none is: it waits)
        assert app.first_frame_drawn and pending.pending
        await app.workers.wait_for_complete()
        assert opened == [] and not backend.ready
        read_fd, write_fd = os.pipe()
        os.write(write_fd, data)
        os.close(write_fd)
        # What the receiving thread does when the child's data comes (no child here).
        receiver = threading.Thread(target=pending._receive,
                                    args=(os.getpid(), read_fd, dashboard_data))
        receiver.start()
        receiver.join(60)
        await pilot.pause()
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert app.screen.query_one("#keysets").option_count == 1  # type: ignore[attr-defined]
        assert len(opened) == 1 and backend.ready
    backend.ws.close()

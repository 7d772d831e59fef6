"""A fork server for the fault campaigns: the console imported once, one forked child per run.

`python -m tests.reliability.forkserver` imports every console module (never loading a PKCS#11
module: each child loads its workspace's own SoftHSM2 configuration), then reads one JSON
request per line on stdin and answers one JSON line on stdout per request:

    {"kind": "cli", "argv": [...], "env": {...}, "cwd": DIR, "stdout": FILE, "stderr": FILE,
     "kill_after": 0.21 | null, "timeout": 60}
    -> {"pid": 123, "code": 0 | 1 | -9, "killed": false, "hung": false, "elapsed": 0.43}

The child runs `console.cli.main(argv)` exactly as `python -m console` would (stdin /dev/null,
stdout and stderr to the files named), or, with kind "inspect", the logged-in inventory of
`tests.integration.ceremony_helpers`. With `kill_after` the server SIGKILLs the child that many
seconds after the fork unless it has exited (`killed` says whether the kill came first); a
child still running at `timeout` is killed and reported `hung`. A pidfd makes both race-free.

What a fork saves is the interpreter start and the imports (about 0.35 s of a 0.8 s
`execute`), so a campaign of hundreds of kills fits in a test run. When the fault shim is
preloaded (LD_PRELOAD), each child calls `faultshim_configure()` after taking its request's
environment, so FAULTSHIM_* variables apply per run.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import io
import json
import os
import pkgutil
import select
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _warm() -> None:
    """Import every console module except the TUI (and what the inspect helper needs)."""
    import console

    for info in pkgutil.walk_packages(console.__path__, "console."):
        # A __main__ module runs the console when imported.
        if info.name.startswith("console.tui") or info.name.endswith(".__main__"):
            continue
        importlib.import_module(info.name)
    importlib.import_module("tests.integration.ceremony_helpers")


def _child(request: dict[str, Any]) -> None:
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            out = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, fd)
            os.close(out)
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(
            io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace")
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
            line_buffering=True)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        configure = getattr(ctypes.CDLL(None), "faultshim_configure", None)
        if configure is not None:
            configure()
        code = _run(request)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _run(request: dict[str, Any]) -> int:
    kind = request.get("kind", "cli")
    if kind == "cli":
        from console.cli import main

        return int(main(request["argv"]))
    if kind == "inspect":
        from tests.integration.ceremony_helpers import _inspect_main

        _inspect_main(Path(request["argv"][0]), list(request["argv"][1:]))
        return 0
    raise SystemExit(f"unknown kind {kind}")


def serve() -> None:
    _warm()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(request)
        pidfd = os.pidfd_open(pid)
        kill_after = request.get("kill_after")
        timeout = float(request.get("timeout", 60))
        sent = hung = False
        wait = timeout if kill_after is None else min(float(kill_after), timeout)
        if not select.select([pidfd], [], [], wait)[0]:
            hung = kill_after is None or float(kill_after) > timeout
            os.kill(pid, signal.SIGKILL)
            sent = True
        _, status = os.waitpid(pid, 0)
        os.close(pidfd)
        elapsed = time.monotonic() - started
        code = os.waitstatus_to_exitcode(status)
        # A child that exited just before the kill was not killed.
        killed = sent and code == -signal.SIGKILL and not hung
        reply = {"pid": pid, "code": code, "killed": killed, "hung": hung and sent,
                 "elapsed": elapsed}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()

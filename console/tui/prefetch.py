"""The dashboard's first data, read by a child process while the console loads Textual.

Launching the console is two jobs that each take a core: importing Textual and composing the
first screen, and opening the workspace (its modules, the ledger's trust checks) and reading
what the dashboard shows. One after the other they doubled the time to the keyset rows
(issue 16). `Prefetch.start` forks before Textual is imported (so the child is small, and no
thread runs yet: a forked child of a threaded process could inherit a held lock); the child
calls `job` (the console's own opener, then the same service the dashboard's worker calls: every
check of `Workspace.open`, then `ceremony.status.workspace_status`), writes the JSON it returns
to a pipe and exits. Nothing is kept between runs: the data is read from the verified ledger now,
or not at all.

The child changes nothing the console relies on: the console opens its own workspace in the
app's worker after the first frame, everything else comes from that one, and the dashboard reads
its data again from it once it is open (what stays on screen is the console's own reading). A
child that fails sends nothing (the console's own open then reports the error, as without it).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Prefetch"]


class Prefetch(Generic[T]):
    """The value `job()` returned in a child process, once it arrives (see the module
    docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None
        self._arrived = False
        self._later: Callable[[T], None] | None = None

    @classmethod
    def start(cls, job: Callable[[], T], *, decode: Callable[[object], T]) -> Prefetch[T] | None:
        """Fork a child that runs `job` and sends its JSON back; None when this process cannot
        fork safely (another thread runs, or no `os.fork`): the console then reads the data
        after its own open, as it always could.

        `decode` turns the JSON back into the value (it is given what `json.loads` returned).
        """
        if not hasattr(os, "fork") or threading.active_count() != 1:
            return None
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            _child(job, write_fd)
        os.close(write_fd)
        prefetch = cls()
        # A daemon: the console never waits for the child (a child still reading a large
        # ledger when the console quits finishes on its own).
        prefetch._thread = threading.Thread(target=prefetch._receive, args=(pid, read_fd, decode),
                                            name="dashboard-prefetch", daemon=True)
        prefetch._thread.start()
        return prefetch

    _thread: threading.Thread | None = None

    def wait(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until the child has ended and its value arrived."""
        if self._thread is not None:
            self._thread.join(timeout)

    def take(self, later: Callable[[T], None],
             failed: Callable[[], None] | None = None) -> T | None:
        """The value if it has arrived; else None, and `later(value)` is called from the
        receiving thread when it arrives. `failed()` is called if the child ended without one
        (at once, if it has already)."""
        with self._lock:
            arrived, value = self._arrived, self._value
            if not arrived:
                self._later, self._failed = later, failed
                return None
        if value is None and failed is not None:
            failed()
        return value

    _failed: Callable[[], None] | None = None

    @property
    def pending(self) -> bool:
        """Whether the child's value (or its end without one) is still to come."""
        with self._lock:
            return not self._arrived

    def _receive(self, pid: int, read_fd: int, decode: Callable[[object], T]) -> None:
        chunks: list[bytes] = []
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(1 << 16):
                chunks.append(chunk)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        value: T | None = None
        if chunks:
            try:
                value = decode(json.loads(b"".join(chunks)))
            except (ValueError, TypeError, KeyError):
                value = None
        with self._lock:
            self._arrived = True
            self._value = value
            later, self._later = self._later, None
            failed, self._failed = self._failed, None
        if value is not None and later is not None:
            later(value)
        elif value is None and failed is not None:
            failed()


def _child(job: Callable[[], object], write_fd: int) -> None:
    """Run `job` and write its JSON to `write_fd`; any failure writes nothing. Ends the process
    without running the parent's exit handlers or flushing its buffers (`os._exit`)."""
    # A short-lived process that ends with os._exit: collecting its garbage would only scan,
    # again and again, the objects of the modules it imports (tens of ms of the launch).
    gc.disable()
    status = 1
    try:
        # Nothing the child might print (a library's warning) may land on the console's screen.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        payload = json.dumps(job(), separators=(",", ":")).encode()
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view):]
        status = 0
    except BaseException:  # the child says nothing: the console opens on its own
        status = 1
    finally:
        os._exit(status)

"""Making several files durable at once: one fsync each, issued together.

A bundle folder or a transcript is a handful of small files that must all be on disk before
the step that wrote them goes on. Synced one after another, each fsync waits for its own
journal commit; issued together, from a few threads, the file system commits them in one or
two (ext4's jbd2 joins concurrent fsyncs into one transaction). Every file still gets its own
fsync, and nothing returns before all of them have succeeded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait

_MAX_THREADS = 8
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    """The process's fsync threads, started on first use (idle ones cost nothing)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_MAX_THREADS, thread_name_prefix="fsync")
        return _pool


def _forget_after_fork() -> None:
    # A forked child has none of its parent's threads: it starts its own when it needs them.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def fsync_all(fds: Sequence[int], meanwhile: Callable[[], object] | None = None) -> None:
    """fsync every descriptor in `fds` (files or directories), concurrently; `meanwhile` runs
    in this thread while the disk works (its exception is raised once every fsync ended).

    Raises:
        OSError: the first fsync that failed (after all of them ended).
    """
    if len(fds) <= 1:
        for fd in fds:
            os.fsync(fd)  # the caller's file must be whole on disk before it goes on
        if meanwhile is not None:
            meanwhile()
        return
    # Each file must be whole on disk before the caller goes on (see the module docstring).
    futures = [_threads().submit(os.fsync, fd) for fd in fds]
    try:
        if meanwhile is not None:
            meanwhile()
    finally:
        wait(futures)  # the caller closes these descriptors next
    for future in futures:
        future.result()


__all__ = ["fsync_all"]

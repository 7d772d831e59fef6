"""Making several files durable at once: one fsync each, issued together.

A bundle folder or a transcript is a handful of small files that must all be on disk before
the step that wrote them goes on. Synced one after another, each fsync waits for its own
journal commit; issued together, from a few threads, the file system commits them in one or
two (ext4's jbd2 joins concurrent fsyncs into one transaction). Every file still gets its own
fsync, and nothing returns before all of them have succeeded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

_MAX_THREADS = 8


def fsync_all(fds: Sequence[int]) -> None:
    """fsync every descriptor in `fds` (files or directories opened for reading), concurrently.

    Raises:
        OSError: the first fsync that failed (after all of them ended).
    """
    if len(fds) <= 1:
        for fd in fds:
            os.fsync(fd)  # the caller's file must be whole on disk before it goes on
        return
    with ThreadPoolExecutor(max_workers=min(len(fds), _MAX_THREADS)) as pool:
        # Each file must be whole on disk before the caller goes on (see the module docstring).
        futures = [pool.submit(os.fsync, fd) for fd in fds]
    for future in futures:
        future.result()


__all__ = ["fsync_all"]

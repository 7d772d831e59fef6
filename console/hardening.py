"""Keeping secrets in memory: no core dumps, no ptrace, buffers wiped when done.

While an officer's card is unlocked, the process holds private keys, a passphrase and perhaps the
HSM PIN. `protect_process` makes sure none of it reaches a core file (RLIMIT_CORE 0) and that no
other process of the same user can read this one's memory or attach to it (PR_SET_DUMPABLE 0 on
Linux; it also stops /proc/<pid>/mem reads). Both are one-way for the life of the process, which
is what we want. `wipe` zeroes a mutable buffer (PINs are kept in `bytearray`s for this).

What this cannot do: Python `str` objects (a typed passphrase) are immutable and may linger until
the allocator reuses them; root on the host during a ceremony can read anything (README threat
model).
"""

from __future__ import annotations

import ctypes
import resource
import sys

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
_protected = False


def protect_process() -> None:
    """No core dumps and no same-user ptrace for the rest of this process (idempotent)."""
    global _protected
    if _protected:
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _protected = True


def _libc() -> ctypes.CDLL:
    # The C library the interpreter is linked with, through the process's own symbols:
    # `ctypes.util.find_library` would run ldconfig (or a compiler found on PATH) to look for
    # it, a subprocess in the middle of a ceremony.
    return ctypes.CDLL(None, use_errno=True)


def is_protected() -> bool:
    """Whether core dumps are off and (on Linux) the process is not dumpable."""
    no_core = resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    if not sys.platform.startswith("linux"):
        return no_core
    return no_core and _libc().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0


def wipe(buffer: bytearray) -> None:
    """Overwrite a secret held in a mutable buffer with zeros, then empty it."""
    for i in range(len(buffer)):
        buffer[i] = 0
    buffer.clear()


__all__ = ["is_protected", "protect_process", "wipe"]

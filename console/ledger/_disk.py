"""The ledger's files as the operating system sees them: the one-writer lock, the SQLite header
check made before SQLite touches a file, and how a refusing disk is told apart from a bad file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time as _time
from collections.abc import Iterator
from pathlib import Path

from console.errors import DISK_HINT, LedgerBusyError, LedgerError, LedgerTamperedError
from console.files import open_lock_file

__all__ = ["disk_failed", "require_database", "write_error", "write_lock"]

_SQLITE_HEADER = b"SQLite format 3\x00"


@contextlib.contextmanager
def write_lock(lock_path: Path, busy_timeout: float) -> Iterator[None]:
    """Hold the exclusive `flock` on `lock_path` (its content: the holder's pid), waiting up to
    `busy_timeout` seconds.

    Raises:
        LedgerBusyError: another process holds it longer. LedgerError: it cannot be opened.
    """
    fd = open_lock_file(lock_path, 0o600, LedgerError)
    try:
        deadline = _time.monotonic() + busy_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise LedgerError(f"cannot lock {lock_path}: {e}") from e
                if _time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                    raise LedgerBusyError(
                        f"ledger is busy: process {holder or 'unknown'} is writing to it",
                        "wait for the other console to finish, or close it",
                    ) from None
                _time.sleep(0.01)
        # Fixed width, so the record is overwritten in place (ftruncate costs a metadata
        # sync). It only names the holder: a disk that refuses it is reported by SQLite's
        # own write, with the ledger's name, if it refuses that too.
        with contextlib.suppress(OSError):
            os.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)




def require_database(path: Path) -> None:
    """Refuse a file that is not an SQLite database before SQLite opens it: SQLite takes an
    empty file for a new database and would write one into it (WAL mode writes a header)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_SQLITE_HEADER))
    except OSError as e:
        raise LedgerError(f"cannot read the ledger {path}: {e.strerror or e}",
                          "check the workspace's disk and rights") from e
    if head != _SQLITE_HEADER:
        what = "empty (0 bytes)" if not head else "not an SQLite database"
        raise LedgerTamperedError(f"ledger {path} is {what}: it was replaced or truncated",
                                  "restore it from a backup (nothing was written to it)")


_DISK_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY")


def disk_failed(error: sqlite3.Error) -> bool:
    """SQLite says the disk refused (full, failing, read-only), not that the file is bad."""
    name = str(getattr(error, "sqlite_errorname", ""))
    text = str(error)
    return name.startswith(_DISK_ERRORS) or "disk is full" in text or "disk I/O" in text


def write_error(path: Path, error: sqlite3.Error) -> LedgerError:
    text = str(error)
    if disk_failed(error):
        return LedgerError(f"cannot write to the ledger {path}: the disk is full or failing "
                           f"({text})", f"{DISK_HINT}; every entry committed before is kept")
    return LedgerError(f"cannot append to {path}: {text}")

"""The workspace's `.checkpoint` file: the last checkpoint kept outside the database, so that a
ledger restored from an older copy is refused at open (`console.ledger.opening`).

Written after each commit that records a checkpoint (`Ledger.transaction`), atomically and
durably; an empty file means "no checkpoint yet" (see `Ledger.create`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from console.errors import DISK_HINT, LedgerError, RollbackError, VerificationError
from console.files import create_fresh, read_regular_file

_GUARD_LIMIT = 1 << 20
"""A signed note is a few hundred bytes; a megabyte leaves room for many cosigners."""

__all__ = ["read_checkpoint_file", "write_checkpoint_file"]


def read_checkpoint_file(target: Path) -> str | None:
    """The guard's note; None when the file is missing, \"\" before the first checkpoint."""
    if not os.path.exists(target):  # missing, or a link to nothing: no guard
        return None
    try:  # bounded and never blocking: an insider may swap in a FIFO or a huge file
        return read_regular_file(target, follow_links=True, limit=_GUARD_LIMIT).decode("utf-8")
    except VerificationError as e:
        raise RollbackError(e.message) from e
    except UnicodeDecodeError as e:
        raise RollbackError(f"cannot read {target}: {e}") from e


def write_checkpoint_file(target: Path, note: str) -> None:
    """Replace the guard with `note`, durably (the note, then the rename)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        # The name is predictable and the folder is the insider's: never write through a link.
        with os.fdopen(create_fresh(tmp, 0o666), "w", encoding="utf-8") as f:
            f.write(note)
            f.flush()
            os.fsync(f.fileno())  # the note is whole on disk before it replaces the old one
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # and the rename itself survives a power cut
        finally:
            os.close(dir_fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LedgerError(f"cannot write {target}: {e.strerror or e}",
                          f"{DISK_HINT}; the ledger itself is committed") from e

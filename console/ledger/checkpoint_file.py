"""The workspace's `.checkpoint` file: the last checkpoint kept outside the database, so that a
ledger restored from an older copy is refused at open (`console.ledger.opening`).

Written after each commit that records a checkpoint (`Ledger.transaction`), atomically and
durably; an empty file means "no checkpoint yet" (see `Ledger.create`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from console.errors import DISK_HINT, LedgerError, RollbackError
from console.files import create_fresh

__all__ = ["read_checkpoint_file", "write_checkpoint_file"]


def read_checkpoint_file(target: Path) -> str | None:
    """The guard's note; None when the file is missing, \"\" before the first checkpoint."""
    try:
        return target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
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

"""Reading a file that decides what happens when an insider may have swapped it: never through a
symbolic link, never blocking on a FIFO, only a regular file, and bounded in size; and creating
a temporary file at a name an insider can predict, or a lock file, without writing through
what they planted.

Light on purpose (the standard library and the error types): `status` reads the pinned key file
with it on every open of the dashboard, and `console.verify` builds its folder checks on it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from console.errors import ConsoleError, VerificationError

MAX_FILE_BYTES = 16 * 1024 * 1024
_NO_FOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)

__all__ = ["MAX_FILE_BYTES", "create_fresh", "file_kind", "open_lock_file", "read_regular_file"]


_FRESH = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def create_fresh(path: Path, mode: int = 0o644) -> int:
    """A new, empty file at `path` opened for writing (the caller closes the descriptor).

    Whatever is at `path` goes first (a planted link is removed, not its target), and the file
    is created exclusively without following a link: one planted again in between fails the
    call rather than being written through.

    Raises:
        OSError: as os.open and os.unlink do.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, _FRESH, mode)


def open_lock_file(path: Path, mode: int, error: type[ConsoleError]) -> int:
    """A lock file's descriptor, read-write. The holder's pid is written into it, so it is
    opened without following a link (an insider's link would make every command write into
    the file it points to: the ledger, an officer's own file) and must be a regular file.

    Raises:
        `error`: it cannot be opened, is a link, or is not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise error(f"{path} is a symbolic link",
                        "remove it (the console makes the lock file itself)") from e
        raise error(f"cannot open {path}: {e.strerror or e}",
                    "the workspace must be writable for this command") from e
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        raise error(f"{path} is not a regular file",
                    "remove it (the console makes the lock file itself)")
    return fd


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, for an error message ("is a symbolic link")."""
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_ISFIFO(mode):
        return "is not a regular file (a FIFO)"
    if stat.S_ISSOCK(mode):
        return "is not a regular file (a socket)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is not a regular file (a device)"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    return "is not a regular file"


def read_regular_file(path: Path, *, dir_fd: int | None = None,
                      limit: int = MAX_FILE_BYTES, follow_links: bool = False) -> bytes:
    """The bytes of `path`, which must be a regular file and not a symbolic link (with
    `follow_links`, a link to a regular file is read: for files a user may keep linked, like
    ceremony.toml, where only a FIFO, a device or a huge file must be refused).

    Opened without following a link and without blocking (a FIFO swapped in after a check
    cannot hang the reader), then checked with fstat: what is read is what was checked.

    Raises:
        VerificationError: a link, not a regular file, larger than `limit`, or unreadable.
    """
    flags = _NO_FOLLOW & ~getattr(os, "O_NOFOLLOW", 0) if follow_links else _NO_FOLLOW
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except ValueError as e:  # a NUL in the path
        raise VerificationError(f"cannot read {path}: not a valid file name",
                                "check the path") from e
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise VerificationError(f"{path} is a symbolic link",
                                    "only regular files are read; replace the link") from e
        raise VerificationError(f"cannot read {path}: {e.strerror}", "check the path") from e
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # before fdopen, which refuses a folder with its own error
        os.close(fd)
        raise VerificationError(f"{path} {file_kind(mode)}", "only regular files are read")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as e:  # an I/O error, a file on a vanished mount
            raise VerificationError(f"cannot read {path}: {e.strerror}", "check the path") \
                from e
    if len(data) > limit:
        raise VerificationError(f"{path} is larger than {limit} bytes", "give the right file")
    return data

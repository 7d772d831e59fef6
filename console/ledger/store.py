"""The ledger store: entries and Merkle nodes in SQLite, one writer at a time, checked on open.

Owns `ledger.sqlite` (layout in `console.ledger._sqlite`) and the workspace's `.checkpoint`
file. An append adds at most log2(n) node rows (one on average); the root at any size and every
proof are O(log n) lookups.

Every write is one `BEGIN IMMEDIATE` transaction taken under an exclusive `flock` on
`<db>.lock`, whose content is the holder's pid: a second writer waits up to `busy_timeout`
seconds and then gets `LedgerBusyError` naming that pid. The kernel drops the lock when the
holder dies.

Trust: `open` runs the checks of `console.ledger.opening` (the checkpoint chain, the entries
since the last checkpoint, the rollback guards of `console.ledger.checkpoint_file`); afterwards
every entry a caller reads through `entries_of_type` or `entry` is proven against the last
checkpoint, so a row edited behind the console's back is refused at the first read, not only
by `verify_tree` (`console.ledger.verification`).

Writes: `transaction()` hands out a `console.ledger.writer.Writer`, which can append a signed
checkpoint after other entries, so a step's effect and the officers' signatures over it commit
together; the `.checkpoint` file follows after the commit. The browser's pages and filters are
`console.ledger.browse`; the lock and disk errors `console.ledger._disk`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from console.clock import format_time
from console.errors import (
    DISK_HINT,
    LedgerBusyError,
    LedgerError,
    LedgerTamperedError,
)
from console.jsontypes import JsonMapping
from console.ledger import browse, merkle
from console.ledger._disk import disk_failed, require_database, write_error, write_lock
from console.ledger._rows import checked, stored_entry
from console.ledger._sqlite import (
    SqlParam,
    SqlRow,
    check_schema,
    column_bytes,
    column_int,
    connect,
    create_schema,
)
from console.ledger.browse import EntryFilter
from console.ledger.checkpoint import Checkpoint, checkpoint_body, is_ledger_origin
from console.ledger.checkpoint_file import read_checkpoint_file, write_checkpoint_file
from console.ledger.entry import Entry
from console.ledger.opening import check_extends, check_open, prove
from console.ledger.trust import CHECKPOINT, TRUST_ENTRY_TYPES, Trust, TrustReplay
from console.ledger.verification import ProgressCallback, verify_tree
from console.ledger.writer import Writer

CHECKPOINT_TYPE = CHECKPOINT
PAGE_SIZE = 1000

__all__ = ["CHECKPOINT_TYPE", "EntryFilter", "Ledger", "NewEntry"]

NewEntry = tuple[str, JsonMapping, datetime, str, str | None]
"""(type, data, time, actor, ceremony) for `append_many`."""


class Ledger:
    """An open ledger. Thread-safe within a process (one lock); one writer across processes."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, origin: str,
                 checkpoint_file: Path, busy_timeout: float) -> None:
        self.path = path
        self._conn = conn
        self.origin = origin
        self.checkpoint_file = checkpoint_file
        self.busy_timeout = busy_timeout
        self._lock_path = path.with_name(path.name + ".lock")
        self._mutex = threading.RLock()
        self._cr = merkle.CompactRange()
        self._replay = TrustReplay(origin)
        self._replay_size = 0  # entries folded into _replay
        self._trust: Trust | None = None

    # --- opening -----------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, *, origin: str, checkpoint_file: Path,
               busy_timeout: float = 2.0) -> Ledger:
        """Create an empty ledger; refuses an existing database or checkpoint file.

        Raises:
            LedgerError: the file exists, the origin is malformed, or SQLite fails.
        """
        path = Path(path)
        if not is_ledger_origin(origin):
            raise LedgerError(
                f"origin {origin!r} is not <org>/ceremony-ledger/<uuid>",
                "e.g. example.com/ceremony-ledger/0b9e5d5c-7c1a-4f57-9a43-3f0f3f5d2a11",
            )
        for existing in (path, Path(checkpoint_file)):
            if existing.exists():
                raise LedgerError(
                    f"{existing} already exists", "a new ledger never replaces an old one"
                )
        try:
            conn = connect(path, create=True)
            create_schema(conn, origin)
        except sqlite3.Error as e:
            raise LedgerError(f"cannot create ledger {path}: {e}") from e
        ledger = cls(path, conn, origin=origin, checkpoint_file=Path(checkpoint_file),
                     busy_timeout=busy_timeout)
        # An empty guard says "no checkpoint yet": a process killed between the first
        # checkpoint's commit and the guard's write then finds an empty file (brought forward
        # at the next open), while a missing guard always means it was removed.
        ledger._write_checkpoint_file("")
        return ledger

    @classmethod
    def open(cls, path: Path, *, checkpoint_file: Path, expect_checkpoint: str | None = None,
             busy_timeout: float = 2.0) -> Ledger:
        """Open a ledger and check what every command relies on (see the module docstring).

        Raises:
            LedgerError: no ledger at `path`, or its folder or file is read-only.
            LedgerTamperedError: schema or triggers altered, a gap in seq, a checkpoint that
                does not count, an entry that does not match the signed tree.
            RollbackError: the database is not an extension of the checkpoint file or of
                `expect_checkpoint`.
        """
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"no ledger at {path}", "run `ceremony init` or `ceremony demo`")
        require_database(path)
        try:
            conn = connect(path, create=False)
            origin = check_schema(conn)
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and disk_failed(e) and os.access(
                    path, os.W_OK) and os.access(path.parent, os.W_OK):
                # Opening a WAL database writes its -shm index: a full or failing disk refuses
                # that, and the ledger itself is not damaged.
                raise LedgerError(f"ledger {path} cannot be opened: the disk is full or failing "
                                  f"({e})", f"{DISK_HINT}; the ledger is not damaged") from e
            if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
                # SQLite says "unable to open database file" for a read-only folder too (WAL
                # needs its -wal and -shm files): never advise restoring a good ledger.
                raise LedgerError(
                    f"ledger {path} cannot be opened: its folder or file is read-only ({e})",
                    "the console writes to the workspace; use a writable copy of it",
                ) from e
            raise LedgerTamperedError(
                f"ledger {path} is damaged or not a ledger: {e}",
                "restore it from a backup and re-open",
            ) from e
        ledger = cls(path, conn, origin=origin, checkpoint_file=Path(checkpoint_file),
                     busy_timeout=busy_timeout)
        try:
            with ledger._mutex:
                # One read transaction: a snapshot, so that a commit by another console between
                # two of the checks' queries cannot look like entries removed or inserted.
                conn.execute("BEGIN")
                try:
                    ledger._check_open(expect_checkpoint)
                finally:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("COMMIT")
        except sqlite3.Error as e:
            conn.close()
            raise LedgerError(f"ledger {path} cannot be read: {e}",
                              "run the command again; if it persists, `ceremony verify audit`"
                              ) from e
        except BaseException:
            conn.close()
            raise
        return ledger

    def close(self) -> None:
        with self._mutex:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self, expect_checkpoint: str | None) -> None:
        check_open(self, expect_checkpoint)

    @property
    def trust(self) -> Trust:
        """What the checkpointed ledger establishes: officers and quorum in force, last
        checkpoint, rehearsal flag (kept up to date by this process's appends)."""
        with self._mutex:
            if self._trust is None:
                last = self._replay.last
                unverified = last is not None and last[1] is None
                self._trust = self._replay.result(
                    last_root=self.root(last[0].seq) if last is not None and unverified else None)
            return self._trust

    def _prove(self, entries: Sequence[Entry], checkpoint: Checkpoint | None) -> None:
        """Each entry is inside the tree `checkpoint` signs (one batch inclusion proof)."""
        prove(self, entries, checkpoint)





    def check_checkpoint_file(self) -> None:
        """The ledger extends the `.checkpoint` file (RollbackError otherwise)."""
        note = self._read_checkpoint_file()
        if note:
            check_extends(self, note, str(self.checkpoint_file), self.size)

    # --- reading -----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        value = self._scalar("SELECT coalesce(max(seq) + 1, 0) FROM entries")
        return column_int(value)

    def root(self, size: int | None = None) -> bytes:
        """The RFC 9162 root of the first `size` entries (default: all), from stored nodes."""
        with self._mutex:
            n = self.size if size is None else size
            self._require_size(n)
            return self._mth()(0, n) if n else merkle.EMPTY_ROOT

    def last_time(self) -> datetime | None:
        """The last entry's time as its checked bytes say, not the `time` column (an index that
        no tree covers; this time is the floor of the console's clock)."""
        row = self._one("SELECT seq, raw, leaf_hash FROM entries ORDER BY seq DESC LIMIT 1")
        return None if row is None else checked(stored_entry(row)).time

    def entry(self, seq: int) -> Entry:
        """One entry, proven against the last checkpoint when it covers it."""
        row = self._one("SELECT seq, raw, leaf_hash FROM entries WHERE seq = ?", (seq,))
        if row is None:
            raise LedgerError(f"no entry {seq}: the ledger has {self.size} entries")
        entry = checked(stored_entry(row))
        self._prove_covered([entry])
        return entry

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[Entry]:
        """Entries `[start, stop)` in seq order, read lazily a page at a time, each checked
        against its stored leaf hash (the tree itself is checked by `open` and `verify_tree`)."""
        seq = start
        while stop is None or seq < stop:
            upper = seq + PAGE_SIZE if stop is None else min(seq + PAGE_SIZE, stop)
            rows = self._all(
                "SELECT seq, raw, leaf_hash FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq",
                (seq, upper),
            )
            if not rows:
                return
            for row in rows:
                yield checked(stored_entry(row))
            seq = upper

    def entries_of_type(self, *types: str) -> Iterator[Entry]:
        """Every entry of the given types, in seq order, through the type index (for replays).

        Each page is proven against the last checkpoint before it is handed out.

        Raises:
            LedgerTamperedError: an entry is not what the signed tree holds.
        """
        page: list[Entry] = []
        for entry in self._rows_of_type(types):
            page.append(checked(entry))
            if len(page) == PAGE_SIZE:
                self._prove_covered(page)
                yield from page
                page = []
        self._prove_covered(page)
        yield from page

    def _rows_of_type(self, types: Sequence[str]) -> Iterator[Entry]:
        marks = ",".join("?" * len(types))
        after = -1
        while True:
            rows = self._all(
                f"SELECT seq, raw, leaf_hash FROM entries WHERE type IN ({marks}) AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (*types, after, PAGE_SIZE),
            )
            if not rows:
                return
            for row in rows:
                yield checked(stored_entry(row))
            after = column_int(rows[-1][0])

    def _prove_covered(self, entries: Sequence[Entry]) -> None:
        trust = self._trust
        if trust is None or trust.checkpoint is None:
            return
        self._prove([e for e in entries if e.seq < trust.covered], trust.checkpoint)

    def page(self, offset: int, limit: int, filter: EntryFilter | None = None, *,
             newest_first: bool = False) -> list[Entry]:
        """One page of (filtered) entries: see `console.ledger.browse.page`."""
        return browse.page(self, offset, limit, filter, newest_first=newest_first)

    def count(self, filter: EntryFilter | None = None) -> int:
        """How many entries `filter` finds (all of them without one)."""
        return browse.count(self, filter)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        with self._mutex:
            n = self.size if size is None else size
            self._require_size(n)
            return merkle.inclusion_path(index, n, self._mth())

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        with self._mutex:
            n = self.size if new is None else new
            self._require_size(n)
            return merkle.consistency_path(old, n, self._mth())

    def checkpoint_body(self, size: int | None = None) -> str:
        """The checkpoint body officers sign for the tree of `size` (default: now)."""
        with self._mutex:
            n = self.size if size is None else size
            return checkpoint_body(self.origin, n, self.root(n))

    def latest_checkpoint(self) -> str | None:
        """The note of the last `checkpoint.signed` entry, if any."""
        row = self._one(
            "SELECT seq, raw, leaf_hash FROM entries WHERE type = ? ORDER BY seq DESC LIMIT 1",
            (CHECKPOINT,),
        )
        return None if row is None else str(checked(stored_entry(row)).data["note"])

    def checkpoint_entries(self) -> list[Entry]:
        return list(self.entries_of_type(CHECKPOINT))

    # --- writing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Writer]:
        """One write transaction: `with ledger.transaction() as w: w.append(...)`.

        Checkpoints appended with `w.append_checkpoint` are written to the `.checkpoint` file
        after the commit.

        Raises:
            LedgerBusyError: another process holds the write lock longer than `busy_timeout`.
        """
        with self._mutex, self._write_lock():
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                if disk_failed(e):
                    raise write_error(self.path, e) from e
                raise LedgerBusyError(
                    f"ledger {self.path} is locked by another connection",
                    "close the other program using the ledger and try again",
                ) from e
            try:
                size = self.size
                if size != self._cr.size:
                    # Another process appended since our last write: reload O(log n) nodes.
                    self._cr = self._compact_range(size)
                    self._catch_up(size)
                last = self.last_time()
                writer = Writer(self, size, self._cr.copy(),
                                None if last is None else format_time(last),
                                self._replay.copy())
                yield writer
                self._conn.execute("COMMIT")
            except BaseException as error:
                # A disk that refused a write may refuse the rollback too: SQLite then rolls
                # the transaction back when the database is next opened.
                with contextlib.suppress(sqlite3.Error):
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise write_error(self.path, error) from error
                raise
            self._cr = writer._cr
            self._replay = writer._replay
            self._replay_size = writer.size
            self._trust = None
        if writer.notes:
            self._write_checkpoint_file(writer.notes[-1])

    def _catch_up(self, size: int) -> None:
        """Fold the trust entries another process appended since this one last wrote."""
        for entry in self._rows_of_type(TRUST_ENTRY_TYPES):
            if entry.seq >= self._replay_size:
                self._replay.apply(
                    entry, root=self.root(entry.seq) if entry.type == CHECKPOINT else None)
        self._replay_size = size

    def append(self, type: str, data: JsonMapping, *, time: datetime, actor: str,
               ceremony: str | None = None) -> Entry:
        """Append one entry in its own transaction.

        Raises:
            EntryRejectedError: data the ledger cannot store. ClockError: a time earlier than
            the last entry's. LedgerBusyError: another writer holds the ledger.
        """
        try:
            with self.transaction() as w:
                return w.append(type, data, time=time, actor=actor, ceremony=ceremony)
        except sqlite3.Error as e:
            raise write_error(self.path, e) from e

    def append_many(self, items: Sequence[NewEntry]) -> list[Entry]:
        """Append several entries in one transaction: all of them or none."""
        try:
            with self.transaction() as w:
                for kind, data, when, actor, ceremony in items:
                    w.append(kind, data, time=when, actor=actor, ceremony=ceremony)
                return list(w.appended)
        except sqlite3.Error as e:
            raise write_error(self.path, e) from e

    def record_checkpoint(self, note: str, *, time: datetime, actor: str) -> Entry:
        """Record a signed checkpoint of the whole current tree, then update the checkpoint file.

        Raises:
            VerificationError: the note is malformed, for another tree, or not signed by the
                routine quorum of the officers in force.
        """
        try:
            with self.transaction() as w:
                return w.append_checkpoint(note, time=time, actor=actor)
        except sqlite3.Error as e:
            raise write_error(self.path, e) from e

    # --- verification ------------------------------------------------------------------------

    def verify_tree(self, progress: ProgressCallback | None = None) -> None:
        """Check everything: see `console.ledger.verification.verify_tree`."""
        with self._mutex:
            verify_tree(self, self._conn, progress)

    # --- internals ---------------------------------------------------------------------------

    def _scalar(self, sql: str, params: Sequence[SqlParam] = ()) -> object:
        row = self._one(sql, params)
        return None if row is None else row[0]

    def _one(self, sql: str, params: Sequence[SqlParam] = ()) -> SqlRow | None:
        with self._mutex:
            try:
                row: SqlRow | None = self._conn.execute(sql, params).fetchone()
                return row
            except sqlite3.DatabaseError as e:
                raise LedgerTamperedError(f"ledger {self.path} cannot be read: {e}") from e

    def _all(self, sql: str, params: Sequence[SqlParam] = ()) -> list[SqlRow]:
        with self._mutex:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as e:
                raise LedgerTamperedError(f"ledger {self.path} cannot be read: {e}") from e

    def _require_size(self, n: int) -> None:
        if not 0 <= n <= self.size:
            raise LedgerError(f"no tree of size {n}: the ledger has {self.size} entries")

    def _node(self, level: int, index: int) -> bytes:
        if level == 0:
            row = self._one("SELECT leaf_hash FROM entries WHERE seq = ?", (index,))
        else:
            row = self._one("SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, index))
        if row is None:
            raise LedgerTamperedError(
                f"tree node ({level}, {index}) is missing", "restore the ledger from a backup"
            )
        return column_bytes(row[0])

    def _mth(self) -> merkle.SubtreeHash:
        return merkle.subtree_hash_from_perfect(self._node)

    def _compact_range(self, size: int) -> merkle.CompactRange:
        return merkle.CompactRange.from_perfect_nodes(size, self._node)

    def _read_checkpoint_file(self) -> str | None:
        return read_checkpoint_file(self.checkpoint_file)

    def _write_checkpoint_file(self, note: str) -> None:
        write_checkpoint_file(self.checkpoint_file, note)

    def _write_lock(self) -> contextlib.AbstractContextManager[None]:
        return write_lock(self._lock_path, self.busy_timeout)
_SQLITE_HEADER = b"SQLite format 3\x00"


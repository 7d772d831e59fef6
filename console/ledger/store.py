"""The ledger store: entries and Merkle nodes in SQLite, one writer at a time, checked on open.

Owns `ledger.sqlite` (layout in `console.ledger._sqlite`) and the workspace's `.checkpoint`
file. An append adds at most log2(n) node rows (one on average); the root at any size and every
proof are O(log n) lookups.

Every write is one `BEGIN IMMEDIATE` transaction taken under an exclusive `flock` on
`<db>.lock`, whose content is the holder's pid: a second writer waits up to `busy_timeout`
seconds and then gets `LedgerBusyError` naming that pid. The kernel drops the lock when the
holder dies.

Trust (`console.ledger.trust`): `open` replays the officers, quorum rules and checkpoints and
refuses a checkpoint that does not count; proves every entry it replays against the last
checkpoint's signed root; recomputes the entries after that checkpoint from their bytes; and
refuses a database that is not an extension of the `.checkpoint` file or of a checkpoint an
officer kept (`expect_checkpoint`). Afterwards every entry a caller reads through
`entries_of_type` or `entry` is proven the same way, so a row edited behind the console's back
is refused at the first read, not only by `verify_tree`.

Checkpoints: a checkpoint of size N covers entries `[0, N)` and is recorded as entry N itself.
`transaction()` can append one after other entries (`_Writer.append_checkpoint`), so a step's
effect and the officers' signatures over it commit together; the `.checkpoint` file follows
after the commit.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import threading
import time as _time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from console import jcs
from console.clock import format_time, require_utc
from console.errors import (
    DISK_HINT,
    ClockError,
    LedgerBusyError,
    LedgerError,
    LedgerTamperedError,
    RollbackError,
    VerificationError,
)
from console.ledger import merkle
from console.ledger._sqlite import check_schema, connect, create_schema
from console.ledger.checkpoint import (
    Checkpoint,
    checkpoint_body,
    is_ledger_origin,
    parse_checkpoint_body,
    parse_note,
)
from console.ledger.entry import Entry, encode_entry, parse_entry
from console.ledger.trust import CHECKPOINT, TRUST_ENTRY_TYPES, Trust, TrustReplay
from console.ledger.verification import ProgressCallback, verify_tree

CHECKPOINT_TYPE = CHECKPOINT
PAGE_SIZE = 1000

__all__ = ["CHECKPOINT_TYPE", "EntryFilter", "Ledger", "NewEntry"]

NewEntry = tuple[str, dict[str, Any], datetime, str, str | None]
"""(type, data, time, actor, ceremony) for `append_many`."""


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What the ledger browser shows: a type prefix, a ceremony id (or prefix), text in data."""

    type_prefix: str | None = None
    ceremony: str | None = None
    text: str | None = None

    def sql(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.type_prefix:
            clauses.append("substr(type, 1, ?) = ?")
            params += [len(self.type_prefix), self.type_prefix]
        if self.ceremony is not None:
            # The UI shows 8 characters of a 12-character id: a prefix finds the ceremony.
            clauses.append("substr(ceremony, 1, ?) = ?")
            params += [len(self.ceremony), self.ceremony]
        if self.text:
            # Search the stored bytes for the text as JCS writes it inside a string.
            needle = jcs.canonicalize(self.text)[1:-1]
            clauses.append("instr(raw, ?) > 0")
            params.append(needle)
        return (" AND ".join(clauses) or "1"), params


class _Writer:
    """Appends inside one open write transaction (see `Ledger.transaction`)."""

    def __init__(self, ledger: Ledger, size: int, cr: merkle.CompactRange, last: str | None,
                 replay: TrustReplay) -> None:
        self._ledger = ledger
        self.size = size
        self._cr = cr
        self._last = last
        self._replay = replay
        self.appended: list[Entry] = []
        self.notes: list[str] = []

    @property
    def origin(self) -> str:
        return self._ledger.origin

    def root(self) -> bytes:
        """The root of every entry so far, including this transaction's."""
        return self._cr.root()

    def checkpoint_body(self) -> str:
        """The checkpoint body officers sign to cover every entry so far."""
        return checkpoint_body(self.origin, self.size, self.root())

    def append(self, type: str, data: dict[str, Any], *, time: datetime, actor: str,
               ceremony: str | None = None) -> Entry:
        when = format_time(require_utc(time, "entry time"))
        if self._last is not None and when < self._last:
            raise ClockError(
                f"entry time {when} is earlier than the last entry's time {self._last}",
                "the ledger's clock never moves backwards; use a time at or after the last one",
            )
        raw = encode_entry(self.size, type, data, time=time, actor=actor, ceremony=ceremony)
        entry = parse_entry(raw, expect_seq=self.size)
        if entry.type in TRUST_ENTRY_TYPES:
            try:
                self._replay.apply(entry, root=self.root() if entry.type == CHECKPOINT else None)
            except LedgerTamperedError as e:
                raise VerificationError(e.message, "sign a checkpoint with the routine quorum "
                                        "of the officers in force") from e
        conn = self._ledger._conn
        conn.execute(
            "INSERT INTO entries (seq, raw, leaf_hash, type, ceremony, time) VALUES (?,?,?,?,?,?)",
            (entry.seq, raw, entry.leaf_hash, entry.type, entry.ceremony, when),
        )
        made = self._cr.append(entry.leaf_hash)
        if made:
            conn.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?,?,?)", made)
        self.size += 1
        self._last = when
        self.appended.append(entry)
        return entry

    def append_checkpoint(self, note: str, *, time: datetime, actor: str) -> Entry:
        """Record `note`, which must cover every entry so far, as the next entry.

        Raises:
            VerificationError: the note is malformed, for another tree, or not signed by the
                routine quorum of the officers in force.
        """
        try:
            body = parse_checkpoint_body(parse_note(note)[0])
        except VerificationError as e:
            raise VerificationError(f"checkpoint note: {e.message}", e.hint) from e
        if body.size != self.size or body.root != self.root():
            raise VerificationError(
                f"checkpoint covers {body.size} entries (root {_b64(body.root)}) but the ledger "
                f"has {self.size} (root {_b64(self.root())})",
                "sign a checkpoint of the ledger as it is now",
            )
        entry = self.append(CHECKPOINT, {"size": body.size, "root": _b64(body.root),
                                         "note": note}, time=time, actor=actor)
        self.notes.append(note)
        return entry


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
        _require_database(path)
        try:
            conn = connect(path, create=False)
            origin = check_schema(conn)
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and _disk_failed(e) and os.access(
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
        size = self.size
        count = self._scalar("SELECT count(*) FROM entries")
        if count != size:
            raise LedgerTamperedError(
                f"ledger has {count} entries but its last seq is {size - 1}",
                "entries were removed or inserted; restore the ledger from a backup",
            )
        # 1. The checkpoint chain: who is in force, and the last checkpoint that counts.
        replay = TrustReplay(self.origin)
        read: list[Entry] = []
        for entry in self._rows_of_type(TRUST_ENTRY_TYPES):
            read.append(entry)
            replay.apply(entry, root=self.root(entry.seq) if replay.needs_root(entry) else None)
        last = replay.last
        trust = replay.result(last_root=self.root(last[0].seq) if last is not None else None)
        covered = trust.covered
        # 2. Every entry the chain read is inside the signed tree.
        self._prove([e for e in read if e.seq < covered], trust.checkpoint)
        # 3. The entries after the last checkpoint, recomputed from their bytes.
        cr = merkle.CompactRange.from_perfect_nodes(covered, self._node)
        for entry in self.entries(covered, size):
            cr.append(_leaf(entry))
        if cr.root() != self.root(size):
            raise LedgerTamperedError(
                f"the tree stored for entries {covered}..{size - 1} does not match their bytes",
                "the ledger was edited behind the console's back: restore it from a backup",
            )
        self._cr = cr
        self._replay = replay
        self._replay_size = size
        self._trust = trust
        # 4. The rollback guards.
        file_note = self._read_checkpoint_file()
        if file_note is None and trust.checkpoint is not None:
            raise RollbackError(
                f"the ledger records a checkpoint (size {covered}) but "
                f"{self.checkpoint_file} is missing",
                "restore .checkpoint from an officer's copy, or give the checkpoint an officer "
                "kept with --expect-checkpoint FILE",
            )
        for source, note in ((str(self.checkpoint_file), file_note or None),
                             ("--expect-checkpoint", expect_checkpoint)):
            if note is not None:
                self._check_extends(note, source, size)
        if trust.checkpoint is not None and file_note == "":
            self._write_checkpoint_file(self.latest_checkpoint() or "")
        elif trust.checkpoint is not None and file_note is not None:
            file_size = self._note_body(file_note, str(self.checkpoint_file)).size
            if covered > file_size:
                # A crash between the commit and the file write: bring the file forward.
                self._write_checkpoint_file(self.latest_checkpoint() or file_note)

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
        if not entries or checkpoint is None:
            return
        leaves = {e.seq: _leaf(e) for e in entries}
        root = merkle.root_with_leaves(checkpoint.size, leaves, self._mth())
        if root != checkpoint.root:
            first = min(leaves)
            for seq in sorted(leaves):  # name the first entry that does not fit
                alone = merkle.root_with_leaves(checkpoint.size, {seq: leaves[seq]}, self._mth())
                if alone != checkpoint.root:
                    first = seq
                    break
            raise LedgerTamperedError(
                f"entry {first} is not the entry the checkpoint at size {checkpoint.size} signed",
                "the ledger was edited behind the console's back: restore it from a backup",
            )

    def _note_body(self, note: str, source: str) -> Checkpoint:
        try:
            text, _ = parse_note(note)
            return parse_checkpoint_body(text)
        except VerificationError as e:
            raise RollbackError(
                f"checkpoint from {source} is malformed: {e.message}",
                "give the checkpoint note exactly as it was printed",
            ) from e

    def _check_extends(self, note: str, source: str, size: int) -> None:
        cp = self._note_body(note, source)
        if cp.origin != self.origin:
            raise RollbackError(
                f"checkpoint from {source} is for ledger {cp.origin}, not {self.origin}",
                "use the checkpoint of this workspace's ledger",
            )
        here = self.root(size)
        if cp.size > size:
            raise RollbackError(
                f"ledger has {size} entries (root {_b64(here)}) but the checkpoint from "
                f"{source} covers {cp.size} entries (root {_b64(cp.root)}): "
                "the ledger was restored from an older copy",
                "restore the newest ledger.sqlite; do not use this one for a ceremony",
            )
        at = self.root(cp.size)
        if at != cp.root:
            raise RollbackError(
                f"ledger root at size {cp.size} is {_b64(at)} (ledger has {size} entries, root "
                f"{_b64(here)}) but the checkpoint from {source} says {_b64(cp.root)}: "
                "the ledger is not an extension of it",
                "the ledger was replaced or rewritten; restore the newest trusted copy",
            )

    def check_checkpoint_file(self) -> None:
        """The ledger extends the `.checkpoint` file (RollbackError otherwise)."""
        note = self._read_checkpoint_file()
        if note:
            self._check_extends(note, str(self.checkpoint_file), self.size)

    # --- reading -----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        value = self._scalar("SELECT coalesce(max(seq) + 1, 0) FROM entries")
        return int(value)

    def root(self, size: int | None = None) -> bytes:
        """The RFC 9162 root of the first `size` entries (default: all), from stored nodes."""
        with self._mutex:
            n = self.size if size is None else size
            self._require_size(n)
            return self._mth()(0, n) if n else merkle.EMPTY_ROOT

    def last_time(self) -> datetime | None:
        row = self._one("SELECT time FROM entries ORDER BY seq DESC LIMIT 1")
        return None if row is None else datetime.fromisoformat(row[0].replace("Z", "+00:00"))

    def entry(self, seq: int) -> Entry:
        """One entry, proven against the last checkpoint when it covers it."""
        row = self._one("SELECT seq, raw, leaf_hash FROM entries WHERE seq = ?", (seq,))
        if row is None:
            raise LedgerError(f"no entry {seq}: the ledger has {self.size} entries")
        entry = _checked(_stored_entry(row))
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
                yield _checked(_stored_entry(row))
            seq = upper

    def entries_of_type(self, *types: str) -> Iterator[Entry]:
        """Every entry of the given types, in seq order, through the type index (for replays).

        Each page is proven against the last checkpoint before it is handed out.

        Raises:
            LedgerTamperedError: an entry is not what the signed tree holds.
        """
        page: list[Entry] = []
        for entry in self._rows_of_type(types):
            page.append(_checked(entry))
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
                yield _checked(_stored_entry(row))
            after = rows[-1][0]

    def _prove_covered(self, entries: Sequence[Entry]) -> None:
        trust = self._trust
        if trust is None or trust.checkpoint is None:
            return
        self._prove([e for e in entries if e.seq < trust.covered], trust.checkpoint)

    def page(self, offset: int, limit: int, filter: EntryFilter | None = None, *,
             newest_first: bool = False) -> list[Entry]:
        """One page of (filtered) entries: what a browser of a million entries asks for.

        Entries are not checked here (`verified_leaf` says whether the bytes match the stored
        leaf hash): the browser shows a tampered row instead of refusing the whole page.
        """
        if offset < 0 or limit < 0:
            raise LedgerError("page offset and limit must be non-negative")
        order = "DESC" if newest_first else "ASC"
        if filter is None or filter == EntryFilter():
            if newest_first:
                hi = self.size - offset
                rows = self._all(
                    "SELECT seq, raw, leaf_hash FROM entries WHERE seq < ? AND seq >= ? "
                    "ORDER BY seq DESC",
                    (hi, hi - limit),
                )
            else:
                rows = self._all(
                    "SELECT seq, raw, leaf_hash FROM entries WHERE seq >= ? AND seq < ? "
                    "ORDER BY seq",
                    (offset, offset + limit),
                )
        else:
            where, params = filter.sql()
            rows = self._all(
                f"SELECT seq, raw, leaf_hash FROM entries WHERE {where} ORDER BY seq {order} "
                "LIMIT ? OFFSET ?",
                (*params, limit, offset),
            )
        return [_stored_entry(r) for r in rows]

    def count(self, filter: EntryFilter | None = None) -> int:
        if filter is None or filter == EntryFilter():
            return self.size
        where, params = filter.sql()
        return int(self._scalar(f"SELECT count(*) FROM entries WHERE {where}", params))

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
        return None if row is None else str(_checked(_stored_entry(row)).data["note"])

    def checkpoint_entries(self) -> list[Entry]:
        return list(self.entries_of_type(CHECKPOINT))

    # --- writing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Writer]:
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
                if _disk_failed(e):
                    raise _write_error(self.path, e) from e
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
                last = self._one("SELECT time FROM entries ORDER BY seq DESC LIMIT 1")
                writer = _Writer(self, size, self._cr.copy(), None if last is None else last[0],
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
                    raise _write_error(self.path, error) from error
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

    def append(self, type: str, data: dict[str, Any], *, time: datetime, actor: str,
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
            raise _write_error(self.path, e) from e

    def append_many(self, items: Sequence[NewEntry]) -> list[Entry]:
        """Append several entries in one transaction: all of them or none."""
        try:
            with self.transaction() as w:
                for kind, data, when, actor, ceremony in items:
                    w.append(kind, data, time=when, actor=actor, ceremony=ceremony)
                return list(w.appended)
        except sqlite3.Error as e:
            raise _write_error(self.path, e) from e

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
            raise _write_error(self.path, e) from e

    # --- verification ------------------------------------------------------------------------

    def verify_tree(self, progress: ProgressCallback | None = None) -> None:
        """Check everything: see `console.ledger.verification.verify_tree`."""
        with self._mutex:
            verify_tree(self, self._conn, progress)

    # --- internals ---------------------------------------------------------------------------

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._one(sql, params)
        return None if row is None else row[0]

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._mutex:
            try:
                return self._conn.execute(sql, params).fetchone()
            except sqlite3.DatabaseError as e:
                raise LedgerTamperedError(f"ledger {self.path} cannot be read: {e}") from e

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
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
        value: bytes = row[0]
        return value

    def _mth(self) -> merkle.SubtreeHash:
        return merkle.subtree_hash_from_perfect(self._node)

    def _compact_range(self, size: int) -> merkle.CompactRange:
        return merkle.CompactRange.from_perfect_nodes(size, self._node)

    def _read_checkpoint_file(self) -> str | None:
        try:
            return self.checkpoint_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise RollbackError(f"cannot read {self.checkpoint_file}: {e}") from e

    def _write_checkpoint_file(self, note: str) -> None:
        target = self.checkpoint_file
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
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

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise LedgerError(f"cannot open {self._lock_path}: {e.strerror or e}",
                              "the workspace must be writable for this command") from e
        try:
            deadline = _time.monotonic() + self.busy_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise LedgerError(f"cannot lock {self._lock_path}: {e}") from e
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


_SQLITE_HEADER = b"SQLite format 3\x00"


def _require_database(path: Path) -> None:
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


def _disk_failed(error: sqlite3.Error) -> bool:
    """SQLite says the disk refused (full, failing, read-only), not that the file is bad."""
    name = str(getattr(error, "sqlite_errorname", ""))
    text = str(error)
    return name.startswith(_DISK_ERRORS) or "disk is full" in text or "disk I/O" in text


def _write_error(path: Path, error: sqlite3.Error) -> LedgerError:
    text = str(error)
    if _disk_failed(error):
        return LedgerError(f"cannot write to the ledger {path}: the disk is full or failing "
                           f"({text})", f"{DISK_HINT}; every entry committed before is kept")
    return LedgerError(f"cannot append to {path}: {text}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _leaf(entry: Entry) -> bytes:
    return merkle.leaf_hash(entry.raw)


def _checked(entry: Entry) -> Entry:
    """The entry if its bytes give its stored leaf hash (a cheap check on every read)."""
    if _leaf(entry) != entry.leaf_hash:
        raise LedgerTamperedError(
            f"entry {entry.seq} does not match its leaf hash: its bytes were edited",
            "restore the ledger from a backup and verify it",
        )
    return entry


def _stored_entry(row: Iterable[Any]) -> Entry:
    """An entry read back from our own table: parsed, not re-checked (verify_tree does that)."""
    seq, raw, stored_hash = row
    raw = bytes(raw)
    try:
        value = json.loads(raw)
        when = datetime.fromisoformat(value["time"].replace("Z", "+00:00"))
        return Entry(
            seq=seq,
            raw=raw,
            time=when,
            type=value["type"],
            ceremony=value["ceremony"],
            actor=value["actor"],
            data=value["data"],
            leaf_hash=bytes(stored_hash),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise LedgerTamperedError(
            f"entry {seq} cannot be read", "run `ceremony verify audit` on an audit pack"
        ) from e

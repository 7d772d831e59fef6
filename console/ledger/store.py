"""The ledger store: entries and Merkle nodes in SQLite, one writer at a time, rollback guard.

Owns `ledger.sqlite` and the workspace's `.checkpoint` file. Layout (format 1):

- `meta(key, value)`: `origin`, `format`.
- `entries(seq, raw, leaf_hash, type, ceremony, time)`: `raw` is the exact canonical bytes; the
  other columns are copies for indexes (type, ceremony) and are never trusted by verification.
- `nodes(level, idx, hash)`: every perfect subtree of the RFC 9162 tree above the leaves
  (`level >= 1`, leaves `[idx * 2**level, (idx + 1) * 2**level)`). An append adds at most
  log2(n) rows (one on average); the root at any size and every proof are O(log n) lookups.
- triggers refusing UPDATE and DELETE on all three tables; `open` checks they exist.

Every connection runs WAL, `synchronous=FULL`, `foreign_keys=ON`. Every write is one
`BEGIN IMMEDIATE` transaction taken under an exclusive `flock` on `<db>.lock`, whose content is
the holder's pid: a second writer waits up to `busy_timeout` seconds and then gets
`LedgerBusyError` naming that pid. The kernel drops the lock when the holder dies.

Rollback guard: `record_checkpoint` appends a `checkpoint.signed` entry and then atomically writes
the note to the checkpoint file. Convention: a checkpoint of size N covers entries `[0, N)` and
its `checkpoint.signed` entry is entry N itself (so it is covered by the *next* checkpoint).
`open` refuses (RollbackError) a database that is not an extension of that file or of an
expected checkpoint given by an officer.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from console import jcs
from console.clock import format_time, require_utc
from console.errors import (
    ClockError,
    EntryRejectedError,
    LedgerBusyError,
    LedgerError,
    LedgerTamperedError,
    RollbackError,
    VerificationError,
)
from console.ledger import merkle
from console.ledger.checkpoint import (
    Checkpoint,
    checkpoint_body,
    is_ledger_origin,
    parse_checkpoint_body,
    parse_note,
    verify_note,
)
from console.ledger.entry import Entry, encode_entry, parse_entry
from console.ledger.officers import OfficerReplay

SCHEMA_FORMAT = "1"
CHECKPOINT_TYPE = "checkpoint.signed"
PAGE_SIZE = 1000
_TABLES = ("meta", "entries", "nodes")
_TRIGGERS = {f"{t}_no_{op}": t for t in _TABLES for op in ("update", "delete")}

__all__ = ["CHECKPOINT_TYPE", "EntryFilter", "Ledger", "NewEntry"]

NewEntry = tuple[str, dict[str, Any], datetime, str, str | None]
"""(type, data, time, actor, ceremony) for `append_many`."""

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What the ledger browser shows: a type prefix, a ceremony id, text inside the data."""

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
            clauses.append("ceremony = ?")
            params.append(self.ceremony)
        if self.text:
            # Search the stored bytes for the text as JCS writes it inside a string.
            needle = jcs.canonicalize(self.text)[1:-1]
            clauses.append("instr(raw, ?) > 0")
            params.append(needle)
        return (" AND ".join(clauses) or "1"), params


class _Writer:
    """Appends inside one open write transaction (see `Ledger.transaction`)."""

    def __init__(self, ledger: Ledger, size: int, cr: merkle.CompactRange, last: str | None):
        self._ledger = ledger
        self.size = size
        self._cr = cr
        self._last = last
        self.appended: list[Entry] = []

    def append(
        self,
        type: str,
        data: dict[str, Any],
        *,
        time: datetime,
        actor: str,
        ceremony: str | None = None,
    ) -> Entry:
        when = format_time(require_utc(time, "entry time"))
        if self._last is not None and when < self._last:
            raise ClockError(
                f"entry time {when} is earlier than the last entry's time {self._last}",
                "the ledger's clock never moves backwards; use a time at or after the last one",
            )
        raw = encode_entry(self.size, type, data, time=time, actor=actor, ceremony=ceremony)
        entry = parse_entry(raw, expect_seq=self.size)
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


class Ledger:
    """An open ledger. Thread-safe within a process (one lock); one writer across processes."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        origin: str,
        checkpoint_file: Path,
        busy_timeout: float,
    ) -> None:
        self.path = path
        self._conn = conn
        self._db = sqlite_utils.Database(conn)
        self.origin = origin
        self.checkpoint_file = checkpoint_file
        self.busy_timeout = busy_timeout
        self._lock_path = path.with_name(path.name + ".lock")
        self._mutex = threading.RLock()
        self._cr = merkle.CompactRange()

    # --- opening -----------------------------------------------------------------------------

    @classmethod
    def create(
        cls, path: Path, *, origin: str, checkpoint_file: Path, busy_timeout: float = 2.0
    ) -> Ledger:
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
            conn = _connect(path, create=True)
            db = sqlite_utils.Database(conn)
            conn.execute("BEGIN IMMEDIATE")
            db.table("meta").create({"key": str, "value": str}, pk="key", strict=True)
            db.table("entries").create(
                {
                    "seq": int,
                    "raw": bytes,
                    "leaf_hash": bytes,
                    "type": str,
                    "ceremony": str,
                    "time": str,
                },
                pk="seq",
                not_null={"raw", "leaf_hash", "type", "time"},
                strict=True,
            )
            conn.execute(
                "CREATE TABLE nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, "
                "hash BLOB NOT NULL, PRIMARY KEY (level, idx)) STRICT, WITHOUT ROWID"
            )
            conn.execute("CREATE INDEX entries_type ON entries (type, seq)")
            conn.execute("CREATE INDEX entries_ceremony ON entries (ceremony, seq)")
            for name, table in _TRIGGERS.items():
                op = "UPDATE" if name.endswith("update") else "DELETE"
                conn.execute(
                    f"CREATE TRIGGER {name} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("origin", origin), ("format", SCHEMA_FORMAT)],
            )
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise LedgerError(f"cannot create ledger {path}: {e}") from e
        ledger = cls(
            path,
            conn,
            origin=origin,
            checkpoint_file=Path(checkpoint_file),
            busy_timeout=busy_timeout,
        )
        return ledger

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        checkpoint_file: Path,
        expect_checkpoint: str | None = None,
        busy_timeout: float = 2.0,
    ) -> Ledger:
        """Open a ledger and check its schema, triggers, tree and checkpoints.

        Raises:
            LedgerError: no ledger at `path`, or its folder or file is read-only.
            LedgerTamperedError: triggers missing, tables altered, a gap in seq, a missing node.
            RollbackError: the database is not an extension of the checkpoint file or of
                `expect_checkpoint`.
        """
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"no ledger at {path}", "run `ceremony init` or `ceremony demo`")
        try:
            conn = _connect(path, create=False)
            origin = _check_schema(conn)
        except sqlite3.DatabaseError as e:
            if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
                # SQLite says "unable to open database file" for a read-only folder too (WAL
                # needs its -wal and -shm files): never advise restoring a good ledger.
                raise LedgerError(
                    f"ledger {path} cannot be opened: its folder or file is read-only ({e})",
                    "the console writes to the workspace; use a writable copy of it",
                ) from e
            raise LedgerTamperedError(
                f"ledger {path} is damaged: {e}", "restore it from a backup and re-open"
            ) from e
        ledger = cls(
            path,
            conn,
            origin=origin,
            checkpoint_file=Path(checkpoint_file),
            busy_timeout=busy_timeout,
        )
        try:
            with ledger._mutex:
                ledger._check_open(expect_checkpoint)
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
        self._cr = self._compact_range(size)
        last = self._last_checkpoint_entry()
        if last is not None:
            self._check_recorded_checkpoint(last)
        file_note = self._read_checkpoint_file()
        if file_note is None and last is not None:
            raise RollbackError(
                f"the ledger records a checkpoint (size {last.data.get('size')}) but "
                f"{self.checkpoint_file} is missing",
                "restore .checkpoint from an officer's copy, or open with --expect-checkpoint",
            )
        for source, note in (
            (str(self.checkpoint_file), file_note),
            ("--expect-checkpoint", expect_checkpoint),
        ):
            if note is not None:
                self._check_extends(note, source, size)
        if last is not None and file_note is not None:
            file_size = self._note_body(file_note, str(self.checkpoint_file)).size
            if int(last.data["size"]) > file_size:
                # A crash between the commit and the file write: bring the file forward.
                self._write_checkpoint_file(str(last.data["note"]))

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

    def _check_recorded_checkpoint(self, entry: Entry) -> None:
        data = entry.data
        size, root = data.get("size"), data.get("root")
        if size != entry.seq or not isinstance(root, str) or root != _b64(self.root(entry.seq)):
            raise LedgerTamperedError(
                f"checkpoint entry {entry.seq} does not match the tree (size {size})",
                "restore the ledger from a backup",
            )

    # --- reading -----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        value = self._scalar("SELECT coalesce(max(seq) + 1, 0) FROM entries")
        return int(value)

    def root(self, size: int | None = None) -> bytes:
        """The RFC 9162 root of the first `size` entries (default: all)."""
        with self._mutex:
            n = self.size if size is None else size
            self._require_size(n)
            return self._mth()(0, n) if n else merkle.EMPTY_ROOT

    def last_time(self) -> datetime | None:
        row = self._one("SELECT time FROM entries ORDER BY seq DESC LIMIT 1")
        return None if row is None else datetime.fromisoformat(row[0].replace("Z", "+00:00"))

    def entry(self, seq: int) -> Entry:
        row = self._one("SELECT seq, raw, leaf_hash FROM entries WHERE seq = ?", (seq,))
        if row is None:
            raise LedgerError(f"no entry {seq}: the ledger has {self.size} entries")
        return _stored_entry(row)

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[Entry]:
        """Entries `[start, stop)` in seq order, read lazily a page at a time."""
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
                yield _stored_entry(row)
            seq = upper

    def entries_of_type(self, *types: str) -> Iterator[Entry]:
        """Every entry of the given types, in seq order, through the type index (for replays)."""
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
                yield _stored_entry(row)
            after = rows[-1][0]

    def page(
        self,
        offset: int,
        limit: int,
        filter: EntryFilter | None = None,
        *,
        newest_first: bool = False,
    ) -> list[Entry]:
        """One page of (filtered) entries: what a browser of a million entries asks for."""
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
        entry = self._last_checkpoint_entry()
        return None if entry is None else str(entry.data["note"])

    def checkpoint_entries(self) -> list[Entry]:
        return list(self.entries_of_type(CHECKPOINT_TYPE))

    # --- writing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Writer]:
        """One write transaction: `with ledger.transaction() as w: w.append(...)`.

        Raises:
            LedgerBusyError: another process holds the write lock longer than `busy_timeout`.
        """
        with self._mutex, self._write_lock():
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise LedgerBusyError(
                    f"ledger {self.path} is locked by another connection",
                    "close the other program using the ledger and try again",
                ) from e
            try:
                size = self.size
                if size != self._cr.size:
                    # Another process appended since our last write: reload O(log n) nodes.
                    self._cr = self._compact_range(size)
                last = self._one("SELECT time FROM entries ORDER BY seq DESC LIMIT 1")
                writer = _Writer(self, size, self._cr.copy(), None if last is None else last[0])
                yield writer
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._cr = writer._cr

    def append(
        self,
        type: str,
        data: dict[str, Any],
        *,
        time: datetime,
        actor: str,
        ceremony: str | None = None,
    ) -> Entry:
        """Append one entry in its own transaction.

        Raises:
            EntryRejectedError: data the ledger cannot store. ClockError: a time earlier than
            the last entry's. LedgerBusyError: another writer holds the ledger.
        """
        try:
            with self.transaction() as w:
                return w.append(type, data, time=time, actor=actor, ceremony=ceremony)
        except sqlite3.Error as e:
            raise LedgerError(f"cannot append to {self.path}: {e}") from e

    def append_many(self, items: Sequence[NewEntry]) -> list[Entry]:
        """Append several entries in one transaction: all of them or none."""
        try:
            with self.transaction() as w:
                for kind, data, when, actor, ceremony in items:
                    w.append(kind, data, time=when, actor=actor, ceremony=ceremony)
                return list(w.appended)
        except sqlite3.Error as e:
            raise LedgerError(f"cannot append to {self.path}: {e}") from e

    def record_checkpoint(self, note: str, *, time: datetime, actor: str) -> Entry:
        """Record a signed checkpoint of the whole current tree, then update the checkpoint file.

        The note must cover exactly the entries so far (size N); it becomes entry N. It must be
        signed by at least one officer the ledger has enrolled and not revoked, and every
        signature by such an officer must verify.

        Raises:
            VerificationError: the note is malformed, for another origin, size or root, or not
                signed by an active officer.
        """
        with self.transaction() as w:
            replay = OfficerReplay()
            for e in self.entries_of_type("officer.enrolled", "officer.revoked"):
                replay.apply(e)
            verifiers = replay.active_verifiers()
            if not verifiers:
                raise VerificationError(
                    "no active officer is enrolled to sign checkpoints", "enrol officers first"
                )
            cp = verify_note(note, verifiers, origin=self.origin)
            if cp.size != w.size or cp.root != self.root(w.size):
                raise VerificationError(
                    f"checkpoint covers {cp.size} entries (root {_b64(cp.root)}) but the ledger "
                    f"has {w.size} (root {_b64(self.root(w.size))})",
                    "sign a checkpoint of the ledger as it is now",
                )
            entry = w.append(
                CHECKPOINT_TYPE,
                {"size": cp.size, "root": _b64(cp.root), "note": note},
                time=time,
                actor=actor,
            )
        self._write_checkpoint_file(note)
        return entry

    # --- verification ------------------------------------------------------------------------

    def verify_tree(self, progress: ProgressCallback | None = None) -> None:
        """Recompute every leaf hash from the stored bytes and every node from its children.

        Also checks seq continuity, canonical form, non-decreasing times, every recorded
        checkpoint and the checkpoint file.

        Raises:
            LedgerTamperedError: naming the first bad seq (or node).
            RollbackError: the database is not an extension of the checkpoint file.
        """
        with self._mutex:
            try:
                self._verify_tree(progress)
            except sqlite3.DatabaseError as e:
                raise LedgerTamperedError(f"ledger {self.path} is damaged: {e}") from e

    def _verify_tree(self, progress: ProgressCallback | None) -> None:
        conn = self._conn
        conn.execute("BEGIN")  # one snapshot for the whole check
        try:
            check = conn.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise LedgerTamperedError(f"SQLite quick_check failed: {check[0][0]}")
            size = self.size
            total = size * 2
            done = 0
            last_time = ""
            cursor = conn.execute(
                "SELECT seq, raw, leaf_hash, type, time FROM entries ORDER BY seq"
            )
            expect = 0
            for seq, raw, stored_hash, kind, when in cursor:
                if seq != expect:
                    raise LedgerTamperedError(f"entry {expect} is missing (next is {seq})")
                try:
                    entry = parse_entry(bytes(raw), expect_seq=seq)
                except EntryRejectedError as e:
                    raise LedgerTamperedError(f"entry {seq}: {e.message}") from e
                if entry.leaf_hash != stored_hash:
                    raise LedgerTamperedError(f"entry {seq}: stored leaf hash is wrong")
                text = format_time(entry.time)
                if text != when or kind != entry.type:
                    raise LedgerTamperedError(f"entry {seq}: index columns do not match its bytes")
                if text < last_time:
                    raise LedgerTamperedError(f"entry {seq}: time goes backwards")
                last_time = text
                expect += 1
                done += 1
                if progress is not None and done % PAGE_SIZE == 0:
                    progress(done, total)
            if expect != size:
                raise LedgerTamperedError(f"ledger ends at entry {expect - 1}, expected {size}")
            self._verify_nodes(size, done, total, progress)
            _check_schema(conn)
            if progress is not None:
                progress(total, total)
        finally:
            conn.execute("ROLLBACK")
        for entry in self.entries_of_type(CHECKPOINT_TYPE):
            self._check_recorded_checkpoint(entry)
            try:
                body = parse_checkpoint_body(parse_note(str(entry.data.get("note")))[0])
            except VerificationError as e:
                raise LedgerTamperedError(f"entry {entry.seq}: checkpoint note: {e.message}") from e
            if (
                body.origin != self.origin
                or body.size != entry.seq
                or _b64(body.root) != entry.data["root"]
            ):
                raise LedgerTamperedError(f"entry {entry.seq}: checkpoint note does not match")
        file_note = self._read_checkpoint_file()
        if file_note is not None:
            self._check_extends(file_note, str(self.checkpoint_file), self.size)

    def _verify_nodes(
        self, size: int, done: int, total: int, progress: ProgressCallback | None
    ) -> None:
        conn = self._conn
        for level in range(1, size.bit_length()):
            width = size >> level
            if level == 1:
                below = conn.execute("SELECT seq, leaf_hash FROM entries ORDER BY seq")
            else:
                below = conn.execute(
                    "SELECT idx, hash FROM nodes WHERE level = ? ORDER BY idx", (level - 1,)
                )
            here = conn.execute(
                "SELECT idx, hash FROM nodes WHERE level = ? ORDER BY idx", (level,)
            )
            count = 0
            for idx, stored in here:
                left, right = below.fetchone(), below.fetchone()
                if idx != count or left is None or right is None or left[0] != 2 * idx:
                    raise LedgerTamperedError(f"tree node ({level}, {count}) is missing or extra")
                if merkle.node_hash(left[1], right[1]) != stored:
                    raise LedgerTamperedError(
                        f"tree node ({level}, {idx}) over entries {idx << level}.."
                        f"{((idx + 1) << level) - 1} is wrong"
                    )
                count += 1
                done += 1
                if progress is not None and done % PAGE_SIZE == 0:
                    progress(min(done, total), total)
            if count != width:
                raise LedgerTamperedError(f"tree level {level} has {count} nodes, not {width}")
        extra = self._scalar(
            "SELECT count(*) FROM nodes WHERE level >= ?", (max(1, size.bit_length()),)
        )
        if extra:
            raise LedgerTamperedError("tree has nodes beyond the ledger's size")

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

    def _last_checkpoint_entry(self) -> Entry | None:
        row = self._one(
            "SELECT seq, raw, leaf_hash FROM entries WHERE type = ? ORDER BY seq DESC LIMIT 1",
            (CHECKPOINT_TYPE,),
        )
        return None if row is None else _stored_entry(row)

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
                os.fsync(f.fileno())
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            raise LedgerError(f"cannot write {target}: {e}", "check the workspace folder") from e

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
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
            # Fixed width, so the record is overwritten in place (ftruncate costs a metadata sync).
            os.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    conn = sqlite3.connect(
        f"file:{path}?mode={mode}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=1.0,
    )
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 1000")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _check_schema(conn: sqlite3.Connection) -> str:
    """Return the origin; raise LedgerTamperedError when tables or triggers are not ours."""
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    tables = {name for kind, name, _, _ in rows if kind == "table"}
    missing = [t for t in _TABLES if t not in tables]
    if missing:
        raise LedgerTamperedError(
            f"ledger is missing table(s) {', '.join(missing)}", "this is not a ceremony ledger"
        )
    triggers = {name: (table, sql or "") for kind, name, table, sql in rows if kind == "trigger"}
    for name, table in _TRIGGERS.items():
        found = triggers.get(name)
        if found is None or found[0] != table or "RAISE(ABORT" not in found[1]:
            raise LedgerTamperedError(
                f"append-only trigger {name} is missing or altered",
                "someone edited the database; verify it against an officer's checkpoint",
            )
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != SCHEMA_FORMAT:
        raise LedgerTamperedError(f"ledger format {meta.get('format')!r} is not {SCHEMA_FORMAT}")
    origin = meta.get("origin")
    if not isinstance(origin, str) or not is_ledger_origin(origin):
        raise LedgerTamperedError("ledger origin is missing or malformed")
    return origin


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
            f"entry {seq} cannot be read", "run `ceremony verify` on the ledger"
        ) from e

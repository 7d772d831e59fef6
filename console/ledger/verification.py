"""The full check of a stored ledger: every entry's bytes, every tree node, every checkpoint.

`Ledger.open` checks what a command relies on (the checkpoint chain, the entries since the last
checkpoint, and each entry when it is read); `verify_tree` checks everything, for the ledger
screen's "verify tree" and the tests. It reads one SQLite snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from console.clock import format_time
from console.errors import EntryRejectedError, LedgerTamperedError, VerificationError
from console.ledger import merkle
from console.ledger._sqlite import check_schema
from console.ledger.checkpoint import parse_checkpoint_body, parse_note
from console.ledger.entry import parse_entry
from console.ledger.trust import CHECKPOINT, TrustReplay

if TYPE_CHECKING:
    from console.ledger.store import Ledger

PAGE = 1000
ProgressCallback = Callable[[int, int], None]


def verify_tree(ledger: Ledger, conn: sqlite3.Connection,
                progress: ProgressCallback | None = None) -> None:
    """Recompute every leaf hash from the stored bytes and every node from its children; check
    seq continuity, canonical form, non-decreasing times, and every recorded checkpoint against
    the tree and the officers in force (the strict rule of `console.ledger.trust`).

    Raises:
        LedgerTamperedError: naming the first bad seq (or node, or checkpoint).
    """
    try:
        _verify(ledger, conn, progress)
    except sqlite3.DatabaseError as e:
        raise LedgerTamperedError(f"ledger {ledger.path} is damaged: {e}") from e


def _verify(ledger: Ledger, conn: sqlite3.Connection, progress: ProgressCallback | None) -> None:
    conn.execute("BEGIN")  # one snapshot for the whole check
    try:
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise LedgerTamperedError(f"SQLite quick_check failed: {check[0][0]}")
        size = int(conn.execute("SELECT coalesce(max(seq) + 1, 0) FROM entries").fetchone()[0])
        total = size * 2
        done = 0
        last_time = ""
        replay = TrustReplay(ledger.origin, strict=True)
        cr = merkle.CompactRange()
        cursor = conn.execute("SELECT seq, raw, leaf_hash, type, time FROM entries ORDER BY seq")
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
            if entry.type == CHECKPOINT:
                _check_note_matches(entry.seq, entry.data, ledger.origin)
            replay.apply(entry, root=cr.root() if entry.type == CHECKPOINT else None)
            cr.append(entry.leaf_hash)
            expect += 1
            done += 1
            if progress is not None and done % PAGE == 0:
                progress(done, total)
        if expect != size:
            raise LedgerTamperedError(f"ledger ends at entry {expect - 1}, expected {size}")
        replay.result(last_root=None)
        _verify_nodes(conn, size, done, total, progress)
        check_schema(conn)
        if size and cr.root() != ledger.root(size):
            raise LedgerTamperedError("the stored tree's root does not match the entries")
        if progress is not None:
            progress(total, total)
    finally:
        conn.execute("ROLLBACK")
    ledger.check_checkpoint_file()


def _check_note_matches(seq: int, data: dict[str, object], origin: str) -> None:
    try:
        body = parse_checkpoint_body(parse_note(str(data.get("note")))[0])
    except VerificationError as e:
        raise LedgerTamperedError(f"entry {seq}: checkpoint note: {e.message}") from e
    if body.origin != origin or body.size != seq:
        raise LedgerTamperedError(f"entry {seq}: checkpoint note does not match")


def _verify_nodes(conn: sqlite3.Connection, size: int, done: int, total: int,
                  progress: ProgressCallback | None) -> None:
    for level in range(1, size.bit_length()):
        width = size >> level
        if level == 1:
            below = conn.execute("SELECT seq, leaf_hash FROM entries ORDER BY seq")
        else:
            below = conn.execute(
                "SELECT idx, hash FROM nodes WHERE level = ? ORDER BY idx", (level - 1,)
            )
        here = conn.execute("SELECT idx, hash FROM nodes WHERE level = ? ORDER BY idx", (level,))
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
            if progress is not None and done % PAGE == 0:
                progress(min(done, total), total)
        if count != width:
            raise LedgerTamperedError(f"tree level {level} has {count} nodes, not {width}")
    extra = conn.execute(
        "SELECT count(*) FROM nodes WHERE level >= ?", (max(1, size.bit_length()),)
    ).fetchone()[0]
    if extra:
        raise LedgerTamperedError("tree has nodes beyond the ledger's size")


__all__ = ["verify_tree"]

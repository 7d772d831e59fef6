"""The full check of a stored ledger: every entry's bytes, every tree node, every checkpoint.

`Ledger.open` checks what a command relies on (the checkpoint chain, the entries since the last
checkpoint, and each entry when it is read); `verify_tree` checks everything, for the ledger
screen's "verify tree" and the tests. It reads one SQLite snapshot (its workers, below, read
only what that snapshot's size bounds, which appends do not change).

It runs in two passes, each over big pages:

1. The persisted nodes, level by level: each node is the hash of its two children as stored (the
   leaf hashes, then the level below), a page of nodes at a time; a page that differs is walked
   node by node to name the first wrong one. The stored tree is then self-consistent, so the
   root at any size is read from it (O(log n) lookups), not recomputed.
2. Entries, `PAGE` rows at a time. A page is proven at once when it can be: its seqs follow on,
   each row's bytes hash to its stored leaf hash, the whole page is a block of canonical entries
   (`console.ledger.blockscan.accept_block`), and its type and time columns are copies of its
   bytes. The first row of the page and every trust entry (officers, quorum, checkpoints) still
   take the strict path, in order, so each recorded checkpoint is judged against the root of the
   entries before it (read from the stored tree, whose leaves pass 2 has proven up to there)
   and the officers then in force. A page that cannot be proven at once is checked row by row
   (`_strict_row`): the first bad seq is named as before.

Ledgers of `PARALLEL_MIN_ENTRIES` or more are checked by worker processes, one per core, as the
audit-pack verifier does (`_check_parallel`): every page of entries, with the nodes over it, and
the ranges of the node levels above the pages are handed to them at once
(`console.ledger.treescan`; each worker opens the SQLite file read-only itself and, once this
process's `quick_check` vouches for the columns' types, reads a piece of a page a column at a
time: `console.ledger.treejoin`), while this process runs `PRAGMA quick_check`, then checks
pages from the last one back until it meets the workers, and takes the answers in the order
above. A piece they prove is taken (a page's slow rows still take the strict path here, in order); a
piece they do not prove, or do not answer, is redone here by the serial code in this snapshot,
so the error names the same first bad seq or node as `_check_serial`, and no worker's answer
alone fails the check.

Finally the ledger extends its `.checkpoint` file. Progress goes to `progress(done, total)`
after each page (the caller's callback must not block: the TUI posts it to its event loop).
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from console.clock import format_time
from console.errors import EntryRejectedError, LedgerTamperedError, VerificationError
from console.ledger import merkle
from console.ledger._sqlite import SqlRow, check_schema, column_bytes, column_int
from console.ledger.blockscan import accept_block, leaf_hashes, no_gc
from console.ledger.checkpoint import parse_checkpoint_body, parse_note
from console.ledger.entry import parse_entry
from console.ledger.treescan import (
    Jobs,
    PageProof,
    Subtrees,
    check_nodes,
    joined_reads,
    nodes_match,
    open_worker,
    worker_nodes,
    worker_subtree,
)
from console.ledger.trust import CHECKPOINT, TRUST_ENTRY_TYPES, TrustReplay

if TYPE_CHECKING:
    from console.ledger.store import Ledger

PAGE = 1 << 14
"""Rows (or nodes) per read: big enough that SQLite's per-statement cost vanishes, small enough
that a page's values stay in cache and progress moves often."""
ProgressCallback = Callable[[int, int], None]
_TRUST = frozenset(TRUST_ENTRY_TYPES)

PARALLEL_MIN_ENTRIES = 1 << 17
"""Ledgers at least this big are checked by worker processes: starting them costs ~0.2 s (more
when spawned), what a page check costs for ~30,000 entries."""

__all__ = ["PAGE", "PARALLEL_MIN_ENTRIES", "ProgressCallback", "verify_tree"]


def verify_tree(ledger: Ledger, conn: sqlite3.Connection,
                progress: ProgressCallback | None = None, *, workers: int | None = None) -> int:
    """Check every leaf hash against the stored bytes and every node against its children; check
    seq continuity, canonical form, non-decreasing times, the index columns, and every recorded
    checkpoint against the tree and the officers in force (the strict rule of
    `console.ledger.trust`).

    Ledgers of `PARALLEL_MIN_ENTRIES` or more are checked by `workers` processes (default: one
    per core; fewer than 2: here). Returns how many pieces workers proved (for the tests).

    Raises:
        LedgerTamperedError: naming the first bad seq (or node, or checkpoint).
    """
    try:
        return _verify(ledger, conn, progress, workers)
    except sqlite3.DatabaseError as e:
        raise LedgerTamperedError(f"ledger {ledger.path} is damaged: {e}") from e


class _Entries:
    """The running state of pass 1: the next seq, the last time, the replay, the tree so far."""

    def __init__(self, origin: str, root: Callable[[int], bytes],
                 conn: sqlite3.Connection) -> None:
        self.origin = origin
        self.conn = conn
        self.root = root
        self.expect = 0
        self.last_time = ""
        self.replay = TrustReplay(origin, strict=True)

    def page(self, rows: list[SqlRow]) -> None:
        """Check one page of `(seq, raw, leaf_hash, type, time)` rows, in seq order."""
        first = self.expect
        n = len(rows)
        if [row[0] for row in rows] != list(range(first, first + n)):
            self._strict(rows)  # names the first missing entry
            return
        self._level_one(rows)
        raws = [row[1] for row in rows]
        if {type(r) for r in raws} != {bytes}:
            self._strict(rows)
            return
        blobs: list[bytes] = raws  # type: ignore[assignment]  # narrowed by the set just above
        block = b"\n".join(blobs) + b"\n"
        leaves = leaf_hashes(blobs)
        accepted = None
        if block.count(b"\n") == n and leaves == [row[2] for row in rows]:
            accepted = accept_block(block, first, _TRUST, frozenset(), leaves=leaves)
        if (accepted is None or accepted.types != [row[3] for row in rows]
                or accepted.times != [row[4] for row in rows]):
            self._strict(rows)
            return
        start = 0
        for i in accepted.slow:
            if i > start:
                self.last_time = accepted.times[i - 1]
            self.expect = first + i
            self._strict_row(rows[i])
            start = i + 1
        if start < n:
            self.last_time = accepted.times[-1]
        self.expect = first + n

    def proven(self, first: int, stop: int, proof: PageProof) -> bool:
        """Take entries `[first, stop)` as a worker proved them (`treescan.check_page`): its
        slow rows are checked here, in order, as `page` checks them. False, with nothing taken,
        when a slow row is not in this snapshot (the caller then checks the page itself)."""
        if self.expect != first:
            return False
        rows: list[SqlRow] = []
        for i, _ in proof.slow:
            row = self.conn.execute(_ROW, (first + i,)).fetchone()
            if row is None:
                return False
            rows.append(row)
        start = 0
        for (i, before), row in zip(proof.slow, rows, strict=True):
            if i > start and before is not None:
                self.last_time = before
            self.expect = first + i
            self._strict_row(row)
            start = i + 1
        if start < stop - first:
            self.last_time = proof.last
        self.expect = stop
        return True

    def _level_one(self, rows: list[SqlRow]) -> None:
        """The level-1 nodes over this page's stored leaf hashes (pages start at even seqs), so
        that the roots read for its checkpoints rest on proven nodes; levels above are proven
        before the entries (`_verify_nodes`)."""
        first = self.expect
        nodes = self.conn.execute(
            "SELECT idx, hash FROM nodes WHERE level = 1 AND idx >= ? AND idx < ? ORDER BY idx",
            (first // 2, (first + len(rows)) // 2)).fetchall()
        children: list[SqlRow] = [(row[0], row[2]) for row in rows[: 2 * len(nodes)]]
        if first % 2 or len(nodes) != len(rows) // 2 or not nodes_match(
                nodes, children, first // 2):
            _name_wrong_node(self.conn, 1, nodes, children, first // 2)

    def _strict(self, rows: Sequence[SqlRow]) -> None:
        for row in rows:
            self._strict_row(row)

    def _strict_row(self, row: SqlRow) -> None:
        raw, stored_hash, kind, when = row[1:]
        seq = column_int(row[0])
        expect = self.expect
        if seq != expect:
            raise LedgerTamperedError(f"entry {expect} is missing (next is {seq})")
        try:
            entry = parse_entry(column_bytes(raw), expect_seq=expect)
        except EntryRejectedError as e:
            raise LedgerTamperedError(f"entry {seq}: {e.message}") from e
        if entry.leaf_hash != stored_hash:
            raise LedgerTamperedError(f"entry {seq}: stored leaf hash is wrong")
        text = format_time(entry.time)
        if text != when or kind != entry.type:
            raise LedgerTamperedError(f"entry {seq}: index columns do not match its bytes")
        if text < self.last_time:
            raise LedgerTamperedError(f"entry {seq}: time goes backwards")
        self.last_time = text
        if entry.type == CHECKPOINT:
            _check_note_matches(entry.seq, entry.data, self.origin)
        self.replay.apply(entry, root=self.root(seq) if entry.type == CHECKPOINT else None)
        self.expect += 1


def _verify(ledger: Ledger, conn: sqlite3.Connection, progress: ProgressCallback | None,
            workers: int | None) -> int:
    conn.execute("BEGIN")  # one snapshot for the whole check
    try:
        try:
            size: int | None = column_int(conn.execute(_SIZE).fetchone()[0])
        except sqlite3.DatabaseError:
            size = None  # the serial order names it: quick_check first
        count = _cores() if workers is None else workers
        if size is None or count < 2 or size < PARALLEL_MIN_ENTRIES:
            _check_serial(ledger, conn, progress)
            in_workers = 0
        else:
            # fork only when this process has a single thread (the CLI, the benchmark): a
            # forked child of a threaded process (the TUI) may inherit a held lock; spawn then.
            method = "fork" if threading.active_count() == 1 else "spawn"
            pool = ProcessPoolExecutor(count, multiprocessing.get_context(method),
                                       initializer=open_worker, initargs=(str(ledger.path),))
            try:
                jobs = Jobs(pool, count)
                _check_parallel(ledger, conn, size, progress, jobs)
                in_workers = jobs.in_workers
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        conn.execute("ROLLBACK")
    ledger.check_checkpoint_file()
    return in_workers


_ROW = "SELECT seq, raw, leaf_hash, type, time FROM entries WHERE seq = ?"
_SIZE = "SELECT coalesce(max(seq) + 1, 0) FROM entries"
_PAGE_ROWS = ("SELECT seq, raw, leaf_hash, type, time FROM entries WHERE seq >= ? ORDER BY seq "
              "LIMIT ?")


def _check_serial(ledger: Ledger, conn: sqlite3.Connection,
                  progress: ProgressCallback | None) -> None:
    """Every check in this process, in order (small ledgers; the reference for the order)."""
    _quick_check(conn.execute("PRAGMA quick_check").fetchall())
    size = column_int(conn.execute(_SIZE).fetchone()[0])
    total = size * 2
    done = _verify_nodes(conn, size, 0, total, progress)
    state = _Entries(ledger.origin, ledger.root, conn)
    _check_lowest(conn)
    cursor = conn.execute("SELECT seq, raw, leaf_hash, type, time FROM entries ORDER BY seq")
    with no_gc():
        while rows := cursor.fetchmany(PAGE):
            state.page(rows)
            _entries_progress(progress, done, state.expect, total)
    _finish(conn, state, size, progress)


def _check_parallel(ledger: Ledger, conn: sqlite3.Connection, size: int,
                    progress: ProgressCallback | None, jobs: Jobs) -> None:
    """The checks of `_check_serial`, in the same order, with the pieces of `treescan` handed to
    the workers all at once and their answers taken in order. A piece not proven (or not
    answered) is redone here by the serial code, in this snapshot: it names the same first bad
    seq or node, or finds the piece good (a page `accept_block` leaves to the strict path).

    Each page of entries goes with the nodes of levels 2 to `top` over it (its subtree: each
    node read once, `treescan.check_subtree`); the levels above, which span pages, go in ranges
    (`treescan.check_nodes`). Every answer is in before the entries are taken, as the serial
    order checks every node first; the progress of the node levels, the serial check's calls
    exactly, moves as the pages' answers come in."""
    top = (PAGE & -PAGE).bit_length() - 1  # pages start at multiples of 2 ** top
    # joined reads are exact here (this snapshot's schema); their answers are taken only after
    # quick_check passes, which proves every value has its STRICT column's type
    joined = joined_reads(conn)
    page_jobs = [(first, stop, jobs.submit(worker_subtree, first, stop, top, joined))
                 for first, stop in _ranges(size)]
    high = range(max(2, top + 1), size.bit_length())
    node_jobs = [[(lo, hi, jobs.submit(worker_nodes, level, lo, hi))
                  for lo, hi in _ranges(size >> level)] for level in high]
    # here, while the workers start on the pages (the serial order: quick_check first)
    _quick_check(conn.execute("PRAGMA quick_check").fetchall())
    total = size * 2
    marks = _node_marks(size, total)
    reported = 0
    ones = conn.execute("SELECT count(*) FROM nodes WHERE level = 1").fetchone()[0]
    proven = size <= 1 or ones == size >> 1
    pages: list[PageProof | None] = []
    answers = Subtrees(conn, page_jobs, top, jobs, joined=joined)
    while (answer := answers.next()) is not None:
        nodes, page = answer
        proven = proven and nodes
        pages.append(page)
        if proven and progress is not None:
            upto = len(marks) * len(pages) // len(page_jobs) if top >= 2 else 0
            for done in marks[reported:upto]:
                progress(done, total)
            reported = max(reported, upto)
    for level, ranges in zip(high, node_jobs, strict=True):
        if not proven:
            break
        for lo, hi, node_job in ranges:
            match = jobs.result(node_job)
            if not (match if match is not None else check_nodes(conn, level, lo, hi)):
                proven = False
                break
    for level in range(2, size.bit_length()):
        if not proven:
            break
        width = conn.execute("SELECT count(*) FROM nodes WHERE level = ?", (level,)).fetchone()[0]
        proven = width == size >> level
    if not proven:
        _verify_nodes(conn, size, 0, total, None)  # raises for the first bad node
        raise LedgerTamperedError("the tree changed while it was verified")
    if progress is not None:
        for done in marks[reported:]:
            progress(done, total)
    done = marks[-1] if marks else 0
    _check_no_extra(conn, size)
    state = _Entries(ledger.origin, ledger.root, conn)
    _check_lowest(conn)
    with no_gc():
        for (first, stop, _), proof in zip(page_jobs, pages, strict=True):
            if proof is None or not state.proven(first, stop, proof):
                state.page(conn.execute(_PAGE_ROWS, (first, PAGE)).fetchall())
                if state.expect != stop:
                    raise LedgerTamperedError("the ledger changed while it was verified")
            _entries_progress(progress, done, state.expect, total)
    _finish(conn, state, size, progress)


def _node_marks(size: int, total: int) -> list[int]:
    """The `done` that `_verify_nodes` reports, in order, for a tree that is whole."""
    marks: list[int] = []
    done = 0
    for level in range(2, size.bit_length()):
        for lo, hi in _ranges(size >> level):
            done += hi - lo
            marks.append(min(done, total))
    return marks


def _ranges(size: int) -> list[tuple[int, int]]:
    """`[0, size)` in `PAGE`-long pieces."""
    return [(first, min(first + PAGE, size)) for first in range(0, size, PAGE)]


def _quick_check(check: Sequence[tuple[object, ...]]) -> None:
    if check != [("ok",)]:
        raise LedgerTamperedError(f"SQLite quick_check failed: {check[0][0]}")


def _check_lowest(conn: sqlite3.Connection) -> None:
    lowest = conn.execute("SELECT min(seq) FROM entries").fetchone()[0]
    if lowest is not None and lowest != 0:
        raise LedgerTamperedError(f"entry 0 is missing (next is {lowest})")


def _entries_progress(progress: ProgressCallback | None, done: int, expect: int,
                      total: int) -> None:
    if progress is not None:
        # each entry row also proves half a level-1 node
        progress(min(done + expect + expect // 2, total), total)


def _finish(conn: sqlite3.Connection, state: _Entries, size: int,
            progress: ProgressCallback | None) -> None:
    if state.expect != size:
        raise LedgerTamperedError(f"ledger ends at entry {state.expect - 1}, expected {size}")
    state.replay.result(last_root=None)
    check_schema(conn)
    if progress is not None:
        progress(size * 2, size * 2)


def _cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every core counts
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _check_note_matches(seq: int, data: dict[str, object], origin: str) -> None:
    try:
        body = parse_checkpoint_body(parse_note(str(data.get("note")))[0])
    except VerificationError as e:
        raise LedgerTamperedError(f"entry {seq}: checkpoint note: {e.message}") from e
    if body.origin != origin or body.size != seq:
        raise LedgerTamperedError(f"entry {seq}: checkpoint note does not match")


def _verify_nodes(conn: sqlite3.Connection, size: int, done: int, total: int,
                  progress: ProgressCallback | None) -> int:
    """Levels 2 and above (level 1 goes with the entries, a page at a time); the count of level 1
    is checked here. Returns `done` moved on by the nodes checked."""
    ones = conn.execute("SELECT count(*) FROM nodes WHERE level = 1").fetchone()[0]
    if size > 1 and ones != size >> 1:
        raise LedgerTamperedError(f"tree level 1 has {ones} nodes, not {size >> 1}")
    for level in range(2, size.bit_length()):
        width = size >> level
        below = conn.execute(
            "SELECT idx, hash FROM nodes WHERE level = ? ORDER BY idx", (level - 1,))
        here = conn.execute("SELECT idx, hash FROM nodes WHERE level = ? ORDER BY idx", (level,))
        count = 0
        while nodes := here.fetchmany(PAGE):
            children = below.fetchmany(2 * len(nodes))
            if not nodes_match(nodes, children, count):
                _name_wrong_node(conn, level, nodes, children, count)
            count += len(nodes)
            done += len(nodes)
            if progress is not None:
                progress(min(done, total), total)
        if count != width:
            raise LedgerTamperedError(f"tree level {level} has {count} nodes, not {width}")
    _check_no_extra(conn, size)
    return done


def _check_no_extra(conn: sqlite3.Connection, size: int) -> None:
    extra = conn.execute(
        "SELECT count(*) FROM nodes WHERE level >= ?", (max(1, size.bit_length()),)
    ).fetchone()[0]
    if extra:
        raise LedgerTamperedError("tree has nodes beyond the ledger's size")


def _name_wrong_node(conn: sqlite3.Connection, level: int, nodes: list[SqlRow],
                     children: list[SqlRow], first: int) -> None:
    """Walk a page that `nodes_match` refused, node by node, and raise for the first bad one:
    the lowest wrong node under it (levels are checked top-down from level 2, so a node over a
    wrong child is found before the child)."""
    count = first
    pairs = iter(children)
    for idx, stored in nodes:
        left, right = next(pairs, None), next(pairs, None)
        if idx != count or left is None or right is None or left[0] != 2 * column_int(idx):
            raise LedgerTamperedError(f"tree node ({level}, {count}) is missing or extra")
        if merkle.node_hash(column_bytes(left[1]), column_bytes(right[1])) != stored:
            level, idx = _lowest_wrong(conn, level, column_int(idx))
            raise LedgerTamperedError(
                f"tree node ({level}, {idx}) over entries {column_int(idx) << level}.."
                f"{((column_int(idx) + 1) << level) - 1} is wrong"
            )
        count += 1
    raise LedgerTamperedError(f"tree level {level}: nodes from {first} do not match")


def _lowest_wrong(conn: sqlite3.Connection, level: int, idx: int) -> tuple[int, int]:
    """`(level, idx)` of the lowest node under (and including) a wrong one that is not the hash
    of its stored children (level 1 stops there: leaves are proven against the bytes)."""
    while level > 1:
        for child in (2 * idx, 2 * idx + 1):
            below = [_stored_node(conn, level - 2, 2 * child + k) for k in (0, 1)]
            if None in below or merkle.node_hash(*map(column_bytes, below)) != _stored_node(
                    conn, level - 1, child):
                level, idx = level - 1, child
                break
        else:
            break
    return level, idx


def _stored_node(conn: sqlite3.Connection, level: int, idx: int) -> bytes | None:
    row = (conn.execute("SELECT leaf_hash FROM entries WHERE seq = ?", (idx,)) if level == 0
           else conn.execute("SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, idx))
           ).fetchone()
    return None if row is None else column_bytes(row[0])

"""The page checks of "verify tree" that may run in worker processes.

`console.ledger.verification` owns the order of the checks and every error message; this module
owns the self-contained pieces it hands to workers: one range of persisted nodes against their
children (`check_nodes`), and one page of entries (`check_page`: seqs follow on, level-1 nodes
over the stored leaf hashes, each row's bytes hash to its stored leaf hash, the page is a block
of canonical entries but for the lines left slow, the type and time columns are copies of its
bytes), with the nodes of the levels above it up to the page's width (`check_subtree`). Each
answers only "proven" (with what the caller still needs) or "not proven": the caller then redoes
that piece in its own snapshot with the strict code, which names the first bad seq or node.

Each worker opens the SQLite file read-only itself (`open_worker`, the pool's initializer). The
workers' reads are not the caller's snapshot; every query here is bounded by the size the caller
read in its snapshot, and the ledger only ever grows (triggers refuse UPDATE and DELETE), so a
concurrent append does not change what a worker sees. The functions also take a connection, so
the caller can run any of them itself when no worker can.

It also owns how the caller hands the pieces out and takes the answers in (`Jobs`, `Subtrees`:
the caller checks pages itself from the last one back while the workers go from the front).
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import TypeVar

from console.ledger import merkle
from console.ledger._sqlite import SqlRow
from console.ledger.blockscan import accept_block, leaf_hashes, no_gc
from console.ledger.trust import TRUST_ENTRY_TYPES

__all__ = [
    "Jobs",
    "PageProof",
    "Subtree",
    "Subtrees",
    "check_nodes",
    "check_page",
    "check_subtree",
    "joined_reads",
    "nodes_match",
    "open_worker",
    "worker_nodes",
    "worker_page",
    "worker_subtree",
]

_TRUST = frozenset(TRUST_ENTRY_TYPES)
_IDX, _HASH = itemgetter(0), itemgetter(1)
_ENTRY_ROWS = ("SELECT seq, raw, leaf_hash, type, time FROM entries WHERE seq >= ? AND seq < ? "
               "ORDER BY seq")
PIECE_LINES = 1 << 12
"""Lines of a page `accept_block` takes at a time (about 1 MiB, as the audit-pack workers):
a piece's values fit in memory the allocator keeps."""
_NODE_ROWS = "SELECT idx, hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx"


@dataclass(frozen=True, slots=True)
class PageProof:
    """A page proven at once, but for its `slow` rows: `(index in the page, the time of the row
    before it, or None for the first)`, which the caller checks strictly, in order (the first
    row, trust entries). `last` is the time of the page's last row."""

    slow: tuple[tuple[int, str | None], ...]
    last: str


def nodes_match(nodes: list[SqlRow], children: list[SqlRow], first: int) -> bool:
    """Whether `nodes` are `first, first + 1, ...` and each is the hash of its two children.

    Each test is a C-level `map` over the rows (no bytecode per node)."""
    n = len(nodes)
    if len(children) != 2 * n:
        return False
    if n == 0:  # a last page of one entry has no level-1 node over it
        return True
    if list(map(_IDX, nodes)) != list(range(first, first + n)):
        return False
    if list(map(_IDX, children)) != list(range(2 * first, 2 * (first + n))):
        return False
    hashes = list(map(_HASH, children))
    if set(map(type, hashes)) != {bytes}:
        return False
    blobs: list[bytes] = hashes  # bytes: checked by the set just above
    if set(map(len, blobs)) != {merkle.HASH_SIZE}:
        return False
    return merkle.node_hashes(blobs[0::2], blobs[1::2]) == list(map(_HASH, nodes))


def check_nodes(conn: sqlite3.Connection, level: int, lo: int, hi: int) -> bool:
    """Whether the nodes `[lo, hi)` of `level` (>= 2) are all there, each the hash of its two
    stored children."""
    nodes = conn.execute(_NODE_ROWS, (level, lo, hi)).fetchall()
    children = conn.execute(_NODE_ROWS, (level - 1, 2 * lo, 2 * hi)).fetchall()
    return len(nodes) == hi - lo and nodes_match(nodes, children, lo)


def check_page(conn: sqlite3.Connection, first: int, stop: int) -> PageProof | None:
    """Entries `[first, stop)` proven at once (`first` even), or None: the facts of
    `verification._Entries.page`'s fast path, with no Python bytecode per row (but for the few
    lines the fast path refuses, which are left `slow`: see `_accept_lines`)."""
    half = (stop - first) // 2
    return _check_page(conn, first, stop,
                       conn.execute(_NODE_ROWS, (1, first // 2, first // 2 + half)).fetchall())[0]


def check_subtree(conn: sqlite3.Connection, first: int, stop: int, top: int, *,
                  joined: bool = False) -> tuple[bool, PageProof | None]:
    """`check_page(first, stop)`, and whether the nodes of levels 2 to `top` over those entries
    (`first` a multiple of `2 ** top`) are all there, each the hash of its two stored children.

    Each level is read once, and is the children of the next: checking the levels a range at a
    time (`check_nodes`) reads every node twice, as a node and as a child.

    `joined` (only when `joined_reads(conn)` and the caller's `quick_check` passed): the page is
    read a column at a time (`_joined_subtree`); the same answer, from reads that build a few
    objects per page, not five per row."""
    if joined:
        answer = _joined_subtree(conn, first, stop, top)
        if answer is not None:
            return answer
    ones = conn.execute(_NODE_ROWS, (1, first >> 1, stop >> 1)).fetchall()
    page, proven_ones = _check_page(conn, first, stop, ones)
    if proven_ones is not None:  # level 1 equals digests: 32-byte hashes, idx in order
        below = proven_ones
        proven = first % (1 << top) == 0
    else:
        below = list(map(_HASH, ones))
        proven = (first % (1 << top) == 0 and len(below) == (stop >> 1) - (first >> 1)
                  and list(map(_IDX, ones)) == list(range(first >> 1, stop >> 1))
                  and set(map(type, below)) <= {bytes}
                  and set(map(len, below)) <= {merkle.HASH_SIZE})
    for level in range(2, top + 1):
        if not proven:
            break
        nodes = conn.execute(_NODE_ROWS, (level, first >> level, stop >> level)).fetchall()
        wanted = (stop >> level) - (first >> level)
        hashes = _level_above(nodes, below, first >> level) if len(nodes) == wanted else None
        proven = hashes is not None
        below = hashes or []
    return proven, page


# --- joined reads: a page's column in one value ---------------------------------------------
#
# A row read costs SQLite a tuple and five values, most of the time of a page's reads; the same
# rows `group_concat`ed column by column come back as a few values per page, which C-level
# `split`s and `join`s take apart. They are only used when they are exactly the rows' values
# (`joined_reads`), and only to prove: whatever they do not prove is read again row by row, and
# the row checks decide, so a page's answer is the one the rows give.

_JOINED_ENTRIES = (
    "SELECT group_concat(seq - ?1, ','), CAST(group_concat(raw, x'0a') AS BLOB), "
    "CAST(group_concat(leaf_hash, '') AS BLOB), min(length(leaf_hash)), max(length(leaf_hash)), "
    "group_concat(type, x'0a'), group_concat(time, x'0a') "
    "FROM entries WHERE seq >= ?1 AND seq < ?2")
_JOINED_NODES = (
    "SELECT group_concat(idx - ?2, ','), CAST(group_concat(hash, '') AS BLOB), min(length(hash)), "
    "max(length(hash)) FROM nodes WHERE level = ?1 AND idx >= ?2 AND idx < ?3")
_COLUMNS = {
    "entries": [("seq", "INTEGER", 0, 1), ("raw", "BLOB", 1, 0), ("leaf_hash", "BLOB", 1, 0),
                ("type", "TEXT", 1, 0), ("ceremony", "TEXT", 0, 0), ("time", "TEXT", 1, 0)],
    "nodes": [("level", "INTEGER", 1, 1), ("idx", "INTEGER", 1, 2), ("hash", "BLOB", 1, 0)],
}
_SELF_TEST = ("SELECT CAST(group_concat(column1, x'0a') AS BLOB) "
              "FROM (VALUES (x''), (x'00ff'), (x''))")


@lru_cache(maxsize=64)
def _counting(n: int) -> str:
    """`"0,1,...,n-1"`: the seqs (or idx) of a page's rows, each less the first one, joined in the
    order SQLite aggregated them, when they follow on (built once per page width)."""
    return ",".join(map(str, range(n)))


def joined_reads(conn: sqlite3.Connection) -> bool:
    """Whether `group_concat` over this connection's ledger gives exactly the rows' values, so
    that `check_subtree(..., joined=True)` may use it once `quick_check` has passed:

    - the tables are ours, STRICT with NOT NULL columns: with `quick_check` passed every value
      has its column's type (a STRICT table's types and NOT NULLs are part of it), so no NULL is
      skipped and no text is taken for a blob, and every seq and idx is an integer;
    - the database is UTF-8: a blob read as text keeps its bytes (UTF-16 would convert them);
    - this SQLite's `group_concat` writes a separator between every two values, empty ones too,
      and keeps NUL bytes (asked of it, not assumed)."""
    try:
        if conn.execute("PRAGMA encoding").fetchone() != ("UTF-8",):
            return False
        strict = conn.execute("SELECT name, strict FROM pragma_table_list "
                              "WHERE schema = 'main' AND name IN ('entries', 'nodes')").fetchall()
        if sorted(strict) != [("entries", 1), ("nodes", 1)]:
            return False
        for table, columns in _COLUMNS.items():
            found = conn.execute('SELECT name, type, "notnull", pk FROM pragma_table_xinfo(?)',
                                 (table,)).fetchall()
            if found != columns:
                return False
        return bool(conn.execute(_SELF_TEST).fetchone() == (b"\n\x00\xff\n",))
    except sqlite3.DatabaseError:  # an SQLite without pragma_table_list (< 3.37): rows then
        return False


def _joined_subtree(conn: sqlite3.Connection, first: int, stop: int,
                    top: int) -> tuple[bool, PageProof | None] | None:
    """`check_subtree`'s answer, when joined reads prove the page's entries and its level-1
    nodes (as `_check_page` does from rows); else None, and the rows decide."""
    if stop - first <= 0 or first % 2:
        return None
    read = _joined_entries(conn, first, stop)
    if read is None:
        return None
    blobs, leaves, types, times = read
    below = _joined_level(conn, 1, first >> 1, stop >> 1, leaves)
    if below is None:
        return None
    page = _accept_lines(blobs, leaves, first, types, times)
    proven = first % (1 << top) == 0
    for level in range(2, top + 1):
        if not proven:
            break
        lo, hi = first >> level, stop >> level
        hashes = _joined_level(conn, level, lo, hi, below)
        if hashes is None:  # the rows decide, as in `check_subtree`
            nodes = conn.execute(_NODE_ROWS, (level, lo, hi)).fetchall()
            hashes = _level_above(nodes, below, lo) if len(nodes) == hi - lo else None
        proven = hashes is not None
        below = hashes or []
    return proven, page


_Columns = tuple[list[bytes], list[bytes], tuple[str, ...], tuple[str, ...]]


def _joined_entries(conn: sqlite3.Connection, first: int, stop: int) -> _Columns | None:
    """`(raws, leaf hashes, types, times)` of entries `[first, stop)`, when joined reads show
    what `_check_page` asks of the rows: the seqs follow on (which also puts every column's
    values in seq order: one aggregate step per row), and each row's bytes hash to its stored
    leaf hash (32 bytes each, so equal joins are equal hashes). Else None.

    A value holding the separator (a raw with a newline) splits into more values than rows:
    None, and the rows decide."""
    try:
        row = conn.execute(_JOINED_ENTRIES, (first, stop)).fetchone()
    except sqlite3.DatabaseError:  # too long to join, or damaged: the row reads say which
        return None
    seqs, raw, stored, shortest, longest, kinds, whens = row
    if seqs != _counting(stop - first):
        return None
    if shortest != merkle.HASH_SIZE or longest != merkle.HASH_SIZE:
        return None
    if not (isinstance(raw, bytes) and isinstance(kinds, str) and isinstance(whens, str)):
        return None
    n = stop - first
    blobs, types, times = raw.split(b"\n"), kinds.split("\n"), whens.split("\n")
    if len(blobs) != n or len(types) != n or len(times) != n:
        return None
    leaves = leaf_hashes(blobs)
    if b"".join(leaves) != stored:
        return None
    return blobs, leaves, tuple(types), tuple(times)


def _joined_level(conn: sqlite3.Connection, level: int, lo: int, hi: int,
                  children: list[bytes]) -> list[bytes] | None:
    """`_level_above` of the nodes `[lo, hi)` of `level` when they are all there, from one
    joined read: their idx are `lo, lo + 1, ...` in order, their hashes 32 bytes each and, joined,
    the join of the hashes of their `children` (32-byte hashes, the first under node `lo`).
    Else None (the rows decide)."""
    wanted = hi - lo
    if wanted <= 0 or len(children) < 2 * wanted:
        return None
    try:
        idxs, stored, shortest, longest = conn.execute(_JOINED_NODES, (level, lo, hi)).fetchone()
    except sqlite3.DatabaseError:
        return None
    if idxs != _counting(wanted):
        return None
    if shortest != merkle.HASH_SIZE or longest != merkle.HASH_SIZE:
        return None
    hashes = merkle.node_hashes(children[0:2 * wanted:2], children[1:2 * wanted:2])
    return hashes if b"".join(hashes) == stored else None


def _level_above(nodes: list[SqlRow], children: list[bytes], first: int) -> list[bytes] | None:
    """The hashes of `nodes` when they are `first, first + 1, ...` and each is the hash of its
    two `children` (32-byte hashes, in order, the first under `nodes[0]`); else None. What is
    returned equals digests, so it is 32-byte hashes too: the next level's children."""
    n = len(nodes)
    if len(children) < 2 * n or list(map(_IDX, nodes)) != list(range(first, first + n)):
        return None
    hashes = list(map(_HASH, nodes))
    if merkle.node_hashes(children[0:2 * n:2], children[1:2 * n:2]) != hashes:
        return None
    return hashes


def _check_page(conn: sqlite3.Connection, first: int, stop: int,
                nodes: list[SqlRow]) -> tuple[PageProof | None, list[bytes] | None]:
    """`check_page`, given the page's level-1 nodes (`_NODE_ROWS`, idx `first // 2` on), and
    the hashes of those nodes when they are proven (else None)."""
    n = stop - first
    rows = conn.execute(_ENTRY_ROWS, (first, stop)).fetchall()
    if n <= 0 or first % 2 or len(rows) != n or len(nodes) != n // 2:
        return None, None
    seqs, raws, stored, types, times = zip(*rows, strict=True)
    if seqs != tuple(range(first, stop)):
        return None, None
    if set(map(type, raws)) != {bytes}:
        return None, None
    blobs: list[bytes] = list(raws)  # bytes: checked by the set just above
    leaves = leaf_hashes(blobs)
    if tuple(leaves) != stored:
        return None, None
    # Level 1 over this page's stored leaf hashes (equal to `leaves`, just above), so that the
    # roots the caller reads for the page's checkpoints rest on proven nodes.
    ones = _level_above(nodes, leaves, first // 2)
    if ones is None:
        return None, None
    return _accept_lines(blobs, leaves, first, types, times), ones


_MOST_REFUSED = 64
"""Most lines of a page `_accept_lines` leaves slow because the fast path refused them; a page
with more is left to the caller whole (its strict path is as fast for such a page)."""


def _accept_lines(lines: list[bytes], leaves: list[bytes], first: int,
                  types: tuple[object, ...], times: tuple[object, ...]) -> PageProof | None:
    """The page `lines` (entries `first, ...`) proven by `accept_block`, but for the lines it
    refuses: the page is taken in pieces of `PIECE_LINES`, and a piece refused is halved until
    the lines refused are alone (at most `_MOST_REFUSED` of them, else None).

    Every line that is not proven, every line of a special type and every piece's first line
    is `slow`, with the time of the line before it when that line is proven: the caller checks
    those strictly, in order. A piece's first line is not slow when the line before it is
    proven, its time is not before that line's, and its type is not special: `accept_block`
    leaves it to the caller only for the time before it. The type and time columns of each
    proven line are compared here with its bytes."""
    pieces: list[tuple[int, int]] = [(lo, min(lo + PIECE_LINES, len(lines)))
                                     for lo in range(0, len(lines), PIECE_LINES)]
    slow: list[tuple[int, str | None]] = []
    before: str | None = None
    refused = 0
    while pieces:
        lo, hi = pieces.pop(0)
        block = b"\n".join(lines[lo:hi]) + b"\n"
        piece = accept_block(block, first + lo, _TRUST, frozenset(), leaves=leaves[lo:hi])
        if piece is not None and piece.count != hi - lo:  # a raw holding a newline
            return None
        if piece is None and hi - lo > 1:
            middle = (lo + hi) // 2
            pieces[:0] = [(lo, middle), (middle, hi)]
            continue
        if piece is None:
            refused += 1
            if refused > _MOST_REFUSED:
                return None
            slow.append((lo, before))
            before = None
            continue
        if tuple(piece.types) != types[lo:hi] or tuple(piece.times) != times[lo:hi]:
            return None
        ahead = before is not None and piece.times[0] >= before and piece.types[0] not in _TRUST
        slow += [(lo + i, piece.times[i - 1] if i else before)
                 for i in piece.slow if i or not ahead]
        before = piece.times[-1]
    last = times[-1]
    return PageProof(tuple(slow), last if isinstance(last, str) else "")


# --- in the caller: handing pages out, taking answers in ------------------------------

_T = TypeVar("_T")


class Jobs:
    """The worker pool as `verification` uses it: a job that cannot be submitted or answered
    (a worker died, the pool broke, the worker's SQLite raised) answers None, and the caller
    does that piece itself; nothing a worker says fails the check on its own."""

    def __init__(self, pool: ProcessPoolExecutor, workers: int) -> None:
        self.pool = pool
        self.workers = workers
        self.in_workers = 0

    def submit(self, fn: Callable[..., _T], *args: int) -> Future[_T] | None:
        try:
            return self.pool.submit(fn, *args)
        except (RuntimeError, OSError):  # a broken pool or no process to start
            return None

    def result(self, job: Future[_T] | None) -> _T | None:
        if job is None:
            return None
        try:
            answer = job.result()
        except Exception:  # the caller redoes the piece itself, in its snapshot
            return None
        self.in_workers += 1
        return answer


Subtree = tuple[bool, PageProof | None]


class Subtrees:
    """The pages' answers (`treescan.check_subtree`), in page order. While the next one is not
    in, this process takes the last page no worker has started (its job cancelled) and checks
    it itself, in its snapshot: the workers work from the front, this process from the back,
    until they meet, so that all three share the work and none waits idle at the end."""

    def __init__(self, conn: sqlite3.Connection,
                 page_jobs: list[tuple[int, int, Future[Subtree] | None]], top: int,
                 jobs: Jobs, *, joined: bool = False) -> None:
        self.conn = conn
        self.page_jobs = page_jobs
        self.top = top
        self.joined = joined  # `check_subtree`'s, here: after the caller's quick_check passed
        self.jobs = jobs
        self.front = 0
        self.back = len(page_jobs)
        self.here: dict[int, Subtree | None] = {}
        # the first pages are always the workers' (one each and one queued), so that they prove
        # some even when this process is quicker to start than they are
        self.keep = jobs.workers + 1

    def next(self) -> Subtree | None:
        """The answer for the next page, or None after the last."""
        if self.front == len(self.page_jobs):
            return None
        while max(self.front, self.keep) < self.back - 1:
            job = self.page_jobs[self.front][2]
            if job is None or job.done():
                break
            first, stop, last = self.page_jobs[self.back - 1]
            if last is None or not last.cancel():
                break  # a worker has it: from here on, every page is theirs
            self.back -= 1
            try:
                with no_gc():
                    self.here[self.back] = check_subtree(self.conn, first, stop, self.top,
                                                         joined=self.joined)
            except sqlite3.DatabaseError:  # raised again in its turn, as a worker's failure
                self.here[self.back] = None
                break
        index = self.front
        self.front += 1
        first, stop, job = self.page_jobs[index]
        answer = self.here.pop(index) if index in self.here else self.jobs.result(job)
        if answer is None:
            answer = check_subtree(self.conn, first, stop, self.top, joined=self.joined)
        return answer


# --- in a worker process ----------------------------------------------------------------------

_worker_conn: sqlite3.Connection | None = None
_worker_joined = False
_MMAP_BYTES = 1 << 31  # SQLite maps at most its SQLITE_MAX_MMAP_SIZE (2 GB by default)


def open_worker(path: str) -> None:
    """A worker's initializer: its own read-only connection to the ledger, and whether joined
    reads give the rows' values on it (`joined_reads`). The cyclic collector stays off (a page's
    values hold no cycles)."""
    global _worker_conn, _worker_joined
    gc.disable()
    _worker_conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True,
                                   isolation_level=None)
    # Pages read through a memory map, not copied in by a read call each (a fifth of a page's
    # reads). Only here: an I/O error on a mapped file kills the process (SIGBUS), which the
    # caller survives (it redoes the worker's pieces itself), and a console would not.
    _worker_conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
    _worker_joined = joined_reads(_worker_conn)


def _conn() -> sqlite3.Connection:
    if _worker_conn is None:
        raise RuntimeError("not a verify-tree worker")
    return _worker_conn


def worker_nodes(level: int, lo: int, hi: int) -> bool:
    return check_nodes(_conn(), level, lo, hi)


def worker_page(first: int, stop: int) -> PageProof | None:
    return check_page(_conn(), first, stop)


def worker_subtree(first: int, stop: int, top: int,
                   joined: int = 0) -> tuple[bool, PageProof | None]:
    """`check_subtree`, with joined reads when the caller found them exact in its snapshot (after
    its `quick_check` passes, it takes the answer) and this worker on its connection."""
    return check_subtree(_conn(), first, stop, top, joined=bool(joined) and _worker_joined)

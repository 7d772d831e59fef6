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
the caller can run any of them itself when no worker can. A page is read with joined reads
(`console.ledger.treejoin`, a piece of `PIECE_LINES` entries at a time: `_joined_subtree`) when
the caller found them exact in its snapshot and its `quick_check` passed, else as rows; the
answer is the same (what the joined reads do not prove, the rows decide).

It also owns how the caller hands the pieces out and takes the answers in (`Jobs`, `Subtrees`:
the caller checks pages itself from the last one back while the workers go from the front).
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TypeVar

from console.ledger import merkle
from console.ledger._sqlite import SqlRow
from console.ledger.blockscan import Accepted, accept_block, leaf_hashes, no_gc
from console.ledger.treejoin import joined_entries, joined_level, joined_reads
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


def _joined_subtree(conn: sqlite3.Connection, first: int, stop: int,
                    top: int) -> tuple[bool, PageProof | None] | None:
    """`check_subtree`'s answer from joined reads (`console.ledger.treejoin`), a piece of
    `PIECE_LINES` entries at a time: its entries, their level-1 nodes and, when the page is
    aligned, the levels over the piece up to its width; then the levels above, over the whole
    page. None when the joined reads do not prove the entries or their level-1 nodes (as
    `_check_page` does from rows): the rows decide then. A piece's values stay in the cache
    from its read to its last check."""
    if stop - first <= 0 or first % 2:
        return None
    aligned = first % (1 << top) == 0
    inner = min(top, PIECE_LINES.bit_length() - 1) if aligned else 1
    lines = _Lines(first)
    tops: list[bytes] = []
    proven = aligned
    for lo in range(first, stop, PIECE_LINES):
        hi = min(lo + PIECE_LINES, stop)
        read = joined_entries(conn, lo, hi)
        if read is None:
            return None
        leaves = lines.take_block(lo - first, read.block, hi - lo, read.types, read.times)
        if leaves is None or b"".join(leaves) != read.leaves:  # 32-byte hashes, stored
            return None
        below = joined_level(conn, 1, lo >> 1, hi >> 1, leaves)
        if below is None:
            return None
        for level in range(2, inner + 1):
            if not proven:
                break
            hashes = _proven_level(conn, level, lo >> level, hi >> level, below)
            proven = hashes is not None
            below = hashes or []
        tops += below
    for level in range(inner + 1, top + 1):
        if not proven:
            break
        hashes = _proven_level(conn, level, first >> level, stop >> level, tops)
        proven = hashes is not None
        tops = hashes or []
    return proven, lines.proof()


def _proven_level(conn: sqlite3.Connection, level: int, lo: int, hi: int,
                  children: list[bytes]) -> list[bytes] | None:
    """`_level_above` of the nodes `[lo, hi)` of `level` over `children`: from a joined read
    when it proves them, else from their rows."""
    hashes = joined_level(conn, level, lo, hi, children)
    if hashes is None:
        nodes = conn.execute(_NODE_ROWS, (level, lo, hi)).fetchall()
        hashes = _level_above(nodes, children, lo) if len(nodes) == hi - lo else None
    return hashes


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
    refuses (`_Lines`), taken in pieces of `PIECE_LINES`."""
    page = _Lines(first)
    kinds, whens = list(types), list(times)
    for lo in range(0, len(lines), PIECE_LINES):
        hi = lo + PIECE_LINES
        page.take(lo, lines[lo:hi], leaves[lo:hi], kinds[lo:hi], whens[lo:hi])
    return page.proof()


class _Lines:
    """A page's lines proven by `accept_block`, but for the lines it refuses: the page is taken
    a piece at a time (`take`), and a piece refused is halved until the lines refused are alone
    (at most `_MOST_REFUSED` of them in the page, else the page is not proven).

    Every line that is not proven, every line of a special type and every piece's first line
    is `slow`, with the time of the line before it when that line is proven: the caller checks
    those strictly, in order. A piece's first line is not slow when the line before it is
    proven, its time is not before that line's, and its type is not special: `accept_block`
    leaves it to the caller only for the time before it. The type and time columns of each
    proven line are compared here with its bytes."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.slow: list[tuple[int, str | None]] = []
        self.before: str | None = None  # the time of the line before, when it is proven
        self.refused = 0
        self.last: object = None  # the time column of the page's last line
        self.failed = False

    def take(self, start: int, lines: list[bytes], leaves: list[bytes], types: Sequence[object],
             times: Sequence[object]) -> None:
        """The lines from `start` (an index in the page) on, with their leaf hashes and their
        type and time columns."""
        if self.failed or not lines:
            return
        self.last = times[-1]
        pieces = [(0, len(lines))]
        while pieces:
            lo, hi = pieces.pop(0)
            block = b"\n".join(lines[lo:hi]) + b"\n"
            piece = accept_block(block, self.first + start + lo, _TRUST, frozenset(),
                                 leaves=leaves[lo:hi])
            if piece is not None and piece.count != hi - lo:  # a raw holding a newline
                self.failed = True
                return
            if piece is None and hi - lo > 1:
                middle = (lo + hi) // 2
                pieces[:0] = [(lo, middle), (middle, hi)]
                continue
            if piece is None:
                self.refused += 1
                if self.refused > _MOST_REFUSED:
                    self.failed = True
                    return
                self.slow.append((start + lo, self.before))
                self.before = None
                continue
            if not self._proven(start + lo, piece, types[lo:hi], times[lo:hi]):
                return

    def take_block(self, start: int, block: bytes, count: int, types: Sequence[object],
                   times: Sequence[object]) -> list[bytes] | None:
        """`take` of the `count` lines of `block` (each ended by a newline), with their leaf
        hashes computed by `accept_block` when it proves them all at once (no second split of
        the block). Returns the leaf hashes, or None when the block does not hold `count` lines
        (a raw holding a newline)."""
        if not self.failed:
            piece = accept_block(block, self.first + start, _TRUST, frozenset())
            if piece is not None and piece.count == count:
                self.last = times[-1]
                self._proven(start, piece, types, times)
                return piece.leaves
        raws = block.split(b"\n")
        raws.pop()
        if len(raws) != count:
            return None
        leaves = leaf_hashes(raws)
        self.take(start, raws, leaves, types, times)
        return leaves

    def _proven(self, start: int, piece: Accepted, types: Sequence[object],
                times: Sequence[object]) -> bool:
        """Take the lines from `start` that `piece` proved, after comparing their type and time
        columns with its bytes (False, the page not proven, when they differ)."""
        if piece.types != types or piece.times != times:
            self.failed = True
            return False
        before = self.before
        ahead = before is not None and piece.times[0] >= before and piece.types[0] not in _TRUST
        self.slow += [(start + i, piece.times[i - 1] if i else before)
                      for i in piece.slow if i or not ahead]
        self.before = piece.times[-1]
        return True

    def proof(self) -> PageProof | None:
        if self.failed:
            return None
        return PageProof(tuple(self.slow), self.last if isinstance(self.last, str) else "")


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

"""The page checks of "verify tree" that may run in worker processes.

`console.ledger.verification` owns the order of the checks and every error message; this module
owns the self-contained pieces it hands to workers: `PRAGMA quick_check`, one range of persisted
nodes against their children (`check_nodes`), and one page of entries (`check_page`: seqs follow
on, level-1 nodes over the stored leaf hashes, each row's bytes hash to its stored leaf hash, the
page is a block of canonical entries, the type and time columns are copies of its bytes). Each
answers only "proven" (with what the caller still needs) or "not proven": the caller then redoes
that piece in its own snapshot with the strict code, which names the first bad seq or node.

Each worker opens the SQLite file read-only itself (`open_worker`, the pool's initializer). The
workers' reads are not the caller's snapshot; every query here is bounded by the size the caller
read in its snapshot, and the ledger only ever grows (triggers refuse UPDATE and DELETE), so a
concurrent append does not change what a worker sees. The functions also take a connection, so
the caller can run any of them itself when no worker can.
"""

from __future__ import annotations

import gc
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from console.ledger import merkle
from console.ledger._sqlite import SqlRow
from console.ledger.blockscan import accept_block, leaf_hashes
from console.ledger.trust import TRUST_ENTRY_TYPES

__all__ = [
    "PageProof",
    "check_nodes",
    "check_page",
    "nodes_match",
    "open_worker",
    "worker_nodes",
    "worker_page",
    "worker_quick_check",
]

_TRUST = frozenset(TRUST_ENTRY_TYPES)
_ENTRY_ROWS = ("SELECT seq, raw, leaf_hash, type, time FROM entries WHERE seq >= ? AND seq < ? "
               "ORDER BY seq")
_NODE_ROWS = "SELECT idx, hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx"


@dataclass(frozen=True, slots=True)
class PageProof:
    """A page proven at once, but for its `slow` rows: `(index in the page, the time of the row
    before it, or None for the first)`, which the caller checks strictly, in order (the first
    row, trust entries). `last` is the time of the page's last row."""

    slow: tuple[tuple[int, str | None], ...]
    last: str


def nodes_match(nodes: list[SqlRow], children: list[SqlRow], first: int) -> bool:
    """Whether `nodes` are `first, first + 1, ...` and each is the hash of its two children."""
    n = len(nodes)
    if len(children) != 2 * n:
        return False
    if n == 0:  # a last page of one entry has no level-1 node over it
        return True
    if [row[0] for row in nodes] != list(range(first, first + n)):
        return False
    if [row[0] for row in children] != list(range(2 * first, 2 * (first + n))):
        return False
    hashes = [row[1] for row in children]
    if {type(h) for h in hashes} != {bytes}:
        return False
    blobs: list[bytes] = hashes  # type: ignore[assignment]  # narrowed by the set just above
    if {len(h) for h in blobs} != {merkle.HASH_SIZE}:
        return False
    return merkle.node_hashes(blobs[0::2], blobs[1::2]) == [row[1] for row in nodes]


def check_nodes(conn: sqlite3.Connection, level: int, lo: int, hi: int) -> bool:
    """Whether the nodes `[lo, hi)` of `level` (>= 2) are all there, each the hash of its two
    stored children."""
    nodes = conn.execute(_NODE_ROWS, (level, lo, hi)).fetchall()
    children = conn.execute(_NODE_ROWS, (level - 1, 2 * lo, 2 * hi)).fetchall()
    return len(nodes) == hi - lo and nodes_match(nodes, children, lo)


def check_page(conn: sqlite3.Connection, first: int, stop: int) -> PageProof | None:
    """Entries `[first, stop)` proven at once (`first` even), or None: the facts of
    `verification._Entries.page`'s fast path, with no Python bytecode per row."""
    n = stop - first
    rows = conn.execute(_ENTRY_ROWS, (first, stop)).fetchall()
    if n <= 0 or first % 2 or len(rows) != n:
        return None
    seqs, raws, stored, types, times = zip(*rows, strict=True)
    if seqs != tuple(range(first, stop)):
        return None
    # Level 1 over this page's stored leaf hashes, so that the roots the caller reads for the
    # page's checkpoints rest on proven nodes.
    half = n // 2
    nodes = conn.execute(_NODE_ROWS, (1, first // 2, first // 2 + half)).fetchall()
    children: list[SqlRow] = list(zip(seqs[: 2 * half], stored[: 2 * half], strict=True))
    if len(nodes) != half or not nodes_match(nodes, children, first // 2):
        return None
    if set(map(type, raws)) != {bytes}:
        return None
    blobs: list[bytes] = list(raws)  # bytes: checked by the set just above
    block = b"\n".join(blobs) + b"\n"
    leaves = leaf_hashes(blobs)
    if block.count(b"\n") != n or tuple(leaves) != stored:
        return None
    accepted = accept_block(block, first, _TRUST, frozenset(), leaves=leaves)
    if accepted is None or tuple(accepted.types) != types or tuple(accepted.times) != times:
        return None
    slow = tuple((i, accepted.times[i - 1] if i else None) for i in accepted.slow)
    return PageProof(slow, accepted.times[-1])


# --- in a worker process ----------------------------------------------------------------------

_worker_conn: sqlite3.Connection | None = None


def open_worker(path: str) -> None:
    """A worker's initializer: its own read-only connection to the ledger. The cyclic collector
    stays off (a page's values hold no cycles)."""
    global _worker_conn
    gc.disable()
    _worker_conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True,
                                   isolation_level=None)


def _conn() -> sqlite3.Connection:
    if _worker_conn is None:
        raise RuntimeError("not a verify-tree worker")
    return _worker_conn


def worker_quick_check() -> list[SqlRow]:
    rows: list[SqlRow] = _conn().execute("PRAGMA quick_check").fetchall()
    return rows


def worker_nodes(level: int, lo: int, hi: int) -> bool:
    return check_nodes(_conn(), level, lo, hi)


def worker_page(first: int, stop: int) -> PageProof | None:
    return check_page(_conn(), first, stop)

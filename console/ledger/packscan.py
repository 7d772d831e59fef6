"""The audit-pack verifier's blocks, scanned by worker processes and handed back in file order.

`console.ledger.pack` owns the order of the checks and every message: it reads each file once,
hashes it for the manifest, cuts it into blocks of whole lines and gives each block to
`OrderedScans.push`; what comes back is, block by block and in file order, what `scan_pieces`
returns for it (here when no worker could do it): lines a worker accepted are valid entries, and
every other line is left to the caller's strict path, in order, so the first bad line is named as
when the file is scanned in one process.

How a block reaches a worker: when the workers are forked (this process runs one thread), through
a shared anonymous memory map made before the fork, one slot per block in flight; the block's
bytes are copied once into its slot and the worker copies each piece out, where sending them
through the pool's pipe would copy them four times and wake both processes for every 64 KiB. A
slot is reused only after its block's result came back. Spawned workers (a threaded process: a
forked child may inherit a held lock), and a block too big for a slot, are sent the bytes.
"""

from __future__ import annotations

import gc
import mmap
import multiprocessing
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from console.ledger.blockscan import scan_block
from console.ledger.entry import LineScan, Watch

__all__ = ["OrderedScans", "scan_pieces"]

_shared: mmap.mmap | None = None
"""In a forked worker: the parent's slots."""


def _attach(shared: mmap.mmap | None) -> None:
    """A worker's initializer: the slots (when forked), and no cyclic collector (a block's values
    hold no cycles; its generation counters would collect every few hundred objects)."""
    global _shared
    gc.disable()
    _shared = shared


def scan_pieces(source: bytes | mmap.mmap, first_seq: int, special: frozenset[str],
                cuts: frozenset[int], piece_bytes: int, start: int = 0,
                stop: int | None = None, watch: Watch | None = None) -> LineScan:
    """`scan_block` over the block `source[start:stop]` a piece of about `piece_bytes` at a
    time, joined into one `LineScan` (the first line of each piece left to the caller, as a
    block's first line). Each piece is copied out of `source` alone (a slot's block is never
    copied whole).

    Blocks travel to workers big, so that there are few of them to hand over; they are scanned
    in pieces, whose values (about ten objects per line) fit in memory the allocator keeps: a
    4 MiB block's values touched fresh pages every block, a page fault per 4 KiB."""
    stop = len(source) if stop is None else stop
    joined: LineScan | None = None
    pos = start
    while pos < stop:
        end = source.find(b"\n", min(pos + piece_bytes, stop) - 1, stop) + 1 or stop
        scan = scan_block(source[pos:end], first_seq, special, cuts, watch)
        first_seq += scan.count
        pos = end
        joined = scan if joined is None else _join(joined, scan)
    return joined if joined is not None else scan_block(source[start:stop], first_seq, special,
                                                        cuts, watch)


def _join(a: LineScan, b: LineScan) -> LineScan:
    """The scan of a block made of `a`'s lines then `b`'s. `b`'s first line is left to the
    caller (`scan_block` never accepts a block's first line); the time before it is `a`'s last
    time, so that it is checked against the line before it as in one block."""
    slow = list(a.slow)
    for i, before, raw in b.slow:
        slow.append((a.count + i, a.last_time if i == 0 else before, raw))
    runs = [*a.runs[:-1], a.runs[-1] + b.runs[0], *b.runs[1:]]
    acts = a.acts
    if a.acts and b.acts:  # seqs are absolute: where both runs name a pair, `a`'s line is first
        acts = [*a.acts[:-1], {**b.acts[0], **a.acts[-1]}, *b.acts[1:]]
    return LineScan(a.count + b.count, slow, runs, b.last_time, acts)


def _scan_slot(offset: int, length: int, first_seq: int, special: frozenset[str],
               cuts: frozenset[int], piece_bytes: int, watch: Watch | None) -> LineScan:
    if _shared is None:
        raise RuntimeError("not a forked pack-scan worker")
    return scan_pieces(_shared, first_seq, special, cuts, piece_bytes, offset, offset + length,
                       watch)


class OrderedScans:
    """`scan_block` over a file's blocks in `workers` processes, results in the blocks' order.

    At most `window` blocks per worker are in flight, so memory stays bounded whatever the
    file's size.
    """

    def __init__(self, workers: int, *, window: int, slot_bytes: int, piece_bytes: int,
                 first_seq: int, special: frozenset[str], cuts: frozenset[int],
                 watch: Watch | None = None) -> None:
        self.piece_bytes = piece_bytes
        self.first_seq = first_seq
        self.special = special
        self.cuts = cuts
        self.watch = watch
        self.limit = window * workers
        self.blocks_in_workers = 0
        # fork only when this process has a single thread (the CLI): a forked child of a
        # threaded process (the TUI, an HSM session) may inherit a held lock; spawn then.
        forked = threading.active_count() == 1
        self.slot_bytes = slot_bytes
        self.shared = mmap.mmap(-1, (self.limit + 1) * slot_bytes) if forked else None
        self.free = deque(range(self.limit + 1)) if forked else deque[int]()
        self.pool = ProcessPoolExecutor(
            workers, multiprocessing.get_context("fork" if forked else "spawn"),
            initializer=_attach, initargs=(self.shared,) if forked else (None,),
        )
        # (line_no, the block's bytes unless in a slot, slot, length, the worker's job)
        self.waiting: deque[
            tuple[int, bytes | None, int | None, int, Future[LineScan] | None]
        ] = deque()

    def push(self, line_no: int, block: bytes | memoryview) -> Iterator[tuple[int, LineScan]]:
        """Hand over the block whose first line is `line_no` (copied before this returns: the
        caller may reuse its buffer); yield `(line_no, scan)` of the blocks whose turn has come
        (in order), waiting when too many are in flight."""
        while len(self.waiting) >= self.limit or (self.shared is not None and not self.free):
            yield self._collect()
        slot = self.free.popleft() if len(block) <= self.slot_bytes and self.free else None
        kept = None if slot is not None else bytes(block)
        job = self._submit(line_no, kept if kept is not None else block, len(block), slot)
        if job is None and slot is not None:  # the worker will never read it: keep it here
            kept = bytes(block)
            self.free.append(slot)
            slot = None
        self.waiting.append((line_no, kept, slot, len(block), job))
        while self.waiting and (self.waiting[0][4] is None or self.waiting[0][4].done()):
            yield self._collect()

    def drain(self) -> Iterator[tuple[int, LineScan]]:
        """The blocks still in flight, in order."""
        while self.waiting:
            yield self._collect()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.shared is not None:
            self.shared.close()

    def _submit(self, line_no: int, block: bytes | memoryview, length: int,
                slot: int | None) -> Future[LineScan] | None:
        first = self.first_seq + line_no - 1
        try:
            if slot is None:
                data = block if isinstance(block, bytes) else bytes(block)
                return self.pool.submit(scan_pieces, data, first, self.special, self.cuts,
                                        self.piece_bytes, 0, None, self.watch)
            assert self.shared is not None  # slots exist only with a shared map
            offset = slot * self.slot_bytes
            self.shared[offset:offset + length] = block
            return self.pool.submit(_scan_slot, offset, length, first, self.special,
                                    self.cuts, self.piece_bytes, self.watch)
        except (BrokenProcessPool, OSError, RuntimeError):
            return None

    def _collect(self) -> tuple[int, LineScan]:
        line_no, kept, slot, length, job = self.waiting.popleft()
        try:
            scan = job.result() if job is not None else None
        except (BrokenProcessPool, OSError):
            scan = None
        if scan is None:  # no worker could do it: the same scan, here
            if kept is None:
                assert self.shared is not None and slot is not None  # the block is in its slot
                offset = slot * self.slot_bytes
                scan = scan_pieces(self.shared, self.first_seq + line_no - 1, self.special,
                                   self.cuts, self.piece_bytes, offset, offset + length,
                                   self.watch)
            else:
                scan = scan_pieces(kept, self.first_seq + line_no - 1, self.special, self.cuts,
                                   self.piece_bytes, watch=self.watch)
        else:
            self.blocks_in_workers += 1
        if slot is not None:
            self.free.append(slot)
        return line_no, scan

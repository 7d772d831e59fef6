"""The checks `Ledger.open` makes at every open, and the proofs its reads rely on afterwards.

0. The type index (a column beside each entry's bytes) says what every entry's bytes say.
1. The checkpoint chain: the officers, quorum rules and checkpoints replayed through the type
   index (`console.ledger.trust`); a checkpoint that does not count is refused.
2. Every entry that replay read is proven inside the last checkpoint's signed tree (one batch
   inclusion proof).
3. The entries after that checkpoint are recomputed from their bytes against the stored tree
   (a page at a time, each page's leaves at once; see `_page_leaves`).
4. The rollback guards: the database extends the `.checkpoint` file and any checkpoint an
   officer kept (`expect_checkpoint`).

The functions take the ledger as `self`: they are its methods, kept in their own room.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING

from console.errors import LedgerTamperedError, RollbackError, VerificationError
from console.ledger import merkle
from console.ledger._rows import checked, leaf_of, stored_entry
from console.ledger._sqlite import SqlRow, column_int
from console.ledger.blockscan import accept_block, leaf_hashes
from console.ledger.checkpoint import Checkpoint, parse_checkpoint_body, parse_note
from console.ledger.checkpoint_file import read_checkpoint_file, write_checkpoint_file
from console.ledger.entry import Entry
from console.ledger.trust import TRUST_ENTRY_TYPES, TrustReplay

if TYPE_CHECKING:
    from console.ledger.store import Ledger

PAGE = 1 << 14
"""Rows read at a time when recomputing the entries after the last checkpoint."""

__all__ = ["check_extends", "check_open", "note_body", "prove"]

_TYPE_NOT_BYTES = (
    "SELECT seq FROM entries WHERE type IS NULL OR substr(raw, -(length(type) + 16)) "
    """IS NOT CAST('"type":"' || type || '","v":1}' AS BLOB) LIMIT 1""")
"""The first row whose `type` column is not the type its canonical bytes end with: they end in
`"type":"<type>","v":1}` (keys sorted, `v` last, a type has no quote), and the Merkle tree and
the checkpoints cover the bytes only. An index edited beside them would hide an entry from every
replay that reads through it (an officer's revocation, a key's compromise) while the tree and
an audit pack, made of the bytes, still show it. One pass in SQLite: ~40 ms per 100,000 rows."""


def check_open(self: Ledger, expect_checkpoint: str | None) -> None:
    """What every command relies on (see `Ledger.open`); records the replay in `self`."""
    size = self.size
    count = self._scalar("SELECT count(*) FROM entries")
    if count != size:
        raise LedgerTamperedError(
            f"ledger has {count} entries but its last seq is {size - 1}",
            "entries were removed or inserted; restore the ledger from a backup",
        )
    # 0. The type index says what the bytes say (the replays below read through it).
    relabelled = self._one(_TYPE_NOT_BYTES)
    if relabelled is not None:
        raise LedgerTamperedError(
            f"entry {column_int(relabelled[0])}'s type column is not the type its bytes record",
            "the ledger was edited behind the console's back: restore it from a backup")
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
    prove(self, [e for e in read if e.seq < covered], trust.checkpoint)
    # 3. The entries after the last checkpoint, recomputed from their bytes.
    cr = merkle.CompactRange.from_perfect_nodes(covered, self._node)
    for start in range(covered, size, PAGE):
        rows = self._all("SELECT seq, raw, leaf_hash FROM entries WHERE seq >= ? AND seq < ? "
                         "ORDER BY seq", (start, min(start + PAGE, size)))
        cr.append_range(merkle.aligned_nodes(start, _page_leaves(rows, start)))
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
    file_note = read_checkpoint_file(self.checkpoint_file)
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
            check_extends(self, note, source, size)
    if trust.checkpoint is not None and file_note == "":
        write_checkpoint_file(self.checkpoint_file, self.latest_checkpoint() or "")
    elif trust.checkpoint is not None and file_note is not None:
        file_size = note_body(file_note, str(self.checkpoint_file)).size
        if covered > file_size:
            # A crash between the commit and the file write: bring the file forward.
            write_checkpoint_file(self.checkpoint_file, self.latest_checkpoint() or file_note)

def _page_leaves(rows: list[SqlRow], start: int) -> list[bytes]:
    """The leaf hashes of one page of rows `(seq, raw, leaf_hash)` from `start`, each equal to the
    stored one and each row readable as an entry (what `Ledger.entries` checks of every row).

    At once when the page's bytes are a block `accept_block` proves (canonical entries are
    readable) and hash to the stored leaves; otherwise row by row, raising for the first bad row
    exactly as `Ledger.entries` does.
    """
    raws = [row[1] for row in rows]
    if [row[0] for row in rows] == list(range(start, start + len(rows))) and all(
            type(r) is bytes for r in raws):
        blobs: list[bytes] = raws  # type: ignore[assignment]  # narrowed just above
        leaves = leaf_hashes(blobs)
        block = b"\n".join(blobs) + b"\n"
        if (leaves == [row[2] for row in rows] and block.count(b"\n") == len(rows)
                and accept_block(block, start, frozenset(), frozenset(), leaves=leaves)):
            return leaves
    return [leaf_of(checked(stored_entry(row))) for row in rows]


def prove(self: Ledger, entries: Sequence[Entry], checkpoint: Checkpoint | None) -> None:
    """Each entry is inside the tree `checkpoint` signs (one batch inclusion proof)."""
    if not entries or checkpoint is None:
        return
    leaves = {e.seq: leaf_of(e) for e in entries}
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

def note_body(note: str, source: str) -> Checkpoint:
    try:
        text, _ = parse_note(note)
        return parse_checkpoint_body(text)
    except VerificationError as e:
        raise RollbackError(
            f"checkpoint from {source} is malformed: {e.message}",
            "give the checkpoint note exactly as it was printed",
        ) from e

def check_extends(self: Ledger, note: str, source: str, size: int) -> None:
    """The ledger's first `size` entries extend the checkpoint `note` (RollbackError)."""
    cp = note_body(note, source)
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

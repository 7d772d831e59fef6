"""Appending inside one write transaction, and recording checkpoints there.

`Ledger.transaction()` hands out a `Writer`: each `append` encodes, strictly re-reads and folds
the new entry (officers, quorum, checkpoints) before inserting it with the Merkle nodes it
completes; `append_checkpoint` records a signed note that must cover every entry so far and be
signed by the routine quorum of the officers in force, so a step's effect and the officers'
signatures over it commit together.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING

from console.clock import format_time, require_utc
from console.errors import ClockError, LedgerTamperedError, VerificationError
from console.jsontypes import JsonMapping
from console.ledger import merkle
from console.ledger.checkpoint import checkpoint_body, parse_checkpoint_body, parse_note
from console.ledger.entry import Entry, encode_entry, parse_entry
from console.ledger.trust import CHECKPOINT, TRUST_ENTRY_TYPES, TrustReplay

if TYPE_CHECKING:
    from console.ledger.store import Ledger

__all__ = ["Writer"]


class Writer:
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

    def append(self, type: str, data: JsonMapping, *, time: datetime, actor: str,
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

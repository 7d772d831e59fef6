"""Entries read back from the ledger's own table: parsed without re-checking their form (the
form was checked when they were appended; `verify_tree` checks it again), each checked against
its stored leaf hash on every read.
"""

from __future__ import annotations

import json
from datetime import datetime

from console.errors import LedgerTamperedError
from console.ledger import merkle
from console.ledger._sqlite import SqlRow, column_bytes, column_int
from console.ledger.entry import Entry

__all__ = ["checked", "leaf_of", "stored_entry"]


def leaf_of(entry: Entry) -> bytes:
    return merkle.leaf_hash(entry.raw)


def checked(entry: Entry) -> Entry:
    """The entry if its bytes give its stored leaf hash (a cheap check on every read)."""
    if leaf_of(entry) != entry.leaf_hash:
        raise LedgerTamperedError(
            f"entry {entry.seq} does not match its leaf hash: its bytes were edited",
            "restore the ledger from a backup and verify it",
        )
    return entry


def stored_entry(row: SqlRow) -> Entry:
    """An entry read back from our own table: parsed, not re-checked (verify_tree does that)."""
    seq, raw = column_int(row[0]), column_bytes(row[1])
    stored_hash = column_bytes(row[2])
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
            leaf_hash=stored_hash,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise LedgerTamperedError(
            f"entry {seq} cannot be read", "run `ceremony verify audit` on an audit pack"
        ) from e

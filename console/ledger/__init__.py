"""The ledger: canonical entries, RFC 9162 Merkle tree, signed checkpoints, audit packs.

Everything here except the SQLite store is pure Python + `cryptography`, so the offline audit-pack
verifier (`console.ledger.pack`) can be imported without SQLite tooling, the HSM layer or any UI
library. `Ledger`, `EntryFilter` and `export_audit_pack` are therefore loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from console.ledger.checkpoint import (
    Checkpoint,
    NoteVerifier,
    checkpoint_body,
    cosign_note,
    parse_checkpoint_body,
    parse_verifier_key,
    sign_note,
    verifier_key,
    verify_note,
)
from console.ledger.display import escape_for_display
from console.ledger.entry import MAX_ENTRY_BYTES, Entry, parse_entry
from console.ledger.merkle import verify_consistency, verify_inclusion
from console.ledger.pack import AuditReport, verify_audit_pack
from console.ledger.trust import Officer, OfficerRegistry, OfficerStatus, Trust

if TYPE_CHECKING:
    from console.ledger.export import export_audit_pack
    from console.ledger.store import CHECKPOINT_TYPE, EntryFilter, Ledger, NewEntry

__all__ = [
    "CHECKPOINT_TYPE",
    "MAX_ENTRY_BYTES",
    "AuditReport",
    "Checkpoint",
    "Entry",
    "EntryFilter",
    "Ledger",
    "NewEntry",
    "NoteVerifier",
    "Officer",
    "OfficerRegistry",
    "OfficerStatus",
    "Trust",
    "checkpoint_body",
    "cosign_note",
    "escape_for_display",
    "export_audit_pack",
    "parse_checkpoint_body",
    "parse_entry",
    "parse_verifier_key",
    "sign_note",
    "verifier_key",
    "verify_audit_pack",
    "verify_consistency",
    "verify_inclusion",
    "verify_note",
]

_LAZY = {
    "Ledger": "console.ledger.store",
    "EntryFilter": "console.ledger.store",
    "NewEntry": "console.ledger.store",
    "CHECKPOINT_TYPE": "console.ledger.store",
    "export_audit_pack": "console.ledger.export",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'console.ledger' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

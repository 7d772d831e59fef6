"""The ledger: canonical entries, RFC 9162 Merkle tree, signed checkpoints, audit packs.

Everything here except the SQLite store is pure Python + `cryptography`, so the offline audit-pack
verifier (`console.ledger.pack`) can be imported without SQLite tooling, the HSM layer or any UI
library. Every public name is loaded from its module on first use (the TUI paints before
`cryptography` or SQLite tooling load).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.lazy import lazy_getattr

if TYPE_CHECKING:
    from console.ledger.browse import (
        EntryFilter,
    )
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
    from console.ledger.display import (
        escape_for_display,
    )
    from console.ledger.entry import (
        MAX_ENTRY_BYTES,
        Entry,
        parse_entry,
    )
    from console.ledger.export import (
        export_audit_pack,
    )
    from console.ledger.merkle import (
        verify_consistency,
        verify_inclusion,
    )
    from console.ledger.pack import (
        AuditReport,
        verify_audit_pack,
    )
    from console.ledger.store import (
        CHECKPOINT_TYPE,
        Ledger,
        NewEntry,
    )
    from console.ledger.trust import (
        Officer,
        OfficerRegistry,
        OfficerStatus,
        Trust,
    )

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

# The module of each public name, imported on first use (PEP 562): the TUI paints before
# `cryptography` loads, and each caller pays only for what it uses.
_MODULE_OF: dict[str, str] = {
    'Checkpoint': 'console.ledger.checkpoint',
    'NoteVerifier': 'console.ledger.checkpoint',
    'checkpoint_body': 'console.ledger.checkpoint',
    'cosign_note': 'console.ledger.checkpoint',
    'parse_checkpoint_body': 'console.ledger.checkpoint',
    'parse_verifier_key': 'console.ledger.checkpoint',
    'sign_note': 'console.ledger.checkpoint',
    'verifier_key': 'console.ledger.checkpoint',
    'verify_note': 'console.ledger.checkpoint',
    'escape_for_display': 'console.ledger.display',
    'MAX_ENTRY_BYTES': 'console.ledger.entry',
    'Entry': 'console.ledger.entry',
    'parse_entry': 'console.ledger.entry',
    'verify_consistency': 'console.ledger.merkle',
    'verify_inclusion': 'console.ledger.merkle',
    'AuditReport': 'console.ledger.pack',
    'verify_audit_pack': 'console.ledger.pack',
    'Officer': 'console.ledger.trust',
    'OfficerRegistry': 'console.ledger.trust',
    'OfficerStatus': 'console.ledger.trust',
    'Trust': 'console.ledger.trust',
    'export_audit_pack': 'console.ledger.export',
    'CHECKPOINT_TYPE': 'console.ledger.store',
    'EntryFilter': 'console.ledger.browse',
    'Ledger': 'console.ledger.store',
    'NewEntry': 'console.ledger.store',
}


__getattr__ = lazy_getattr(__name__, _MODULE_OF, globals())

"""Officers and quorum: cards, signed approvals, spoken digests, and the Shamir PIN gate.

Pure code: no HSM, no SQLite, no files. The caller reads and writes card and sealed-PIN bytes,
passes ledger entries in, and logs in to the HSM only with the PIN that `open_pin` returns.

Every public name is loaded from its module on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.lazy import lazy_getattr

if TYPE_CHECKING:
    from console.names import (
        check_officer_name,
    )
    from console.quorum.approvals import (
        APPROVAL_CONTEXT,
        Approval,
        QuorumStatus,
        Rejected,
        RejectReason,
        approval_message,
        approval_status,
        require_quorum,
        sign_approval,
    )
    from console.quorum.cards import (
        CARD_FORMAT,
        PRODUCTION_SCRYPT_N,
        UNLOCK_FAILED,
        OfficerPublicKeys,
        PassphraseRefusedError,
        UnlockedCard,
        check_passphrase,
        create_card,
        read_card_public,
        unlock_card,
    )
    from console.quorum.pin_gate import (
        PIN_FORMAT,
        SealedPinInfo,
        new_pin,
        open_pin,
        read_sealed_pin,
        seal_pin,
    )
    from console.quorum.words import (
        digest_words,
        grouped_hex,
    )

__all__ = [
    "APPROVAL_CONTEXT",
    "CARD_FORMAT",
    "PIN_FORMAT",
    "PRODUCTION_SCRYPT_N",
    "UNLOCK_FAILED",
    "Approval",
    "OfficerPublicKeys",
    "PassphraseRefusedError",
    "QuorumStatus",
    "RejectReason",
    "Rejected",
    "SealedPinInfo",
    "UnlockedCard",
    "approval_message",
    "approval_status",
    "check_officer_name",
    "check_passphrase",
    "create_card",
    "digest_words",
    "grouped_hex",
    "new_pin",
    "open_pin",
    "read_card_public",
    "read_sealed_pin",
    "require_quorum",
    "seal_pin",
    "sign_approval",
    "unlock_card",
]

# The module of each public name, imported on first use (PEP 562): the TUI paints before
# `cryptography` loads, and each caller pays only for what it uses.
_MODULE_OF: dict[str, str] = {
    'check_officer_name': 'console.names',
    'APPROVAL_CONTEXT': 'console.quorum.approvals',
    'Approval': 'console.quorum.approvals',
    'QuorumStatus': 'console.quorum.approvals',
    'Rejected': 'console.quorum.approvals',
    'RejectReason': 'console.quorum.approvals',
    'approval_message': 'console.quorum.approvals',
    'approval_status': 'console.quorum.approvals',
    'require_quorum': 'console.quorum.approvals',
    'sign_approval': 'console.quorum.approvals',
    'CARD_FORMAT': 'console.quorum.cards',
    'PRODUCTION_SCRYPT_N': 'console.quorum.cards',
    'UNLOCK_FAILED': 'console.quorum.cards',
    'OfficerPublicKeys': 'console.quorum.cards',
    'PassphraseRefusedError': 'console.quorum.cards',
    'UnlockedCard': 'console.quorum.cards',
    'check_passphrase': 'console.quorum.cards',
    'create_card': 'console.quorum.cards',
    'read_card_public': 'console.quorum.cards',
    'unlock_card': 'console.quorum.cards',
    'PIN_FORMAT': 'console.quorum.pin_gate',
    'SealedPinInfo': 'console.quorum.pin_gate',
    'new_pin': 'console.quorum.pin_gate',
    'open_pin': 'console.quorum.pin_gate',
    'read_sealed_pin': 'console.quorum.pin_gate',
    'seal_pin': 'console.quorum.pin_gate',
    'digest_words': 'console.quorum.words',
    'grouped_hex': 'console.quorum.words',
}


__getattr__ = lazy_getattr(__name__, _MODULE_OF, globals())

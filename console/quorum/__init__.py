"""Officers and quorum: cards, signed approvals, spoken digests, and the Shamir PIN gate.

Pure code: no HSM, no SQLite, no files. The caller reads and writes card and sealed-PIN bytes,
passes ledger entries in, and logs in to the HSM only with the PIN that `open_pin` returns.
"""

from console.names import check_officer_name
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
from console.quorum.words import digest_words, grouped_hex

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

"""Officers' approvals of a plan digest, and the quorum count.

This module owns the approval statement (``key-ceremony-approval/v1``) and the rule that decides
whether a plan may run (the officers come from the one registry, `console.ledger.trust`):

    the quorum counts DISTINCT enrolled, unrevoked officers whose Ed25519 signature verifies
    over exactly this plan's digest, made before the plan expires.

`approval_status` returns a `QuorumStatus` value that names, for every approval not counted,
why; `require_quorum` raises `QuorumError` when the status is short. Both are pure: the caller
passes the ledger entries, the approvals and `now`.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cryptography.exceptions import InvalidSignature

from console.b64 import decode as b64url_decode
from console.b64 import encode as b64url_encode
from console.clock import format_time, require_utc
from console.errors import OfficerError, QuorumError
from console.jsontypes import JsonMapping
from console.ledger.trust import OfficerRegistry
from console.names import check_officer_name
from console.quorum.cards import UnlockedCard

APPROVAL_CONTEXT = b"key-ceremony-approval/v1\n"
DIGEST_SIZE = 32
SIGNATURE_SIZE = 64
MAX_OFFICERS = 255
"""Shamir shares are numbered 1..255 in the PIN gate; no quorum class may name more officers."""


def _check_digest(digest: object) -> None:
    if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
        raise QuorumError("plan digest is not 32 bytes", "pass the SHA-256 digest of the plan")


def approval_message(digest: bytes) -> bytes:
    """The exact bytes an officer signs: ``key-ceremony-approval/v1\\n`` + lowercase hex digest."""
    _check_digest(digest)
    return APPROVAL_CONTEXT + digest.hex().encode("ascii")


# --- approvals -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Approval:
    """One officer's approval as recorded, NOT yet verified.

    Fields are kept as the text found in the ledger (`ceremony.approved` data) so that a
    malformed approval can still be reported by `approval_status` instead of stopping the count.
    `approved_at` is the time the ledger recorded it (None when not known).
    """

    officer: str
    digest: str
    signature: str
    approved_at: datetime | None = None

    @classmethod
    def from_dict(cls, data: JsonMapping, *, approved_at: datetime | None = None) -> Approval:
        """Read `{"officer", "digest", "signature"}` (extra keys such as plan_id are ignored).

        Non-text values become empty text, which `approval_status` reports as malformed.
        """

        def text(key: str) -> str:
            value = data.get(key)
            return value if isinstance(value, str) else ""

        return cls(text("officer"), text("digest"), text("signature"), approved_at)

    def to_dict(self) -> dict[str, str]:
        return {"officer": self.officer, "digest": self.digest, "signature": self.signature}


def sign_approval(card: UnlockedCard, digest: bytes, *, now: datetime | None = None) -> Approval:
    """Sign `approval_message(digest)` with the officer's Ed25519 key."""
    signature = card.sign(approval_message(digest))
    approved_at = None if now is None else require_utc(now)
    return Approval(card.name, digest.hex(), b64url_encode(signature), approved_at)


# --- counting ------------------------------------------------------------------------------


class RejectReason(StrEnum):
    """Why an approval did not count (the value is the text shown to officers)."""

    MALFORMED = "malformed approval"
    OTHER_PLAN = "approves another plan"
    UNKNOWN_OFFICER = "unknown officer"
    REVOKED = "officer revoked"
    EXPIRED = "plan expired"
    BAD_SIGNATURE = "signature does not verify"
    DUPLICATE = "duplicate approval"


@dataclass(frozen=True, slots=True)
class Rejected:
    officer: str
    reason: RejectReason


@dataclass(frozen=True, slots=True)
class QuorumStatus:
    """The outcome of counting approvals for one plan digest."""

    digest: bytes
    need: int
    counted: tuple[str, ...]
    rejected: tuple[Rejected, ...]

    @property
    def have(self) -> int:
        return len(self.counted)

    @property
    def met(self) -> bool:
        return self.have >= self.need

    def summary(self) -> str:
        """E.g. "approved by 1 of 2 required officers (bob: signature does not verify)"."""
        text = f"approved by {self.have} of {self.need} required officers"
        if self.rejected:
            reasons = "; ".join(f"{r.officer or '?'}: {r.reason}" for r in self.rejected)
            text += f" ({reasons})"
        return text


def _classify(
    approval: Approval, digest_hex: str, registry: OfficerRegistry, expired: bool,
    expires_at: datetime,
) -> RejectReason | None:
    try:
        check_officer_name(approval.officer)
        signature = b64url_decode(approval.signature)
    except (OfficerError, ValueError):
        return RejectReason.MALFORMED
    if len(signature) != SIGNATURE_SIZE or len(approval.digest) != 2 * DIGEST_SIZE:
        return RejectReason.MALFORMED
    if approval.digest != approval.digest.lower():
        return RejectReason.MALFORMED
    try:
        bytes.fromhex(approval.digest)
    except ValueError:
        return RejectReason.MALFORMED
    if not hmac.compare_digest(approval.digest, digest_hex):
        return RejectReason.OTHER_PLAN
    officer = registry.get(approval.officer)
    if officer is None:
        return RejectReason.UNKNOWN_OFFICER
    if not officer.active:
        return RejectReason.REVOKED
    if expired or (
        approval.approved_at is not None and require_utc(approval.approved_at) >= expires_at
    ):
        return RejectReason.EXPIRED
    try:
        officer.ed25519_key().verify(signature, APPROVAL_CONTEXT + digest_hex.encode("ascii"))
    except InvalidSignature:
        return RejectReason.BAD_SIGNATURE
    return None


def approval_status(
    digest: bytes,
    approvals: Sequence[Approval],
    registry: OfficerRegistry,
    *,
    need: int,
    now: datetime,
    expires_at: datetime,
) -> QuorumStatus:
    """Count the approvals of the plan with `digest`; name the reason for each one not counted.

    The plan is expired from `expires_at` on (an approval recorded at or after it, or any count
    made at or after it, does not count). Approvals are taken in order; the first valid one of
    an officer counts, later ones of the same officer are duplicates.

    Raises:
        QuorumError: `need` < 1, no officer is enrolled, or `digest` is not 32 bytes.
        ClockError: `now` or `expires_at` is naive.
    """
    _check_digest(digest)
    need_obj: object = need
    if isinstance(need_obj, bool) or not isinstance(need_obj, int) or need < 1:
        raise QuorumError(f"a quorum of {need!r} officers is impossible", "need at least 1")
    if not registry.active():
        raise QuorumError(
            "no enrolled officer can approve", "enrol officers first", have=0, need=need
        )
    now = require_utc(now, "now")
    expires_at = require_utc(expires_at, "plan expires_at")
    expired = now >= expires_at
    digest_hex = digest.hex()
    counted: list[str] = []
    rejected: list[Rejected] = []
    for approval in approvals:
        reason = _classify(approval, digest_hex, registry, expired, expires_at)
        if reason is None and approval.officer in counted:
            reason = RejectReason.DUPLICATE
        if reason is None:
            counted.append(approval.officer)
        else:
            rejected.append(Rejected(approval.officer, reason))
    return QuorumStatus(digest, need, tuple(counted), tuple(rejected))


def require_quorum(
    digest: bytes,
    approvals: Sequence[Approval],
    registry: OfficerRegistry,
    *,
    need: int,
    now: datetime,
    expires_at: datetime,
) -> QuorumStatus:
    """Like `approval_status`, but raise unless at least `need` distinct officers approved.

    Raises:
        QuorumError: too few valid approvals (`have`, `need` set; the message names each
            approval not counted and why), or the arguments are impossible.
        ClockError: `now` or `expires_at` is naive.
    """
    status = approval_status(
        digest, approvals, registry, need=need, now=now, expires_at=expires_at
    )
    if not status.met:
        if now >= expires_at:
            hint = f"the plan expired at {format_time(expires_at)}: make a new plan"
        else:
            hint = "collect approvals from more enrolled officers with `ceremony approve`"
        raise QuorumError(status.summary(), hint, have=status.have, need=need)
    return status

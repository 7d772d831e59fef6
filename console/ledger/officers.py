"""Officers as the ledger records them: a pure replay of `officer.enrolled` / `officer.revoked`.

The audit pack and its verifier use this replay, so the pack is self-contained: the officers whose
signatures count are the ones the ledger itself enrolled. Data schemas (docs/architecture.md):
`officer.enrolled` `{"name", "ed25519": b64url raw 32 bytes, "x25519": b64url raw 32 bytes}`;
`officer.revoked` `{"name", "reason"}`. A name may be enrolled again after its revocation (a
new card); enrolling an active name, or revoking one that is not active, is an inconsistent
ledger and is refused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from console.errors import VerificationError
from console.ledger.checkpoint import NoteVerifier, key_id, verifier_key
from console.ledger.entry import Entry

ENROLLED = "officer.enrolled"
REVOKED = "officer.revoked"

__all__ = ["OfficerRecord", "OfficerReplay", "b64url_decode", "b64url_encode", "replay_officers"]


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: object, what: str) -> bytes:
    """Strict unpadded base64url.

    Raises:
        VerificationError: not a string, padded, or not canonical base64url.
    """
    if not isinstance(text, str) or "=" in text:
        raise VerificationError(f"{what} is not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise VerificationError(f"{what} is not base64url") from e
    if b64url_encode(data) != text:
        raise VerificationError(f"{what} is not canonical base64url")
    return data


@dataclass(frozen=True, slots=True)
class OfficerRecord:
    """One officer's current record: public keys and whether they may still sign."""

    name: str
    status: str  # "active" | "revoked"
    ed25519: bytes
    x25519: bytes | None
    enrolled_seq: int
    revoked_seq: int | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.ed25519)

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(self.ed25519)}

    def verifier_key(self) -> str:
        return verifier_key(self.name, self.public_key())

    def note_verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, key_id(self.name, self.public_key()), self.public_key())


class OfficerReplay:
    """Running replay state; feed entries in seq order with `apply`."""

    def __init__(self) -> None:
        self.officers: dict[str, OfficerRecord] = {}
        self._keys: set[bytes] = set()

    def apply(self, entry: Entry) -> None:
        """Raises: VerificationError naming the entry when the ledger is inconsistent."""
        if entry.type == ENROLLED:
            self._enrol(entry)
        elif entry.type == REVOKED:
            self._revoke(entry)

    def active_verifiers(self) -> list[NoteVerifier]:
        return [o.note_verifier() for o in self.officers.values() if o.active]

    def _enrol(self, entry: Entry) -> None:
        data: dict[str, Any] = entry.data
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise VerificationError(f"seq {entry.seq}: officer.enrolled has no name")
        # The same rules as console.quorum.approvals.OfficerRegistry: a name is enrolled once
        # (a replacement card gets a new name) and a key never twice, revoked or not.
        if name in self.officers:
            raise VerificationError(f"seq {entry.seq}: officer {name!r} is enrolled twice")
        ed = b64url_decode(data.get("ed25519"), f"seq {entry.seq}: ed25519 key of {name!r}")
        if len(ed) != 32:
            raise VerificationError(f"seq {entry.seq}: ed25519 key of {name!r} is not 32 bytes")
        x_text = data.get("x25519")
        x = None if x_text is None else b64url_decode(x_text, f"seq {entry.seq}: x25519 key")
        try:
            key_id(name, Ed25519PublicKey.from_public_bytes(ed))
        except ValueError as e:
            raise VerificationError(f"seq {entry.seq}: ed25519 key of {name!r} is invalid") from e
        for key in (ed, x):
            if key is not None and key in self._keys:
                raise VerificationError(
                    f"seq {entry.seq}: officer {name!r} reuses a key already enrolled")
            if key is not None:
                self._keys.add(key)
        self.officers[name] = OfficerRecord(name, "active", ed, x, entry.seq)

    def _revoke(self, entry: Entry) -> None:
        name = entry.data.get("name")
        current = self.officers.get(name) if isinstance(name, str) else None
        if current is None or not current.active:
            raise VerificationError(f"seq {entry.seq}: officer {name!r} revoked but not active")
        self.officers[current.name] = OfficerRecord(
            current.name,
            "revoked",
            current.ed25519,
            current.x25519,
            current.enrolled_seq,
            entry.seq,
        )


def replay_officers(entries: Iterable[Entry]) -> list[OfficerRecord]:
    """Every officer the entries enrol, in enrolment order, with their current status.

    Raises:
        VerificationError: an inconsistent enrolment or revocation (the message names the seq).
    """
    replay = OfficerReplay()
    for entry in entries:
        replay.apply(entry)
    return list(replay.officers.values())

"""Plain values the HSM layer hands to the rest of the console (no PKCS#11 types leak out).

Everything here is a frozen dataclass or an enum; none of it imports python-pkcs11, so the faces,
the ledger and the exports can hold these values without touching the foreign library.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

# The algorithm vocabulary is console.jose's; re-exported here (and by console.hsm) for the
# callers that name it through the HSM layer.
from console.jose import ALGORITHMS, DEFAULT_RSA_BITS, RSA_SIZES, Algorithm

__all__ = [
    "ALGORITHMS",
    "DEFAULT_RSA_BITS",
    "RSA_SIZES",
    "Algorithm",
    "GeneratedKey",
    "HsmObject",
    "KeyAudit",
    "MechanismSupport",
    "PinState",
    "PublicKey",
    "TokenInfo",
]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class PinState(enum.Enum):
    """The user PIN as the token reports it in its flags, in the officer's words."""

    OK = "ok"
    COUNT_LOW = "count low"  # a wrong PIN was entered since the last good login
    FINAL_TRY = "final try"  # one more wrong PIN locks the token
    LOCKED = "locked"
    NOT_INITIALISED = "not initialised"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What the token says about itself (C_GetTokenInfo), read fresh on each call."""

    label: str
    serial: str
    manufacturer: str
    model: str
    flags: tuple[str, ...]  # CKF_ names without the prefix, e.g. "TOKEN_INITIALIZED"
    pin_state: PinState
    slot_id: int


@dataclass(frozen=True, slots=True)
class KeyAudit:
    """Attributes read back from a private key, proving it was born on the token and stays there.

    `private_value_readable` is the outcome of trying to read the private value
    (CKA_PRIVATE_EXPONENT or CKA_VALUE): it must be False (the token answered AttributeSensitive).
    """

    sensitive: bool
    always_sensitive: bool
    extractable: bool
    never_extractable: bool
    local: bool
    private: bool
    token: bool
    sign: bool
    decrypt: bool
    unwrap: bool
    derive: bool
    private_value_readable: bool
    self_test: bool  # a random message signed in the HSM verified in software

    def problems(self) -> tuple[str, ...]:
        """Each failed check in words; empty when the key may be used."""
        wanted = (
            ("sensitive", self.sensitive, True),
            ("always sensitive", self.always_sensitive, True),
            ("extractable", self.extractable, False),
            ("never extractable", self.never_extractable, True),
            ("generated on the token (local)", self.local, True),
            ("private", self.private, True),
            ("stored on the token", self.token, True),
            ("may sign", self.sign, True),
            ("may decrypt", self.decrypt, False),
            ("may unwrap", self.unwrap, False),
            ("may derive", self.derive, False),
            ("private value readable", self.private_value_readable, False),
            ("self-test signature verifies", self.self_test, True),
        )
        return tuple(
            f"{name} is {'true' if got else 'false'} (must be {'true' if want else 'false'})"
            for name, got, want in wanted
            if got is not want
        )


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    """A key pair generated on the token that passed its audit and self-test."""

    label: str
    cka_id: bytes
    alg: Algorithm
    public_key: PublicKey = field(repr=False)
    audit: KeyAudit


@dataclass(frozen=True, slots=True)
class HsmObject:
    """One object on the token, as inventory lists it (public information only)."""

    label: str
    cka_id: bytes
    object_class: str  # "private key", "public key", "secret key", "certificate", "data", ...
    key_type: str | None  # "RSA", "EC", "EC_EDWARDS", ...
    size: str | None  # "3072-bit", "P-256", "P-384", "Ed25519"
    attributes: tuple[tuple[str, bool], ...]  # boolean attributes read, e.g. ("SENSITIVE", True)

    def attribute(self, name: str) -> bool | None:
        return dict(self.attributes).get(name)

    @property
    def unfinished(self) -> bool:
        """A key object whose generation never finished: the token never marked it LOCAL
        (generated on it) and it holds no key material (no curve, no modulus). SoftHSM2's file
        store writes an object's defaults, then its template, then its key in separate writes,
        so a process killed inside C_GenerateKeyPair can leave one; no finished key looks so."""
        return (self.object_class in ("private key", "public key")
                and self.attribute("LOCAL") is not True
                and self.size in (None, "unknown curve", "0-bit"))


@dataclass(frozen=True, slots=True)
class MechanismSupport:
    """Whether the token can make and use keys for one JWS algorithm, and how."""

    alg: Algorithm
    available: bool
    keygen_mechanism: str | None  # e.g. "CKM_EC_KEY_PAIR_GEN"
    sign_mechanism: str | None  # e.g. "CKM_RSA_PKCS_PSS on a host SHA-256 digest"
    missing: tuple[str, ...]  # mechanisms the token does not offer, e.g. ("CKM_EDDSA",)
    note: str  # one sentence for an officer

"""The PIN gate: the HSM user PIN, sealed so that only M officers' cards together can open it.

This module owns the sealed-PIN file format (``key-ceremony-pin/v1``)::

    {"format": "key-ceremony-pin/v1", "id": b64url(16), "created_at": "...Z", "token": str|null,
     "threshold": M,
     "pin": {"nonce": b64url(12), "ciphertext": b64url},
     "shares": [{"officer": "alice", "index": 1, "x25519": b64url(32),
                 "ephemeral": b64url(32), "nonce": b64url(12), "ciphertext": b64url}, ...]}

- The PIN is encrypted with AES-128-GCM under a random 16-byte key K. The additional data is the
  JCS of the header (format, id, created_at, token, threshold, and each recipient's officer name,
  share index and X25519 key), so the PIN cannot be moved to another file or recipient set.
- K is split M-of-N with pycryptodome's Shamir (GF(2^128), 16-byte secrets and shares). Shamir
  has no integrity: bad shares silently give a wrong K, so the PIN's AES-GCM tag is the check.
- Each share is sealed to one officer's X25519 key (ECIES): an ephemeral X25519 key, HKDF-SHA256
  over the shared secret with an info string binding the file id, officer name, share index and
  both public keys, then AES-256-GCM with that same binding as additional data. A share copied
  from another sealed file, or to another officer or index, does not decrypt.

`open_pin` is pure and raises `ShareError` for too few, duplicate, foreign, wrong or tampered
shares, so the caller can only reach `C_Login` with a PIN that passed the AES-GCM check.
PINs, K and shares are never put into messages or reprs.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from console import b64
from console.clock import format_time, parse_time
from console.errors import ClockError, EntryRejectedError, OfficerError, ShareError
from console.jcs import canonicalize, loads_strict
from console.jsontypes import JsonObject
from console.names import check_officer_name
from console.quorum._codec import (
    exact_keys,
    take_bytes,
    take_int,
    take_str,
)
from console.quorum.approvals import MAX_OFFICERS
from console.quorum.cards import UnlockedCard

PIN_FORMAT = "key-ceremony-pin/v1"
KEY_SIZE = 16
MAX_PIN_LENGTH = 255
NEW_PIN_LENGTH = 24
_PIN_ALPHABET = string.ascii_letters + string.digits
_PIN_CONTEXT = b"key-ceremony-pin/v1\n"
_SHARE_CONTEXT = b"key-ceremony-pin-share/v1\n"
_HINT = "bring the cards of enough officers named in the sealed PIN file"


@dataclass(frozen=True, slots=True)
class SealedPinInfo:
    """The public header of a sealed PIN file."""

    id: str
    created_at: datetime
    token: str | None
    threshold: int
    officers: tuple[str, ...]

    def ledger_data(self) -> JsonObject:
        """Data for the `pin.resplit` ledger entry."""
        return {"officers": list(self.officers), "threshold": self.threshold, "sealed_id": self.id}


def new_pin(length: int = NEW_PIN_LENGTH) -> bytes:
    """A random PIN of letters and digits (24 characters: about 143 bits) for C_SetPIN."""
    if not 8 <= length <= MAX_PIN_LENGTH:
        raise ValueError(f"PIN length must be 8 to {MAX_PIN_LENGTH}")
    return "".join(secrets.choice(_PIN_ALPHABET) for _ in range(length)).encode("ascii")


def _recipient_header(officer: str, index: int, x25519: bytes) -> JsonObject:
    return {"officer": officer, "index": index, "x25519": b64.encode(x25519)}


def _pin_aad(header: JsonObject) -> bytes:
    return _PIN_CONTEXT + canonicalize(header)


def _share_binding(
    file_id: str, officer: str, index: int, x25519: bytes, ephemeral: bytes
) -> bytes:
    return _SHARE_CONTEXT + canonicalize({
        "file": file_id, "officer": officer, "index": index,
        "x25519": b64.encode(x25519), "ephemeral": b64.encode(ephemeral),
    })


def _share_key(shared_secret: bytes, binding: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=binding).derive(shared_secret)


def seal_pin(
    pin: bytes,
    recipients: Sequence[tuple[str, X25519PublicKey]],
    threshold: int,
    *,
    now: datetime,
    token: str | None = None,
) -> bytes:
    """Seal `pin` so that any `threshold` of `recipients` open it; return the file's bytes.

    `token` (label or serial) is recorded and authenticated with the PIN, for the caller to check.

    Raises:
        ShareError: no recipients, duplicate names or keys, or an impossible threshold.
        OfficerError: a recipient name is not valid.
        ValueError: `pin` is empty or longer than 255 bytes.
    """
    if not 1 <= len(pin) <= MAX_PIN_LENGTH:
        raise ValueError("PIN must be 1 to 255 bytes")
    n = len(recipients)
    if not 1 <= threshold <= n <= MAX_OFFICERS:
        raise ShareError(
            f"cannot split a PIN {threshold} of {n}", f"use 1 <= M <= N <= {MAX_OFFICERS}",
            have=n, need=threshold,
        )
    names = [check_officer_name(name) for name, _ in recipients]
    keys = [key.public_bytes_raw() for _, key in recipients]
    if len(set(names)) != n or len(set(keys)) != n:
        raise ShareError("the same officer or key is named twice", "name each officer once")
    file_id = b64.encode(os.urandom(16))
    header: JsonObject = {
        "format": PIN_FORMAT,
        "id": file_id,
        "created_at": format_time(now),
        "token": token,
        "threshold": threshold,
        "recipients": [
            _recipient_header(name, i, key)
            for i, (name, key) in enumerate(zip(names, keys, strict=True), 1)
        ],
    }
    k = os.urandom(KEY_SIZE)
    pin_nonce = os.urandom(12)
    pin_ciphertext = AESGCM(k).encrypt(pin_nonce, bytes(pin), _pin_aad(header))
    shares = Shamir.split(threshold, n, k)
    sealed_shares = []
    for (index, share), name, (_, key) in zip(shares, names, recipients, strict=True):
        ephemeral = X25519PrivateKey.generate()
        eph_raw = ephemeral.public_key().public_bytes_raw()
        binding = _share_binding(file_id, name, index, key.public_bytes_raw(), eph_raw)
        nonce = os.urandom(12)
        box = AESGCM(_share_key(ephemeral.exchange(key), binding)).encrypt(nonce, share, binding)
        sealed_shares.append({
            "officer": name, "index": index, "x25519": b64.encode(key.public_bytes_raw()),
            "ephemeral": b64.encode(eph_raw), "nonce": b64.encode(nonce),
            "ciphertext": b64.encode(box),
        })
    body = {key: value for key, value in header.items() if key != "recipients"}
    body["pin"] = {"nonce": b64.encode(pin_nonce), "ciphertext": b64.encode(pin_ciphertext)}
    body["shares"] = sealed_shares
    return canonicalize(body) + b"\n"


@dataclass(frozen=True, slots=True)
class _Parsed:
    info: SealedPinInfo
    header: JsonObject
    pin_nonce: bytes
    pin_ciphertext: bytes
    shares: dict[str, JsonObject]


def _parse_unverified_sealed_pin(sealed: bytes) -> _Parsed:
    """Parse and shape-check a sealed PIN file; nothing in it is authenticated yet.

    Raises:
        ShareError: the file is not a readable v1 sealed PIN.
    """
    try:
        body = exact_keys(
            loads_strict(sealed),
            {"format", "id", "created_at", "token", "threshold", "pin", "shares"},
            "sealed PIN",
        )
        if body["format"] != PIN_FORMAT:
            raise ValueError(f"format is not {PIN_FORMAT}")
        file_id = take_str(body, "id")
        created_at = parse_time(take_str(body, "created_at"), "sealed PIN created_at")
        token = body["token"]
        if token is not None and not isinstance(token, str):
            raise ValueError("token is not text")
        threshold = take_int(body, "threshold")
        pin = exact_keys(body["pin"], {"nonce", "ciphertext"}, "sealed PIN pin")
        raw_shares = body["shares"]
        if not isinstance(raw_shares, list) or not 1 <= len(raw_shares) <= MAX_OFFICERS:
            raise ValueError("shares is not a list of 1 to 255 entries")
        if not 1 <= threshold <= len(raw_shares):
            raise ValueError("threshold is out of range")
        shares: dict[str, JsonObject] = {}
        recipients = []
        for position, raw in enumerate(raw_shares, 1):
            entry = exact_keys(
                raw, {"officer", "index", "x25519", "ephemeral", "nonce", "ciphertext"}, "share"
            )
            name = check_officer_name(entry["officer"])
            if name in shares or take_int(entry, "index") != position:
                raise ValueError("share officers or indexes are not distinct and in order")
            take_bytes(entry, "x25519", 32)
            take_bytes(entry, "ephemeral", 32)
            take_bytes(entry, "nonce", 12)
            take_bytes(entry, "ciphertext", KEY_SIZE + 16)
            shares[name] = entry
            recipients.append(_recipient_header(name, position, take_bytes(entry, "x25519", 32)))
        header = {
            "format": PIN_FORMAT, "id": file_id, "created_at": body["created_at"],
            "token": token, "threshold": threshold, "recipients": recipients,
        }
        return _Parsed(
            SealedPinInfo(file_id, created_at, token, threshold, tuple(shares)),
            header,
            take_bytes(pin, "nonce", 12),
            take_bytes(pin, "ciphertext"),
            shares,
        )
    except (ValueError, EntryRejectedError, ClockError, OfficerError) as e:
        raise ShareError(
            "sealed PIN file is not readable",
            "restore it from the workspace backup, or re-split the PIN with a quorum",
        ) from e


def read_sealed_pin(sealed: bytes) -> SealedPinInfo:
    """The public header of a sealed PIN file (not authenticated: `open_pin` proves it).

    Raises:
        ShareError: the file is not a readable v1 sealed PIN.
    """
    return _parse_unverified_sealed_pin(sealed).info


def _open_share(file_id: str, card: UnlockedCard, entry: JsonObject) -> tuple[int, bytes]:
    index = take_int(entry, "index")
    ephemeral = take_bytes(entry, "ephemeral", 32)
    binding = _share_binding(file_id, card.name, index, card.public.x25519_public, ephemeral)
    try:
        secret = card.x25519_private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        share = AESGCM(_share_key(secret, binding)).decrypt(
            take_bytes(entry, "nonce", 12), take_bytes(entry, "ciphertext"), binding
        )
    except (InvalidTag, ValueError) as e:
        raise ShareError(
            f"{card.name}'s share does not decrypt: it is damaged or belongs to another PIN file",
            "restore the sealed PIN file, or re-split the PIN with a quorum",
        ) from e
    return index, share


def open_pin(sealed: bytes, unlocked: Sequence[UnlockedCard]) -> bytes:
    """Rebuild K from the cards' shares and decrypt the PIN. No HSM is touched.

    Needs at least `threshold` distinct officers among the file's recipients, each with the card
    the PIN was sealed to.

    Raises:
        ShareError: unreadable file; a card given twice, not a recipient, or not the card sealed
            to; too few cards (`have`/`need` set); a share that does not decrypt; or shares that
            do not rebuild the PIN (the AES-GCM tag fails).
    """
    parsed = _parse_unverified_sealed_pin(sealed)
    need = parsed.info.threshold
    chosen: list[UnlockedCard] = []
    for card in unlocked:
        if any(c.name == card.name for c in chosen):
            raise ShareError(f"{card.name}'s card was given twice", _HINT, have=len(chosen),
                             need=need)
        entry = parsed.shares.get(card.name)
        if entry is None:
            raise ShareError(f"{card.name} holds no share of this PIN", _HINT, have=len(chosen),
                             need=need)
        if take_bytes(entry, "x25519", 32) != card.public.x25519_public:
            raise ShareError(
                f"{card.name}'s card is not the card this PIN was sealed to", _HINT,
                have=len(chosen), need=need,
            )
        chosen.append(card)
    if len(chosen) < need:
        raise ShareError(
            f"{len(chosen)} of {need} required officers' cards given", _HINT,
            have=len(chosen), need=need,
        )
    shares = sorted(_open_share(parsed.info.id, c, parsed.shares[c.name]) for c in chosen)
    # pycryptodome wants exactly `need` shares; extra valid shares add nothing.
    k = Shamir.combine(shares[:need])
    try:
        return AESGCM(k).decrypt(parsed.pin_nonce, parsed.pin_ciphertext, _pin_aad(parsed.header))
    except InvalidTag as e:
        raise ShareError(
            "the shares do not rebuild the PIN key (a share or the sealed PIN was altered)",
            "restore the sealed PIN file, or re-split the PIN with a quorum",
            have=0, need=need,
        ) from e

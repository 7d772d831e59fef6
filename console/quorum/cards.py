"""Officer cards: one file per officer holding an Ed25519 signing key and an X25519 key.

This module owns the card file format (``key-ceremony-card/v1``), passphrase rules, and
unlocking. A card is JSON::

    {"format": "key-ceremony-card/v1", "name": "alice", "created_at": "2027-01-15T10:00:00Z",
     "ed25519_public": b64url(32), "x25519_public": b64url(32),
     "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": b64url(16)},
     "cipher": {"name": "AES-256-GCM", "nonce": b64url(12)},
     "private": b64url(AES-GCM ciphertext and tag)}

The private part is the JCS object ``{"ed25519": b64url(PKCS#8 DER), "x25519": b64url(PKCS#8 DER)}``
(keys serialised by `cryptography`), encrypted with AES-256-GCM under a key derived from the
passphrase with scrypt. The additional authenticated data is the JCS bytes of every other field,
so a card whose name, public keys or KDF parameters were edited does not unlock.

Why not ``BestAvailableEncryption``: in cryptography 50 encrypted PKCS#8 is PBES2 with
PBKDF2-HMAC-SHA256 at 2,048 iterations and AES-256-CBC (checked with ``openssl asn1parse``), and the
``encryption_builder()`` that tunes the KDF exists only for OpenSSH (bcrypt KDF, AES-CTR, no tag on
the public part) and PKCS#12. Neither offers scrypt or AES-GCM, so the card uses cryptography's
`Scrypt` and `AESGCM` primitives directly around PKCS#8 bytes.

Cost: scrypt N = 2**17, r = 8, p = 1 (128 MiB, the OWASP minimum for scrypt); one unlock takes
about 0.3 s on the 2-core test machine. Tests pass ``unsafe_kdf_cost_for_tests`` (e.g. 2**10).
Unlocking accepts N from 2**10 to 2**18 as written in the card (a larger N could exhaust memory).

Every unlock failure (wrong passphrase, corrupted or edited file, unsupported parameters) raises
`CardError` with one message, so the error is no oracle.
"""

from __future__ import annotations

import itertools
import os
import string
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from console import b64
from console.clock import format_time, parse_time
from console.errors import (
    CardError,
    ClockError,
    EntryRejectedError,
    OfficerError,
    WeakPassphraseError,
)
from console.jcs import canonicalize, loads_strict
from console.jsontypes import JsonObject
from console.names import check_officer_name, officer_fingerprint
from console.quorum._codec import (
    exact_keys,
    take_bytes,
    take_int,
    take_str,
)

CARD_FORMAT = "key-ceremony-card/v1"
PRODUCTION_SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
MIN_SCRYPT_N = 2**10
MAX_SCRYPT_N = 2**18

MIN_PASSPHRASE_LENGTH = 12
MAX_PASSPHRASE_LENGTH = 1024
MIN_DISTINCT_CHARACTERS = 6
SINGLE_CLASS_MIN_LENGTH = 20
"""A passphrase of one character class only (e.g. all lowercase) must be at least this long."""

UNLOCK_FAILED = "card could not be unlocked with that passphrase"
_UNLOCK_HINT = "check that this is your card and retype the passphrase"

_AAD_CONTEXT = b"key-ceremony-card/v1\n"
_CARD_KEYS = {
    "format", "name", "created_at", "ed25519_public", "x25519_public", "kdf", "cipher", "private",
}


@dataclass(frozen=True, slots=True)
class OfficerPublicKeys:
    """An officer's name and raw public keys (32 bytes each), as enrolled in the ledger."""

    name: str
    ed25519_public: bytes
    x25519_public: bytes

    def __post_init__(self) -> None:
        check_officer_name(self.name)
        keys: tuple[tuple[str, object], ...] = (
            ("Ed25519", self.ed25519_public), ("X25519", self.x25519_public),
        )
        for label, raw in keys:
            if not isinstance(raw, bytes) or len(raw) != 32:
                raise OfficerError(f"{self.name}: {label} public key is not 32 bytes")

    def ed25519_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.ed25519_public)

    def x25519_key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.x25519_public)

    def fingerprint(self) -> bytes:
        """SHA-256 over both public keys: read aloud (`digest_words`) when enrolling the card."""
        return officer_fingerprint(self.ed25519_public, self.x25519_public)

    def enrollment_data(self) -> dict[str, str]:
        """The `officer.enrolled` ledger data for these keys."""
        return {
            "name": self.name,
            "ed25519": b64.encode(self.ed25519_public),
            "x25519": b64.encode(self.x25519_public),
        }


@dataclass(frozen=True, slots=True, eq=False)
class UnlockedCard:
    """A card whose private keys are in memory. The repr shows the name only.

    The constructor proves that the private keys belong to `public`.
    """

    public: OfficerPublicKeys
    ed25519_private: Ed25519PrivateKey = field(repr=False)
    x25519_private: X25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        ed = self.ed25519_private.public_key().public_bytes_raw()
        x = self.x25519_private.public_key().public_bytes_raw()
        if ed != self.public.ed25519_public or x != self.public.x25519_public:
            raise CardError(UNLOCK_FAILED, _UNLOCK_HINT)

    @property
    def name(self) -> str:
        return self.public.name

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature (64 bytes) over `message`."""
        return self.ed25519_private.sign(message)

    def __repr__(self) -> str:
        return f"UnlockedCard(name={self.name!r}, private keys hidden)"


# --- passphrases ---------------------------------------------------------------------------

_COMMON = frozenset((
    "password", "passwd", "passphrase", "secret", "letmein", "welcome", "admin", "administrator",
    "root", "toor", "qwerty", "qwertyuiop", "asdfghjkl", "zxcvbnm", "iloveyou", "trustno",
    "monkey", "dragon", "football", "baseball", "soccer", "sunshine", "princess", "shadow",
    "master", "superman", "batman", "michael", "jennifer", "hunter", "changeme", "default",
    "whatever", "starwars", "pokemon", "computer", "internet", "freedom", "abcdef", "abcdefgh",
    "abcdefghijkl", "correcthorsebatterystaple", "correcthorse", "keyceremony", "ceremony",
    "ceremonyconsole", "keyceremonyconsole", "securitypassword", "mypassword", "passwordpassword",
    "opensesame", "nopassword", "blahblah", "helloworld", "hello", "test", "testing", "testtest",
    "login", "access", "summer", "winter", "autumn", "spring",
))
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "!": "i", "+": "t"})
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz", "01234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
)
_ADJACENT = frozenset(
    pair for seq in _SEQUENCES for i in range(len(seq) - 1)
    for pair in ((seq[i], seq[i + 1]), (seq[i + 1], seq[i]))
)


class PassphraseRefusedError(WeakPassphraseError):
    """A `WeakPassphraseError` that carries the broken rule as `reason` (never the passphrase)."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"passphrase refused: {reason}",
            "choose four or more unrelated words, or a longer phrase only you know",
        )
        self.reason = reason


def _squash(text: str) -> str:
    """Lowercase, undo common digit-for-letter swaps, keep letters and digits only."""
    return "".join(ch for ch in text.lower().translate(_LEET) if ch.isalnum())


def _is_common(passphrase: str) -> bool:
    """True for a listed password, also with digit-for-letter swaps, affixed digits or symbols,
    spaces between words, or repeated ("passwordpassword")."""
    lowered = passphrase.lower()
    core = lowered.strip(string.digits + string.punctuation + string.whitespace)
    candidates = set()
    for form in (lowered, core):
        alnum = "".join(ch for ch in form if ch.isalnum())
        candidates |= {_squash(form), alnum, "".join(ch for ch in alnum if ch.isalpha())}
    for cand in candidates:
        if not cand:
            continue
        if cand in _COMMON:
            return True
        for size in range(1, len(cand) // 2 + 1):
            if len(cand) % size == 0 and cand[:size] * (len(cand) // size) == cand:
                if cand[:size] in _COMMON:
                    return True
                break
    return False


def _longest_sequence(text: str) -> int:
    lowered = text.lower()
    best = run = 1 if lowered else 0
    for a, b in itertools.pairwise(lowered):
        run = run + 1 if (a, b) in _ADJACENT else 1
        best = max(best, run)
    return best


def _weakness(passphrase: str, name: str | None) -> str | None:
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in passphrase):
        return "it contains control or invisible format characters"
    length = len(passphrase)
    if length > MAX_PASSPHRASE_LENGTH:
        return f"it is longer than {MAX_PASSPHRASE_LENGTH} characters"
    if length < MIN_PASSPHRASE_LENGTH:
        return f"it has {length} characters; use at least {MIN_PASSPHRASE_LENGTH}"
    distinct = len(set(passphrase))
    if distinct < MIN_DISTINCT_CHARACTERS:
        return (
            f"it uses only {distinct} different characters; "
            f"use at least {MIN_DISTINCT_CHARACTERS}"
        )
    if _is_common(passphrase):
        return "it is a commonly used password or phrase"
    if name is not None:
        own = _squash(name)
        squashed = _squash(passphrase)
        if len(own) >= 3 and own in squashed:
            rest = len(squashed.replace(own, ""))
            if rest < MIN_PASSPHRASE_LENGTH:
                return "it is built on the officer's name"
    if _longest_sequence(passphrase) * 2 >= length:
        return "it is mostly a keyboard or alphabet sequence"
    classes = {
        "lower" if ch.islower() else "upper" if ch.isupper() else "digit" if ch.isdigit()
        else "other"
        for ch in passphrase
    }
    if len(classes) == 1 and length < SINGLE_CLASS_MIN_LENGTH:
        kind = {"lower": "lowercase letters", "upper": "uppercase letters", "digit": "digits",
                "other": "symbols"}[classes.pop()]
        return (
            f"it uses only {kind}; use {SINGLE_CLASS_MIN_LENGTH} or more characters "
            "or mix in other kinds"
        )
    return None


def check_passphrase(passphrase: str, *, name: str | None = None) -> None:
    """Refuse a weak passphrase for a new card; the error's `reason` says why.

    Rules: 12 to 1024 characters, at least 6 different characters, not a common password (also
    with digits for letters or digits appended), not built on the officer's name, not mostly a
    keyboard or alphabet run, and at least 20 characters when it uses one character class only.

    Raises:
        WeakPassphraseError: the passphrase breaks a rule (the message never shows it).
    """
    reason = _weakness(unicodedata.normalize("NFC", passphrase), name)
    if reason is not None:
        raise PassphraseRefusedError(reason)


# --- the card file -------------------------------------------------------------------------


def _passphrase_bytes(passphrase: str) -> bytes:
    # NFC so that the same passphrase typed on another system derives the same key.
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _derive(passphrase: str, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=SCRYPT_R, p=SCRYPT_P).derive(
        _passphrase_bytes(passphrase)
    )


def _aad(header: JsonObject) -> bytes:
    return _AAD_CONTEXT + canonicalize(header)


def create_card(
    name: str,
    passphrase: str,
    *,
    now: datetime,
    unsafe_kdf_cost_for_tests: int | None = None,
) -> bytes:
    """Make new keys for officer `name` and return the card file's bytes.

    `unsafe_kdf_cost_for_tests` replaces scrypt's N (a power of two, at least 2**10): only for
    tests and throwaway demo cards.

    Raises:
        OfficerError: the name is not valid.
        WeakPassphraseError: the passphrase is too weak.
        ClockError: `now` is naive.
    """
    check_officer_name(name)
    check_passphrase(passphrase, name=name)
    n = PRODUCTION_SCRYPT_N if unsafe_kdf_cost_for_tests is None else unsafe_kdf_cost_for_tests
    if not MIN_SCRYPT_N <= n <= MAX_SCRYPT_N or n & (n - 1):
        raise CardError(f"scrypt cost {n} is not a power of two from 2**10 to 2**18")
    ed = Ed25519PrivateKey.generate()
    x = X25519PrivateKey.generate()
    salt = os.urandom(16)
    nonce = os.urandom(12)
    header: JsonObject = {
        "format": CARD_FORMAT,
        "name": name,
        "created_at": format_time(now),
        "ed25519_public": b64.encode(ed.public_key().public_bytes_raw()),
        "x25519_public": b64.encode(x.public_key().public_bytes_raw()),
        "kdf": {"name": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P,
                "salt": b64.encode(salt)},
        "cipher": {"name": "AES-256-GCM", "nonce": b64.encode(nonce)},
    }
    der = serialization.Encoding.DER
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = canonicalize({
        "ed25519": b64.encode(ed.private_bytes(der, pkcs8, serialization.NoEncryption())),
        "x25519": b64.encode(x.private_bytes(der, pkcs8, serialization.NoEncryption())),
    })
    key = _derive(passphrase, salt, n)
    sealed = AESGCM(key).encrypt(nonce, plain, _aad(header))
    card = {**header, "private": b64.encode(sealed)}
    return canonicalize(card) + b"\n"


@dataclass(frozen=True, slots=True)
class _UnverifiedCard:
    """A card file's fields, well formed but not authenticated (only unlocking proves them)."""

    name: str
    ed25519_public: bytes
    x25519_public: bytes
    scrypt_n: int
    scrypt_r: int
    scrypt_p: int
    salt: bytes
    nonce: bytes
    private: bytes
    header: JsonObject
    """Every member but `private`: the associated data of the private part's encryption."""


def _parse_unverified_card(data: bytes) -> _UnverifiedCard:
    """Parse a card file's JSON and check its shape; the contents are not authenticated yet.

    Raises:
        ValueError, EntryRejectedError, ClockError, OfficerError: the file is not a v1 card.
    """
    card = exact_keys(loads_strict(data), _CARD_KEYS, "card")
    if card["format"] != CARD_FORMAT:
        raise ValueError(f"format is not {CARD_FORMAT}")
    name = check_officer_name(card["name"])
    parse_time(take_str(card, "created_at"), "card created_at")
    ed25519_public = take_bytes(card, "ed25519_public", 32)
    x25519_public = take_bytes(card, "x25519_public", 32)
    kdf = exact_keys(card["kdf"], {"name", "n", "r", "p", "salt"}, "card kdf")
    if kdf["name"] != "scrypt":
        raise ValueError("kdf is not scrypt")
    n, r, p = take_int(kdf, "n"), take_int(kdf, "r"), take_int(kdf, "p")
    salt = take_bytes(kdf, "salt", 16)
    cipher = exact_keys(card["cipher"], {"name", "nonce"}, "card cipher")
    if cipher["name"] != "AES-256-GCM":
        raise ValueError("cipher is not AES-256-GCM")
    nonce = take_bytes(cipher, "nonce", 12)
    private = take_bytes(card, "private")
    return _UnverifiedCard(
        name=name, ed25519_public=ed25519_public, x25519_public=x25519_public, scrypt_n=n,
        scrypt_r=r, scrypt_p=p, salt=salt, nonce=nonce, private=private,
        header={k: v for k, v in card.items() if k != "private"},
    )


def read_card_public(data: bytes) -> OfficerPublicKeys:
    """The officer name and public keys written in a card (no passphrase needed, not verified).

    The keys are what the card claims; enrolment shows their fingerprint so that the officer can
    confirm them, and `unlock_card` proves them.

    Raises:
        CardError: the file is not a readable v1 card.
    """
    try:
        card = _parse_unverified_card(data)
    except (ValueError, EntryRejectedError, ClockError, OfficerError) as e:
        raise CardError(
            "file is not a readable officer card",
            "give the card file made by `ceremony officer enroll`",
        ) from e
    return OfficerPublicKeys(name=card.name, ed25519_public=card.ed25519_public,
                             x25519_public=card.x25519_public)


def unlock_card(data: bytes, passphrase: str) -> UnlockedCard:
    """Decrypt a card's private keys with `passphrase` and prove they match its public keys.

    Raises:
        CardError: with the one message "card could not be unlocked with that passphrase" for a
            wrong passphrase, a corrupted or edited file, or unsupported parameters.
    """
    try:
        card = _parse_unverified_card(data)
        n = card.scrypt_n
        if (not MIN_SCRYPT_N <= n <= MAX_SCRYPT_N or n & (n - 1)
                or card.scrypt_r != SCRYPT_R or card.scrypt_p != SCRYPT_P):
            raise ValueError("unsupported scrypt parameters")
        key = _derive(passphrase, card.salt, n)
        plain = AESGCM(key).decrypt(card.nonce, card.private, _aad(card.header))
        inner = exact_keys(loads_strict(plain), {"ed25519", "x25519"}, "card private part")
        ed = serialization.load_der_private_key(take_bytes(inner, "ed25519"), password=None)
        x = serialization.load_der_private_key(take_bytes(inner, "x25519"), password=None)
        if not isinstance(ed, Ed25519PrivateKey) or not isinstance(x, X25519PrivateKey):
            raise ValueError("wrong key types in card")
        public = OfficerPublicKeys(name=card.name, ed25519_public=card.ed25519_public,
                                   x25519_public=card.x25519_public)
        return UnlockedCard(public=public, ed25519_private=ed, x25519_private=x)
    except (ValueError, TypeError, InvalidTag, EntryRejectedError, ClockError, OfficerError,
            CardError) as e:
        # One message for every failure: the error must not tell a guesser what went wrong.
        raise CardError(UNLOCK_FAILED, _UNLOCK_HINT) from e

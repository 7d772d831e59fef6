"""Checkpoints: C2SP tlog-checkpoint bodies inside C2SP signed notes, signed with Ed25519.

Pure (text and keys in, values or errors out); no storage, no HSM. Formats:

- body (c2sp.org/tlog-checkpoint): `<origin>\\n<tree size>\\n<base64 root>\\n`; the ledger's origin
  is `<org>/ceremony-ledger/<uuid>`. Extension lines are accepted when reading and ignored.
- note (c2sp.org/signed-note): the body, a blank line, then one line per signature,
  `— <key name> <base64(key id || signature)>`. The key id is the first four bytes of
  SHA-256(name || 0x0A || 0x01 || public key); 0x01 is the Ed25519 signature type.
- verifier key: `<name>+<hex key id>+<base64(0x01 || public key)>`.

`verify_note` follows the signed-note rules: signatures by unknown keys are ignored, a bad
signature by a known key rejects the note, a note with no known signature is rejected, at least
16 (here up to 100) signatures are accepted, and every signer the caller requires must be there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from console.errors import VerificationError

ED25519_TYPE = 0x01
MAX_SIGNATURES = 100
"""More than the 16 the spec requires a verifier to accept; a bound against huge notes."""
SIGNATURE_PREFIX = "\u2014 "  # em dash + space

_ORIGIN = re.compile(
    r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/ceremony-ledger/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
_SIZE = re.compile(r"^(?:0|[1-9][0-9]{0,19})$")

__all__ = [
    "Checkpoint",
    "NoteSignature",
    "NoteVerifier",
    "checkpoint_body",
    "cosign_note",
    "is_ledger_origin",
    "key_id",
    "note_signers",
    "open_note",
    "parse_checkpoint_body",
    "parse_note",
    "parse_verifier_key",
    "sign_note",
    "verifier_key",
    "verify_note",
]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A parsed checkpoint body; `signers` names the known keys whose signatures verified."""

    origin: str
    size: int
    root: bytes
    signers: frozenset[str] = frozenset()
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes
    line: str


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """An Ed25519 verifier key of the signed-note format."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @property
    def text(self) -> str:
        return verifier_key(self.name, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def is_ledger_origin(origin: str) -> bool:
    """Whether `origin` has the ledger's form `<org>/ceremony-ledger/<uuid>`."""
    return bool(_ORIGIN.match(origin))


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() or _is_control(ch) for ch in name):
        raise VerificationError(
            f"key name {name!r} is not valid", "a key name is non-empty, without spaces or '+'"
        )


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code < 0xA0


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    _check_key_name(name)
    raw = _raw_public(public_key)
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_TYPE]) + raw).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    raw = _raw_public(public_key)
    encoded = base64.b64encode(bytes([ED25519_TYPE]) + raw).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def _b64decode(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise VerificationError(f"{what} is not valid base64") from e
    if base64.b64encode(data).decode() != text:
        raise VerificationError(f"{what} is not canonical base64")
    return data


def parse_verifier_key(text: str) -> NoteVerifier:
    """Parse `<name>+<hex key id>+<base64(0x01 || key)>`.

    Raises:
        VerificationError: malformed, not Ed25519, or a key id that does not match the key.
    """
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise VerificationError("verifier key is not name+keyid+key")
    name, hex_id, encoded = parts
    _check_key_name(name)
    if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
        raise VerificationError(f"verifier key id {hex_id!r} is not 8 lower-case hex digits")
    blob = _b64decode(encoded, "verifier key")
    if len(blob) != 33 or blob[0] != ED25519_TYPE:
        raise VerificationError("verifier key is not an Ed25519 (type 0x01) key")
    public_key = Ed25519PublicKey.from_public_bytes(blob[1:])
    if key_id(name, public_key).hex() != hex_id:
        raise VerificationError(f"verifier key id {hex_id} does not match the key of {name!r}")
    return NoteVerifier(name, bytes.fromhex(hex_id), public_key)


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The tlog-checkpoint body for a tree."""
    if not origin or any(_is_control(c) or c.isspace() for c in origin):
        raise VerificationError(f"origin {origin!r} is not a single printable word")
    if isinstance(size, bool) or size < 0:
        raise VerificationError(f"tree size {size!r} is not a non-negative integer")
    if len(root) != 32:
        raise VerificationError("root hash is not 32 bytes")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint_body(body: str) -> Checkpoint:
    """Parse a tlog-checkpoint body (unsigned).

    Raises:
        VerificationError: missing lines, a bad size or root, or an empty line.
    """
    _check_text(body, "checkpoint body")
    if not body.endswith("\n"):
        raise VerificationError("checkpoint body does not end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationError("checkpoint body needs origin, size and root lines")
    if any(not line for line in lines):
        raise VerificationError("checkpoint body has an empty line")
    origin, size_text, root_text = lines[:3]
    if not _SIZE.match(size_text):
        raise VerificationError(f"checkpoint tree size {size_text!r} is not a decimal number")
    size = int(size_text)
    if size >= 1 << 64:
        raise VerificationError("checkpoint tree size is out of range")
    root = _b64decode(root_text, "checkpoint root hash")
    if len(root) != 32:
        raise VerificationError("checkpoint root hash is not 32 bytes")
    return Checkpoint(origin, size, root, extensions=tuple(lines[3:]))


def _check_text(text: str, what: str) -> None:
    if not isinstance(text, str):
        raise VerificationError(f"{what} is not text")
    for ch in text:
        if ch != "\n" and _is_control(ch):
            raise VerificationError(f"{what} holds control character U+{ord(ch):04X}")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise VerificationError(f"{what} is not valid UTF-8")


def parse_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signature lines, checking only the structure.

    Raises:
        VerificationError: control characters, no final newline, no blank line before the
            signatures, a malformed signature line, no signatures, or too many.
    """
    _check_text(note, "signed note")
    if not note.endswith("\n"):
        raise VerificationError("signed note does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationError("signed note has no blank line before its signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block:
        raise VerificationError("signed note has no signatures")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(f"signed note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise VerificationError(f"signature line {line[:40]!r} does not start with '— '")
        rest = line[len(SIGNATURE_PREFIX) :]
        name, sep, encoded = rest.partition(" ")
        if not sep or " " in encoded:
            raise VerificationError("signature line is not '— <name> <base64>'")
        _check_key_name(name)
        blob = _b64decode(encoded, f"signature by {name!r}")
        if len(blob) < 5:
            raise VerificationError(f"signature by {name!r} is too short")
        signatures.append(NoteSignature(name, blob[:4], blob[4:], line))
    return text, signatures


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """A signed note of `body` with one signature."""
    _check_text(body, "note text")
    if not body.endswith("\n") or "\n\n" in body or body.startswith("\n"):
        raise VerificationError("note text must be non-empty lines, each ending with a newline")
    return body + "\n" + _signature_line(body, name, private_key) + "\n"


def cosign_note(note: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Add a signature to an existing note (a cosignature); refuses a key that already signed."""
    text, signatures = parse_note(note)
    kid = key_id(name, private_key.public_key())
    if any(s.name == name and s.key_id == kid for s in signatures):
        raise VerificationError(f"{name!r} has already signed this note")
    return note + _signature_line(text, name, private_key) + "\n"


def _signature_line(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    kid = key_id(name, private_key.public_key())
    signature = private_key.sign(text.encode("utf-8"))
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(kid + signature).decode()}"


def note_signers(note: str, verifiers: Iterable[NoteVerifier]) -> tuple[str, frozenset[str]]:
    """A note's text and the names of the known keys that signed it (possibly none).

    Raises:
        VerificationError: no verifier given; a malformed note; a known key's signature that
            does not verify.
    """
    known = {(v.name, v.key_id): v for v in verifiers}
    if not known:
        raise VerificationError("no verifier keys given", "name the officers' keys to trust")
    text, signatures = parse_note(note)
    message = text.encode("utf-8")
    signers: set[str] = set()
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue  # signed-note: signatures by unknown keys are ignored
        if len(sig.signature) != 64 or not verifier.verify(message, sig.signature):
            raise VerificationError(f"checkpoint signature by {sig.name!r} does not verify")
        signers.add(sig.name)
    return text, frozenset(signers)


def open_note(
    note: str,
    verifiers: Iterable[NoteVerifier],
    *,
    required: set[str] | frozenset[str] = frozenset(),
) -> tuple[str, frozenset[str]]:
    """Verify any signed note; return its text and the names of the known keys that signed it.

    Raises:
        VerificationError: no verifier given; a malformed note; a known key's signature that
            does not verify; no signature by a known key; a required signer missing.
    """
    text, signers = note_signers(note, verifiers)
    if not signers:
        raise VerificationError(
            "checkpoint is not signed by any known key", "check the officers' verifier keys"
        )
    missing = sorted(set(required) - signers)
    if missing:
        raise VerificationError(f"checkpoint is not signed by {', '.join(missing)}")
    return text, frozenset(signers)


def verify_note(
    note: str,
    verifiers: Iterable[NoteVerifier],
    *,
    required: set[str] | frozenset[str] = frozenset(),
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint note and return its parsed body.

    Raises:
        VerificationError: as `open_note`; also a malformed checkpoint body or an origin other
            than `origin`.
    """
    text, signers = open_note(note, verifiers, required=required)
    body = parse_checkpoint_body(text)
    if origin is not None and body.origin != origin:
        raise VerificationError(f"checkpoint origin {body.origin!r} is not {origin!r}")
    return Checkpoint(body.origin, body.size, body.root, signers, body.extensions)

"""The audit pack's files and their formats (the pack itself is described in
`console.ledger.pack`): names, consistency-proof text files, and `officers.json`.

Shared by the writer (`console.ledger.export`) and the offline verifier (`console.ledger.pack`).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from console import b64, jcs
from console.errors import VerificationError
from console.ledger.trust import OfficerRegistry

PACK_FORMAT = 1
PROOF_HEADER = "ceremony-ledger/consistency-proof/v1"
CHECKPOINT_TYPE = "checkpoint.signed"
ENTRIES = "entries.jsonl"
PENDING = "pending.jsonl"
CHECKPOINT = "checkpoint"
OFFICERS = "officers.json"
MANIFEST = "MANIFEST.sha256"
PROOFS = "proofs"
PROOF_NAME = re.compile(r"^consistency-(0|[1-9][0-9]*)-(0|[1-9][0-9]*)\.txt$")

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_TYPE",
    "ENTRIES",
    "MANIFEST",
    "OFFICERS",
    "PACK_FORMAT",
    "PENDING",
    "PROOFS",
    "ConsistencyProofFile",
    "format_consistency_proof",
    "officers_document",
    "parse_consistency_proof",
    "proof_file_name",
]


@dataclass(frozen=True, slots=True)
class ConsistencyProofFile:
    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    proof: tuple[bytes, ...]


def proof_file_name(old: int, new: int) -> str:
    return f"consistency-{old}-{new}.txt"


def format_consistency_proof(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> str:
    lines = [PROOF_HEADER, str(old), str(new), _b64(old_root), _b64(new_root)]
    lines += [_b64(h) for h in proof]
    return "\n".join(lines) + "\n"


def parse_consistency_proof(text: str) -> ConsistencyProofFile:
    """Raises: VerificationError when the text is not a v1 consistency proof."""
    if not text.endswith("\n"):
        raise VerificationError("proof does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 5 or lines[0] != PROOF_HEADER:
        raise VerificationError(f"proof does not start with {PROOF_HEADER!r} and sizes/roots")
    sizes = []
    for line in lines[1:3]:
        if not re.fullmatch(r"0|[1-9][0-9]{0,19}", line):
            raise VerificationError(f"proof size {line!r} is not a decimal number")
        sizes.append(int(line))
    hashes = [_b64decode(line, f"proof line {i + 4}") for i, line in enumerate(lines[3:])]
    return ConsistencyProofFile(sizes[0], sizes[1], hashes[0], hashes[1], tuple(hashes[2:]))


def officers_document(origin: str, officers: OfficerRegistry) -> bytes:
    """The exact bytes of officers.json for these officers (JCS, then a newline)."""
    doc: dict[str, Any] = {
        "v": PACK_FORMAT,
        "origin": origin,
        "officers": [
            {
                "name": o.name,
                "status": o.status,
                "ed25519": o.jwk(),
                "verifier_key": o.verifier_key(),
                "x25519": b64.encode(o.x25519),
                "enrolled_seq": o.enrolled_seq,
                "revoked_seq": o.revoked_seq,
            }
            for o in officers.officers
        ],
    }
    return jcs.canonicalize(doc) + b"\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64decode(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise VerificationError(f"{what} is not base64") from e
    if base64.b64encode(data).decode() != text or len(data) != 32:
        raise VerificationError(f"{what} is not a canonical base64 SHA-256 hash")
    return data

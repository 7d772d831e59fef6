"""Names people choose and how officers recognise each other: the one rule for officer names,
and the one fingerprint of an officer's public keys.

An officer's name appears in signed-note key names, ledger entries, file names and prompts, so it
is short and plain: 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit (no
spaces, no '+', no control characters). ceremony.toml, cards, the ledger and approvals all use
this rule.
"""

from __future__ import annotations

import hashlib
import re

from console.errors import OfficerError

OFFICER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_FINGERPRINT_CONTEXT = b"key-ceremony-officer/v1\n"
OFFICER_NAME_RULE = "use 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_officer_name(name: object) -> str:
    """Return `name` if it is a valid officer name.

    Raises:
        OfficerError: the name is not valid (the message shows at most 40 characters of it).
    """
    if not isinstance(name, str) or not OFFICER_NAME.fullmatch(name):
        shown = repr(name[:40]) + ("…" if len(name) > 40 else "") if isinstance(name, str) \
            else type(name).__name__
        raise OfficerError(f"officer name {shown} is not valid", OFFICER_NAME_RULE)
    return name


__all__ = ["OFFICER_NAME", "OFFICER_NAME_RULE", "check_officer_name"]


def officer_fingerprint(ed25519_public: bytes, x25519_public: bytes) -> bytes:
    """SHA-256 over an officer's two raw public keys: the value read aloud (`digest_words`) when
    a card is enrolled and shown in the officer list, so both must come from here."""
    return hashlib.sha256(_FINGERPRINT_CONTEXT + ed25519_public + x25519_public).digest()

"""The one base64url codec: unpadded, strict, canonical (RFC 4648 section 5, as JOSE uses it).

Every binary value the console writes as text in a JOSE object, an officer card, an approval or a
sealed PIN file goes through `encode`; every such value read back goes through `decode`. Decoding
accepts exactly one spelling per byte string, the one `encode` produces: padding, whitespace,
characters outside `A-Z a-z 0-9 - _`, an impossible length and non-zero unused bits in the last
character are all refused. So a signed or hashed document cannot be re-spelled into a second
document that decodes to the same bytes (the malleability RFC 7515 section 2 and RFC 8725 warn
about).

Errors: `decode` raises `Base64urlError`, a `ValueError` subclass and deliberately *not* a
`ConsoleError`. The codec does not know which field it is reading, so its message ("not unpadded
base64url") is no message for an officer: each caller at a trust boundary wraps it, naming the
field, into its own domain error (`VerificationError`, `CardError`, `JwkProblem` -> `ExportError`,
...), with `raise ... from e`. Being a `ValueError`, it is also caught by the parsers that already
turn any malformed value into one error (the quorum formats).

Imports only the standard library.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

__all__ = ["Base64urlError", "decode", "encode"]

# The alphabet, whole-string. `fullmatch` rather than `^...$`: `$` also matches before a final
# newline, which would let "abcd\n" through to the decoder.
_ALPHABET: Final = re.compile(r"[A-Za-z0-9_-]*")


class Base64urlError(ValueError):
    """A text is not the canonical unpadded base64url spelling of any byte string.

    Its message is a predicate, so that a caller can name the field: f"{field} is {error}"
    reads "signature is not canonical base64url (non-zero unused bits)".
    """


def encode(data: bytes) -> str:
    """Unpadded base64url of `data` (ASCII text, empty for empty input)."""
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode("ascii")


def decode(text: object) -> bytes:
    """The bytes whose `encode` is exactly `text`.

    Takes `object` because callers pass values straight out of parsed JSON or TOML.

    Raises:
        Base64urlError: `text` is not a str, has padding, whitespace or characters outside the
            base64url alphabet, has a length no encoding produces (4k + 1), or is not canonical
            (non-zero unused bits in its last character).
    """
    if not isinstance(text, str):
        raise Base64urlError(f"not text but {type(text).__name__}")
    if not _ALPHABET.fullmatch(text):
        raise Base64urlError("not unpadded base64url (padding, whitespace or a foreign character)")
    if len(text) % 4 == 1:
        raise Base64urlError("not base64url (no encoding has this length)")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:  # unreachable after the checks above; defensive
        raise Base64urlError("not base64url") from e
    if encode(raw) != text:
        # Non-zero unused bits in the last character: another string decodes to the same bytes.
        raise Base64urlError("not canonical base64url (non-zero unused bits)")
    return raw

"""Small, strict encoders shared by the quorum modules (private).

Base64url without padding (RFC 4648 §5, as JOSE uses it) is the one binary-to-text form in the
card, approval and sealed-PIN formats. Decoding is strict: padding, whitespace, characters outside
the alphabet and non-canonical trailing bits are refused, so one value has exactly one spelling.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object) -> bytes:
    """Decode unpadded base64url; raise ValueError on anything but its one canonical spelling."""
    if not isinstance(text, str) or not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(raw) != text:
        raise ValueError("non-canonical base64url")
    return raw


def take_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} is missing or not text")
    return value


def take_int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key!r} is missing or not an integer")
    return value


def take_bytes(obj: Mapping[str, Any], key: str, length: int | None = None) -> bytes:
    raw = b64url_decode(obj.get(key))
    if length is not None and len(raw) != length:
        raise ValueError(f"{key!r} is not {length} bytes")
    return raw


def exact_keys(obj: object, keys: set[str], what: str) -> dict[str, Any]:
    """Return `obj` as a dict if it is an object with exactly `keys`; raise ValueError otherwise."""
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not a JSON object")
    if set(obj) != keys:
        extra = sorted(set(obj) - keys)
        missing = sorted(keys - set(obj))
        raise ValueError(f"{what}: unknown keys {extra}, missing keys {missing}")
    return obj

"""Small, strict field readers shared by the quorum modules (private).

Base64url without padding (RFC 4648 §5, as JOSE uses it) is the one binary-to-text form in the
card, approval and sealed-PIN formats; the codec is `console.b64` (strict: padding, whitespace,
characters outside the alphabet and non-canonical trailing bits are refused, so one value has
exactly one spelling). Every reader here raises ValueError, which each format's parser turns
into its one error (CardError, ShareError, a rejected approval).
"""

from __future__ import annotations

from console import b64
from console.jsontypes import JsonMapping, JsonObject

b64url_encode = b64.encode
b64url_decode = b64.decode
"""The quorum formats' names for the one codec (`console.b64`)."""


def take_str(obj: JsonMapping, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} is missing or not text")
    return value


def take_int(obj: JsonMapping, key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key!r} is missing or not an integer")
    return value


def take_bytes(obj: JsonMapping, key: str, length: int | None = None) -> bytes:
    try:
        raw = b64.decode(obj.get(key))
    except b64.Base64urlError as e:
        raise ValueError(f"{key!r} is {e}") from e
    if length is not None and len(raw) != length:
        raise ValueError(f"{key!r} is not {length} bytes")
    return raw


def exact_keys(obj: object, keys: set[str], what: str) -> JsonObject:
    """Return `obj` as a dict if it is an object with exactly `keys`; raise ValueError otherwise."""
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not a JSON object")
    if set(obj) != keys:
        extra = sorted(set(obj) - keys)
        missing = sorted(keys - set(obj))
        raise ValueError(f"{what}: unknown keys {extra}, missing keys {missing}")
    return obj

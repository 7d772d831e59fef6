"""RFC 8785 JSON Canonicalization Scheme: the one function that turns values into signed bytes.

Ledger entries, plans and approvals are hashed and signed as their JCS bytes. Those bytes are
stored and hashed as they are; nothing re-serialises them. The console's own formats use integers
only, so `canonicalize` refuses floats unless the caller asks for RFC 8785's ECMAScript number
form (`allow_floats=True`, used by the third-party vectors and by nobody else).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from json.encoder import encode_basestring as _encode_basestring
from typing import NoReturn

from console.errors import EntryRejectedError
from console.jsontypes import JsonObject

MAX_DEPTH = 32
"""Deepest nesting accepted; deeper values are refused rather than recursed into."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def canonicalize(value: object, *, allow_floats: bool = False) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of `value`.

    Raises:
        EntryRejectedError: a float (unless allowed), NaN or infinity, a non-string key, a lone
            surrogate, a value of an unsupported type, or nesting deeper than `MAX_DEPTH`.
    """
    if not allow_floats and _plain(value, 0):
        try:
            return _dumps(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate, which the reference writer refuses with its reason
    parts: list[str] = []
    _write(value, parts, 0, allow_floats)
    return "".join(parts).encode("utf-8")


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                          check_circular=False, allow_nan=False).encode
"""The standard library's C encoder, set up to write RFC 8785's form for the values `_plain`
accepts: the same string escaper as `_string`, integers as `str(int)`, keys sorted by code point,
which is UTF-16 order for ASCII keys (any other key goes the long way)."""


def _plain(value: object, depth: int) -> bool:
    """True when `value` holds only dicts with ASCII str keys, lists, tuples, str, int, bool and
    None, no deeper than `MAX_DEPTH`: what `_dumps` writes exactly as `_write` would. Anything
    else (floats, other mappings or sequences, other keys, too deep) is left to `_write`, which
    writes it or refuses it with its reason."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if depth >= MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return kind is dict and all(type(key) is str and key.isascii() and _plain(item, depth + 1)
                                    for key, item in value.items())
    if isinstance(value, list | tuple):
        return (kind is list or kind is tuple) and all(_plain(item, depth + 1)
                                                       for item in value)
    return False


def loads_strict(data: bytes | str) -> object:
    """Parse JSON, refusing duplicate keys, NaN/Infinity literals and floats.

    Raises:
        EntryRejectedError: the text is not strict JSON of the kind the console writes.
    """

    def pairs(items: list[tuple[str, object]]) -> JsonObject:
        out: JsonObject = {}
        for key, val in items:
            if key in out:
                raise EntryRejectedError(f"duplicate key {key!r} in JSON")
            out[key] = val
        return out

    def no_constant(name: str) -> NoReturn:
        raise EntryRejectedError(f"{name} is not allowed in JSON")

    def no_float(text: str) -> NoReturn:
        raise EntryRejectedError(f"number {text} is not an integer")

    try:
        return json.loads(
            data, object_pairs_hook=pairs, parse_constant=no_constant, parse_float=no_float
        )
    except (ValueError, RecursionError) as e:
        if isinstance(e, EntryRejectedError):
            raise
        raise EntryRejectedError(f"not valid JSON: {e}") from e


def _write(value: object, parts: list[str], depth: int, allow_floats: bool) -> None:
    if depth > MAX_DEPTH:
        raise EntryRejectedError(f"value nested deeper than {MAX_DEPTH} levels")
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(str(int(value)))
    elif isinstance(value, float):
        if not allow_floats:
            raise EntryRejectedError("floats are not allowed: use integers")
        parts.append(_es6_number(value))
    elif isinstance(value, str):
        parts.append(_string(value))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise EntryRejectedError(f"object key {key!r} is not a string")
        # RFC 8785 §3.2.3: sort by UTF-16 code units, not code points.
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        parts.append("{")
        for i, key in enumerate(keys):
            if i:
                parts.append(",")
            parts.append(_string(key))
            parts.append(":")
            _write(value[key], parts, depth + 1, allow_floats)
        parts.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(",")
            _write(item, parts, depth + 1, allow_floats)
        parts.append("]")
    else:
        raise EntryRejectedError(f"type {type(value).__name__} cannot be stored as JSON")


def _string(text: str) -> str:
    # The standard library's C escaper writes exactly RFC 8785's form: `"` and `\\` escaped,
    # \b \f \n \r \t short, other controls as lower-case \u00xx, everything else raw.
    if _SURROGATE.search(text):
        raise EntryRejectedError("text holds a lone surrogate (not valid Unicode)")
    escaped: str = _encode_basestring(text)
    return escaped


def _es6_number(x: float) -> str:
    """ECMAScript Number.prototype.toString, as RFC 8785 §3.2.2.3 requires."""
    if math.isnan(x) or math.isinf(x):
        raise EntryRejectedError("NaN and infinity are not allowed in JSON")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr gives the shortest round-trip digits, as ECMAScript does; only the layout differs.
    _, digit_tuple, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    n = len(digits) + exponent  # the decimal point sits after `n` digits
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + exp
    return sign + digits[0] + "." + digits[1:] + exp

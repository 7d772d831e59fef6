"""Ledger entries: the one JSON object per event, and its exact canonical bytes.

An entry is `{"v":1,"seq":N,"time":"...Z","type":"...","ceremony":id|null,"actor":"...",
"data":{...}}` encoded with RFC 8785 (`console.jcs.canonicalize`). The bytes are what is stored,
hashed and exported; they are parsed for reading but never re-serialised. `parse_entry` is the
strict reader for bytes of unknown origin (an audit pack line, a database row): the bytes must be
exactly the canonical form of what they parse to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from console import jcs
from console.clock import format_time, require_utc
from console.errors import EntryRejectedError
from console.ledger.merkle import leaf_hash

FORMAT_VERSION = 1
MAX_ENTRY_BYTES = 8 * 1024 * 1024
"""Largest canonical entry. 8 MiB so that any 1 MB of text fits even when every character is a
control character (JCS writes those as six-byte `\\u00XX` escapes)."""

_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
_FIELDS = frozenset({"v", "seq", "time", "type", "ceremony", "actor", "data"})

__all__ = ["FORMAT_VERSION", "MAX_ENTRY_BYTES", "Entry", "encode_entry", "parse_entry"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored entry: its bytes, what they say, and their RFC 9162 leaf hash."""

    seq: int
    raw: bytes = field(repr=False)
    time: datetime
    type: str
    ceremony: str | None
    actor: str
    data: dict[str, Any] = field(repr=False, compare=False)
    leaf_hash: bytes = field(repr=False)


def encode_entry(
    seq: int,
    type: str,
    data: dict[str, Any],
    *,
    time: datetime,
    actor: str,
    ceremony: str | None = None,
) -> bytes:
    """The canonical bytes of a new entry.

    Raises:
        EntryRejectedError: a bad type, actor or ceremony; data that is not an object, holds a
            float, NaN, a non-string key or a lone surrogate, nests too deep, or is too large.
        ClockError: `time` is naive.
    """
    if not _TYPE.match(type):
        raise EntryRejectedError(
            f"entry type {type!r} is not dotted lower-case words", "e.g. key.generated"
        )
    if not actor:
        raise EntryRejectedError("entry actor must be a non-empty string", "e.g. 'console'")
    if ceremony == "":
        raise EntryRejectedError("entry ceremony must be a non-empty string or None")
    if not isinstance(data, dict):  # type: ignore[redundant-expr,unreachable,unused-ignore]
        raise EntryRejectedError("entry data must be a JSON object (a dict)")
    when = format_time(require_utc(time, "entry time"))
    value = {
        "v": FORMAT_VERSION,
        "seq": seq,
        "time": when,
        "type": type,
        "ceremony": ceremony,
        "actor": actor,
        "data": data,
    }
    raw = jcs.canonicalize(value)
    if len(raw) > MAX_ENTRY_BYTES:
        raise EntryRejectedError(
            f"entry is {len(raw)} bytes, more than the {MAX_ENTRY_BYTES} allowed",
            "store large content outside the ledger and record its SHA-256",
        )
    return raw


def parse_entry(raw: bytes, *, expect_seq: int | None = None) -> Entry:
    """Parse stored or exported entry bytes of unknown origin, strictly.

    Raises:
        EntryRejectedError: not strict JSON, not canonical, a missing, extra or ill-typed field,
            a time not in the console's form, or a seq other than `expect_seq`.
    """
    if len(raw) > MAX_ENTRY_BYTES:
        raise EntryRejectedError(f"entry is larger than {MAX_ENTRY_BYTES} bytes")
    value = _loads_fast(raw)
    if value is None:
        value = jcs.loads_strict(raw)  # for the precise reason; raises on anything bad
    if not isinstance(value, dict):
        raise EntryRejectedError("entry is not a JSON object")
    if set(value) != _FIELDS:
        missing = sorted(_FIELDS - set(value))
        extra = sorted(set(value) - _FIELDS)
        raise EntryRejectedError(f"entry fields wrong (missing {missing}, unexpected {extra})")
    if not _is_canonical(value, raw):
        raise EntryRejectedError("entry bytes are not in canonical (RFC 8785) form")
    if value["v"] != FORMAT_VERSION or isinstance(value["v"], bool):
        raise EntryRejectedError(f"entry format version {value['v']!r} is not {FORMAT_VERSION}")
    seq = value["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise EntryRejectedError(f"entry seq {seq!r} is not a non-negative integer")
    if expect_seq is not None and seq != expect_seq:
        raise EntryRejectedError(f"entry seq is {seq}, expected {expect_seq}")
    kind, actor, ceremony, data = value["type"], value["actor"], value["ceremony"], value["data"]
    if not isinstance(kind, str) or not _TYPE.match(kind):
        raise EntryRejectedError(f"entry type {kind!r} is not dotted lower-case words")
    if not isinstance(actor, str) or not actor:
        raise EntryRejectedError("entry actor is not a non-empty string")
    if ceremony is not None and (not isinstance(ceremony, str) or not ceremony):
        raise EntryRejectedError("entry ceremony is not a non-empty string or null")
    if not isinstance(data, dict):
        raise EntryRejectedError("entry data is not an object")
    text = value["time"]
    when = None
    if isinstance(text, str) and _TIME.match(text):
        try:
            when = datetime.fromisoformat(text[:-1] + "+00:00")
        except ValueError:
            when = None
    if when is None:
        raise EntryRejectedError(f"entry time {text!r} is not in the form 2027-01-15T10:04:05Z")
    return Entry(
        seq=seq,
        raw=raw,
        time=when,
        type=kind,
        ceremony=ceremony,
        actor=actor,
        data=data,
        leaf_hash=leaf_hash(raw),
    )


def _is_canonical(value: dict[str, Any], raw: bytes) -> bool:
    """Whether `raw` is exactly `jcs.canonicalize(value)`, with a fast path for big packs.

    For values that hold only integers, strings, booleans, null, lists and objects (all that
    `loads_strict` returns), `json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)` writes the same escapes as RFC 8785 and differs only in key order for
    keys with characters at or above U+E000 (code-point vs UTF-16 order). Such characters need a
    UTF-8 lead byte >= 0xEE, so when no byte of `raw` is that large the C encoder's output is the
    canonical form; otherwise, or when it differs, `jcs.canonicalize` decides.
    """
    if raw and max(raw) < 0xEE:
        try:
            fast = _ENCODER.encode(value)
        except (TypeError, ValueError):
            fast = None
        if fast is not None and fast.encode("utf-8", "surrogatepass") == raw:
            return True
    try:
        return jcs.canonicalize(value) == raw
    except EntryRejectedError:
        return False


class _NotStrict(Exception):
    pass


def _refuse(_: str) -> Any:
    raise _NotStrict


def _loads_fast(raw: bytes) -> Any:
    """Parse with the C scanner, refusing floats and NaN/Infinity; None when the text needs the
    strict reader (invalid, a float, a constant). Duplicate keys collapse here, and are then
    caught by the canonical-form comparison (fewer keys re-serialise to other bytes)."""
    try:
        return _DECODER.decode(raw.decode("utf-8"))
    except (_NotStrict, ValueError, RecursionError):
        return None


_DECODER = json.JSONDecoder(parse_float=_refuse, parse_constant=_refuse)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

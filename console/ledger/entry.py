"""Ledger entries: the one JSON object per event, and its exact canonical bytes.

An entry is `{"v":1,"seq":N,"time":"...Z","type":"...","ceremony":id|null,"actor":"...",
"data":{...}}` encoded with RFC 8785 (`console.jcs.canonicalize`). The bytes are what is stored,
hashed and exported; they are parsed for reading but never re-serialised. `parse_entry` is the
strict reader for bytes of unknown origin (an audit pack line, a database row): the bytes must be
exactly the canonical form of what they parse to.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn, cast

from console import jcs
from console.clock import format_time, require_utc
from console.errors import EntryRejectedError
from console.jsontypes import JsonMapping
from console.ledger.merkle import leaf_hash, range_nodes

FORMAT_VERSION = 1
_Encode = Callable[[object, int], Iterable[str]]
"""The C encoder's call: a value and its indent level in, the text's chunks out."""
MAX_ENTRY_BYTES = 8 * 1024 * 1024
"""Largest canonical entry. 8 MiB so that any 1 MB of text fits even when every character is a
control character (JCS writes those as six-byte `\\u00XX` escapes)."""

_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
_FIELDS = frozenset({"v", "seq", "time", "type", "ceremony", "actor", "data"})
_FIELD_ORDER = tuple(sorted(_FIELDS))

__all__ = ["FORMAT_VERSION", "MAX_ENTRY_BYTES", "Acts", "Entry", "Watch", "encode_entry",
           "parse_entry"]


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
    data: JsonMapping,
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


def _is_canonical(value: object, raw: bytes) -> bool:
    """Whether `raw` is exactly `jcs.canonicalize(value)`, with a fast path for big packs.

    For values that hold only integers, strings, booleans, null, lists and objects (all that
    `loads_strict` returns), `json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)` writes the same escapes as RFC 8785 and differs only in key order for
    keys with characters at or above U+E000 (code-point vs UTF-16 order). Such characters need a
    UTF-8 lead byte >= 0xEE, so when no byte of `raw` is that large the C encoder's output is the
    canonical form; otherwise, or when it differs, `jcs.canonicalize` decides. The C encoder has no
    depth limit, so bytes with enough brackets to nest past `jcs.MAX_DEPTH` also go to
    `jcs.canonicalize` (which refuses them).
    """
    if raw and _trust_encoder(raw):
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


def _refuse(_: str) -> NoReturn:
    raise _NotStrict


def _loads_fast(raw: bytes) -> object:
    """Parse with the C scanner, refusing floats and NaN/Infinity; None when the text needs the
    strict reader (invalid, a float, a constant). Duplicate keys collapse here, and are then
    caught by the canonical-form comparison (fewer keys re-serialise to other bytes)."""
    try:
        return _DECODER.decode(raw.decode("utf-8"))
    except (_NotStrict, ValueError, RecursionError):
        return None


_DECODER = json.JSONDecoder(parse_float=_refuse, parse_constant=_refuse)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_HIGH_BYTE = re.compile(rb"[\xee-\xff]")
_BELOW_EE = bytes(range(0xEE))


def _trust_encoder(raw: bytes) -> bool:
    """Whether the C encoder's output for what `raw` parses to can stand for RFC 8785's: no byte
    that could start a character at or above U+E000, and too few brackets to nest past the depth
    `jcs.canonicalize` refuses (a value at depth MAX_DEPTH + 1 needs MAX_DEPTH + 1 containers)."""
    return _HIGH_BYTE.search(raw) is None and raw.count(b"{") + raw.count(b"[") <= jcs.MAX_DEPTH


Acts = dict[tuple[str, str | None], int]
"""For one run of accepted lines: (type, ceremony) of the watched lines → the seq of the first."""


@dataclass(frozen=True, slots=True)
class Watch:
    """What a caller follows in the lines a scan accepts without it (see `LineScan.acts`): the
    ceremony of every accepted line of `types`; and lines whose text holds one of `markers` are
    never accepted (left to the caller, as a special type), so that the caller reads them."""

    types: frozenset[str]
    markers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LineScan:
    """What `scan_lines` established about a block of entry lines.

    `slow` lists `(index, time_before, line)` for each line the caller must judge with
    `parse_entry` (and its own checks), in order; `time_before` is the time of the line just
    before it when that line was accepted here, else None. `runs[k]` holds the Merkle nodes
    (`merkle.range_nodes`) of the accepted lines before `slow[k]` (after the previous slow
    line); `runs[-1]` those after the last slow line. `last_time` is the time of the block's last
    line when it was accepted here. With a `Watch`, `acts[k]` says which (type, ceremony) the
    accepted lines of run k of the watched types carry, each with the seq of its first line
    (else `acts` is empty).
    """

    count: int
    slow: list[tuple[int, str | None, bytes]]
    runs: list[list[tuple[int, bytes]]]
    last_time: str | None
    acts: list[Acts] = field(default_factory=list)


def scan_lines(
    block: bytes, first_seq: int, special_types: frozenset[str], cuts: frozenset[int],
    watch: Watch | None = None,
) -> LineScan:
    """Accept, fast, the lines of `block` (each ended by a newline) that are plainly valid entries.

    A line is accepted only when `parse_entry(line, expect_seq=first_seq + i)` would accept it,
    its type is not in `special_types`, its seq is not in `cuts`, it holds none of the `watch`'s
    markers, its time is not earlier than
    that of the line before it (well-formed, too). The first line of the block is
    never accepted (the time before it is the caller's). Everything else is left to the caller,
    in order, so the first bad line is reported exactly as the strict reader would report it.
    (When the line before was left to the caller, the caller either failed on it or accepted it
    with the very time compared here.) Lines with a byte >= 0xEE are always left to the caller.

    Canonical form, for a line the strict C scanner parsed whole into the object V:
    - with no backslash and exactly two objects and no array (outside strings): every string
      token is `"` + its value + `"` (no escapes; raw control characters are refused by the
      scanner), which is what RFC 8785 writes; with no whitespace, tabs or `-0` outside strings,
      every other token is too. Outside strings ':' appears once per member, so a count equal to
      7 + len(data) means no duplicate key, hence dict order is text order; sorted top-level and
      data keys (code-point order: UTF-16 order when no character is >= U+E000) complete it.
    - otherwise: the C encoder's output equals the line (see `_is_canonical`).
    """
    raws = block.split(b"\n")
    if raws.pop() != b"":
        raise ValueError("block does not end with a newline")
    n = len(raws)
    try:
        texts = block.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        texts = [_utf8_or_empty(raw) for raw in raws]  # "" never parses: left to the caller
    plain = block.isascii() or not block.translate(None, _BELOW_EE)
    scan = _SCAN_ONCE
    encode = _ENCODE
    sha256 = hashlib.sha256
    max_depth = jcs.MAX_DEPTH
    max_bytes = MAX_ENTRY_BYTES
    good_types: set[str] = set()
    sorted_keys: set[tuple[str, ...]] = set()
    order = _FIELD_ORDER
    fromiso = datetime.fromisoformat
    time_re = _TIME.match
    type_re = _TYPE.match
    valid_time = ""
    before: str | None = None  # time of the previous line when it was accepted
    previous: str | None = None  # time of the previous line when well-formed (accepted or not)
    leaves: list[bytes] = []
    run_start = 0
    slow: list[tuple[int, str | None, bytes]] = []
    runs: list[list[tuple[int, bytes]]] = []
    watched = watch.types if watch is not None else frozenset()
    markers = watch.markers if watch is not None else ()
    acts: list[Acts] = []
    run_acts: Acts = {}
    seq = first_seq - 1
    for i in range(n):
        raw = raws[i]
        seq += 1
        when = kind = ceremony = None
        time_before, previous = previous, None
        text = texts[i]
        try:
            value, end = scan(text, 0) if len(raw) <= max_bytes else (None, 0)
        except (StopIteration, _NotStrict, ValueError, RecursionError):
            value, end = None, 0
        # Every test below must pass for the line to be accepted (`when` set), as in parse_entry.
        if end == len(text) and type(value) is dict and tuple(value) == order:
            when = value["time"]
            if (
                when != valid_time
                and type(when) is str
                and time_re(when)
                and _valid_date(fromiso, when)
            ):
                valid_time = when
            if when == valid_time:
                previous = when
            kind = value["type"]
            if type(kind) is str and kind not in good_types and type_re(kind):
                good_types.add(kind)
            v = value["v"]
            actor = value["actor"]
            ceremony = value["ceremony"]
            data = value["data"]
            if (
                when != valid_time
                or time_before is None
                or when < time_before
                or type(kind) is not str
                or kind not in good_types
                or kind in special_types
                or value["seq"] != seq
                or type(value["seq"]) is not int
                or v != 1
                or type(v) is not int
                or type(actor) is not str
                or not actor
                or not (ceremony is None or (type(ceremony) is str and ceremony))
                or type(data) is not dict
                or seq in cuts
                or not (plain or _HIGH_BYTE.search(raw) is None)
            ):
                when = None
            elif "\\" not in text:
                # Without a backslash every string is `"` + its value + `"`: the parts between
                # quotes alternate outside / inside strings. See `_plain_line_is_canonical`.
                outside = "".join(text.split('"')[::2])
                if outside.count("{") != 2 or "[" in outside:
                    if not _encodes_to(value, raw, text, max_depth, encode):
                        when = None
                elif (
                    " " in outside
                    or "\t" in outside
                    or "\r" in outside
                    or "-0" in outside
                    or outside.count(":") != 7 + len(data)
                    or not _sorted_keys(data, sorted_keys)
                ):
                    when = None
            elif not _encodes_to(value, raw, text, max_depth, encode):
                when = None
            if when is not None and markers and any(m in text for m in markers):
                when = None
        if when is None:
            runs.append(range_nodes(first_seq + run_start, leaves))
            slow.append((i, before, raw))
            leaves = []
            run_start = i + 1
            before = None
            if watch is not None:
                acts.append(run_acts)
                run_acts = {}
        else:
            leaves.append(sha256(b"\x00" + raw).digest())
            before = when
            if kind in watched:
                run_acts.setdefault((kind, ceremony), seq)
    runs.append(range_nodes(first_seq + run_start, leaves))
    if watch is not None:
        acts.append(run_acts)
    return LineScan(n, slow, runs, before, acts)


def _encodes_to(value: object, raw: bytes, text: str, max_depth: int, encode: _Encode) -> bool:
    return raw.count(b"{") + raw.count(b"[") <= max_depth and "".join(encode(value, 0)) == text


def _sorted_keys(data: JsonMapping, known: set[tuple[str, ...]]) -> bool:
    keys = tuple(data)
    if keys in known:
        return True
    if list(keys) != sorted(keys):
        return False
    known.add(keys)
    return True


def _valid_date(fromiso: Callable[[str], datetime], when: str) -> bool:
    try:
        fromiso(when[:-1] + "+00:00")
    except ValueError:
        return False
    return True


def _utf8_or_empty(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _no_default(value: object) -> NoReturn:
    raise TypeError(f"{type(value).__name__} is not JSON")


def _make_encode() -> _Encode:
    """The C encoder object behind `_ENCODER`, made once: `JSONEncoder.encode` builds a new one on
    every call, which costs as much as encoding a small entry. Falls back to `_ENCODER`."""
    encoder_module: Any = json.encoder  # the C parts are private, hence untyped
    make, escape = encoder_module.c_make_encoder, encoder_module.c_encode_basestring
    if make is not None and escape is not None:
        try:
            made: _Encode = make(None, _no_default, escape, None, ":", ",", True, False, False)
            return made
        except TypeError:  # another Python's private signature
            pass
    return lambda value, _level: (_ENCODER.encode(value),)


_ENCODE = _make_encode()
_SCAN_ONCE: Any = cast(Any, _DECODER).scan_once  # the C scanner when built, else Python's

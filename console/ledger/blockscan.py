"""Whole blocks of entry lines checked at once: the fast path of the audit-pack verifier and of
"verify tree".

`scan_lines` (console.ledger.entry) judges a block line by line in Python; a million lines cost
seconds there. `accept_block` establishes the same facts for a whole block with C-level passes
(one regular expression over the block's text, `map` over `operator` getters, `set`s of the few
distinct times, types and key lists), so that no Python bytecode runs per line. When any of its
conditions does not hold, `scan_block` returns what `scan_lines` returns: the reference stays the
judge of every line this path does not prove, and the first bad line is reported exactly as the
strict reader reports it.

What a block must be for this path (else `scan_lines`): valid UTF-8 of bytes `_PLAIN_BYTES`
(no backslash, no control character but the newlines, no byte >= 0xEE); every line a canonical
entry with flat data of at most `_MAX_MEMBERS` members (`_LINE`: no nested object or array),
data's keys strictly increasing, seq consecutive from `first_seq`, valid dates and types, times
never decreasing within the block. Lines whose type is in `special_types` or whose seq is in
`cuts` are still left to the caller (as by `scan_lines`), and so is the first line (the time
before it is the caller's). With a `Watch` (the audit pack's authorization check), the line
pattern also captures each line's ceremony, lines holding one of its markers are left to the
caller, and the accepted lines of its types are summed up per run (`LineScan.acts`) with
C-level passes (the distinct types and ceremonies of a run; tuples per line only when a run
holds several ceremonies).

Why a matching line is one `parse_entry` accepts: `_LINE` is a subset of the JSON grammar
(strings without escapes or control characters, integers, literals, one flat object inside an
object), its fields are exactly the entry's seven in sorted order with the types `parse_entry`
checks, and without a backslash every string is `"` + its value + `"`, which is what RFC 8785
writes when no character needs an escape; integers are in their shortest form and there is no
whitespace. Key order is code-point order, UTF-16 order when no character is >= U+E000 (no byte
>= 0xEE); strictly increasing keys also rule out a duplicate, which a parser would collapse.
Keys are compared with their opening quote and without their closing one: with it, "a!" would
sort before "a" (`!` is below `"`), which is not the keys' order.

Key lists proven in order are remembered (`_KNOWN_KEYS`, a few): a block whose data all has
such keys is matched by `_known_pattern()`, the same lines with those keys written literally and
nothing captured but seq, time and type; any other block by `_line_pattern()`, which captures
the keys. What is remembered changes how fast a block is matched, never which lines are.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from operator import itemgetter, methodcaller

from console.ledger.entry import MAX_ENTRY_BYTES, Acts, LineScan, Watch, _valid_date, scan_lines
from console.ledger.merkle import aligned_nodes

__all__ = ["Accepted", "accept_block", "leaf_hashes", "no_gc", "scan_block"]

_DIGEST = methodcaller("digest")


def leaf_hashes(raws: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 leaf hashes of `raws`, in order (no Python bytecode per leaf)."""
    return list(map(_DIGEST, map(hashlib.sha256, map(b"\x00".__add__, raws))))


@contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic collector paused while a block's values are built: they hold no cycles, and
    its generation counters would otherwise trigger collections every few hundred objects."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Accepted:
    """What `accept_block` established: the block's lines, their leaf hashes and times, and
    which lines (by index) the caller must still judge itself."""

    __slots__ = ("ceremonies", "count", "leaves", "raws", "slow", "times", "types", "watched")

    def __init__(self, raws: list[bytes], leaves: list[bytes], times: list[str],
                 types: list[str], slow: list[int], ceremonies: list[str] | None = None,
                 watched: frozenset[str] = frozenset()) -> None:
        self.count = len(raws)
        self.raws = raws
        self.leaves = leaves
        self.times = times
        self.types = types
        self.slow = slow
        self.ceremonies = ceremonies
        """Each line's ceremony as written (`null` or the quoted id), with a `Watch`."""
        self.watched = watched

    def line_scan(self, first_seq: int) -> LineScan:
        """The `LineScan` `scan_lines` returns for a block it accepts the same lines of."""
        slow: list[tuple[int, str | None, bytes]] = []
        runs: list[list[tuple[int, bytes]]] = []
        acts: list[Acts] = []
        start = 0
        for i in self.slow:
            runs.append(aligned_nodes(first_seq + start, self.leaves[start:i]))
            before = self.times[i - 1] if i > start else None
            slow.append((i, before, self.raws[i]))
            if self.ceremonies is not None:
                acts.append(self._acts(first_seq, start, i))
            start = i + 1
        runs.append(aligned_nodes(first_seq + start, self.leaves[start:]))
        if self.ceremonies is not None:
            acts.append(self._acts(first_seq, start, self.count))
        last = self.times[-1] if start < self.count else None
        return LineScan(self.count, slow, runs, last, acts)

    def _acts(self, first_seq: int, start: int, stop: int) -> Acts:
        """`LineScan.acts` of the accepted lines `start..stop` (a run): the distinct types and
        ceremonies first (C-level passes); with one ceremony, each watched type's first line is
        `list.index`; with several, the first seq of each pair comes from a dict built from the
        back (later lines overwritten by earlier ones)."""
        assert self.ceremonies is not None
        if start >= stop:
            return {}
        types = self.types[start:stop]
        kinds = self.watched.intersection(types)
        if not kinds:
            return {}
        names = self.ceremonies[start:stop]
        distinct = set(names)
        if len(distinct) == 1:
            ceremony = _ceremony(distinct.pop())
            return {(kind, ceremony): first_seq + start + types.index(kind) for kind in kinds}
        pairs = dict(zip(reversed(list(zip(types, names, strict=True))),
                         range(first_seq + stop - 1, first_seq + start - 1, -1), strict=True))
        return {(kind, _ceremony(name)): seq for (kind, name), seq in pairs.items()
                if kind in kinds}


def _ceremony(written: str) -> str | None:
    """A ceremony as `_HEAD` captures it (`null` or a string without escapes) as a value."""
    return None if written == "null" else written[1:-1]


def scan_block(
    block: bytes, first_seq: int, special_types: frozenset[str], cuts: frozenset[int],
    watch: Watch | None = None,
) -> LineScan:
    """`scan_lines(block, ...)`, computed for the whole block at once when it can be (see the
    module docstring); the same lines accepted, the same Merkle nodes (and acts)."""
    with no_gc():
        accepted = accept_block(block, first_seq, special_types, cuts, watch=watch)
        if accepted is None:
            return scan_lines(block, first_seq, special_types, cuts, watch)
        return accepted.line_scan(first_seq)


def accept_block(
    block: bytes, first_seq: int, special_types: frozenset[str], cuts: frozenset[int], *,
    leaves: list[bytes] | None = None, watch: Watch | None = None,
) -> Accepted | None:
    """Every line of `block` (each ended by a newline) proven a valid entry at once, or None.

    Lines whose type is in `special_types`, whose seq is in `cuts`, that hold a marker of
    `watch`, and the first line are in `slow`: valid as far as `parse_entry` goes, but the
    caller's to judge further. `leaves`, when the caller already hashed the lines, are taken as
    theirs. With `watch`, each line's ceremony is kept for `Accepted.line_scan`'s acts.
    """
    # One pass over the bytes: no backslash (so no escape), no control character but the
    # newlines, no byte >= 0xEE (see the module docstring). Strings then need no character class.
    if not block.endswith(b"\n") or block.translate(None, _PLAIN_BYTES):
        return None
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return None
    raws = block.split(b"\n")
    raws.pop()
    n = len(raws)
    if n == 0 or (len(block) > MAX_ENTRY_BYTES and max(map(len, raws)) > MAX_ENTRY_BYTES):
        return None
    # Each match starts at a line's start (`^`) and ends before a newline (`$`); a match running
    # over a newline (a string may hold one) would cover the next line's start, so n matches
    # mean n matches of one whole line each.
    # First with data whose keys are all known lists (nothing captured but seq, time, type),
    # then, when a line has other keys, with each key a group.
    captured = watch is not None
    found = _known_pattern(captured).findall(text)
    general = len(found) != n
    if general:
        found = _line_pattern(captured).findall(text)
        if len(found) != n:
            return None
    # Compared as text: `str` writes the shortest form, so a leading zero never matches.
    if list(map(_SEQ_GROUP, found)) != list(map(str, range(first_seq, first_seq + n))):
        return None
    times = list(map(_TIME_GROUP, found))
    # The distinct times are held to the form, then their distinct dates to the calendar.
    distinct = set(times)
    if times != sorted(times) or not all(map(_TIME_FORM.fullmatch, distinct)):
        return None
    if not all(_valid_day(d) for d in set(map(_DAY, distinct))):
        return None
    # Data's keys strictly increasing (code-point order is UTF-16 order below U+E000), which
    # also rules out a duplicate (a JSON parser would keep one of them: the bytes would not be
    # canonical). The few distinct key lists are checked, each without its unused groups ("":
    # a key's group holds its opening quote, so a key is never ""). The quote in front of every
    # key leaves their order that of the keys; a closing quote would not ("a" > "a!").
    for keys in set(map(_CAPTURED_KEYS_GROUPS if captured else _KEYS_GROUPS, found)) \
            if general else ():
        named = [k for k in keys if k]
        if named != sorted(set(named)):
            return None
        _learn(tuple(named))
    types = list(map(_TYPE_GROUP, found))
    # `_LINE` takes any dotted name; the few distinct ones are held to the strict pattern.
    if not all(map(_TYPE_NAME.fullmatch, set(types))):
        return None
    slow = [0]
    if special_types & set(types[1:]):
        slow += [i for i in range(1, n) if types[i] in special_types]
    slow += [s - first_seq for s in cuts if first_seq < s < first_seq + n]
    if watch is not None and watch.markers:
        slow += _marked(text, watch.markers)
    slow = sorted(set(slow))
    return Accepted(raws, leaf_hashes(raws) if leaves is None else leaves, times, types, slow,
                    list(map(_CEREMONY_GROUP, found)) if watch is not None else None,
                    watch.types if watch is not None else frozenset())


def _marked(text: str, markers: tuple[str, ...]) -> list[int]:
    """The indexes of the lines of `text` that hold one of `markers` (each line ends with a
    newline; the search runs at C speed, lines are counted only where a marker is found)."""
    out: list[int] = []
    for marker in markers:
        line = at = 0
        pos = text.find(marker)
        while pos >= 0:
            line += text.count("\n", at, pos)
            out.append(line)
            at = text.index("\n", pos) + 1
            line += 1
            pos = text.find(marker, at)
    return out


_PLAIN_BYTES = b"\n" + bytes(range(0x20, 0x5C)) + bytes(range(0x5D, 0xEE))
"""The bytes a fast-path block may hold: `translate` deletes them, what is left refuses it."""
_MAX_MEMBERS = 10
"""Most members a flat data object may have on this path (their keys are regex groups)."""
# Possessive (`*+`, `++`): a string's characters never include its closing quote, so giving
# some back could never lead to a match; not keeping them to give back saves time. `[^"]` may
# cross a newline: see `accept_block` on why a match still covers exactly one line.
_STR = r'"[^"]*+"'
_NONEMPTY = r'"[^"]++"'
_INT = r"(?:0|-?[1-9][0-9]{0,17})"
_VALUE = rf"(?:{_STR}|{_INT}|true|false|null)"


def _members(count: int) -> str:
    """Up to `count` members `"key":value`, each key a group: its opening quote and text.

    Empty alternatives (`|)`), not `?`: a `?` is a repeat, inside which the engine saves every
    group's mark at each alternative (of each value), which costs more than the whole match."""
    rest = "".join(rf'(?:,("[^"]*+)":{_VALUE}|)' for _ in range(count - 1))
    return rf'(?:("[^"]*+)":{_VALUE}{rest}|)'


_HEAD = rf'^\{{"actor":{_NONEMPTY},"ceremony":(?:null|{_NONEMPTY}),"data":\{{'
_CAPTURED_HEAD = rf'^\{{"actor":{_NONEMPTY},"ceremony":(null|{_NONEMPTY}),"data":\{{'
"""`_HEAD` with the ceremony a group (the first), for a scan with a `Watch`."""
_TAIL = r'\},"seq":([0-9]++),"time":"([^"]++)","type":"([a-z][a-z0-9_.]*+)","v":1\}$'
_LINE = re.compile(_HEAD + _members(_MAX_MEMBERS) + _TAIL, re.MULTILINE)
"""One canonical entry line with flat data, as RFC 8785 writes it when no string needs an escape
(no `"`, `\\` or control character) and no character is >= U+E000: the seven fields in sorted
order, no whitespace, integers in shortest form (at most 18 digits, far inside what Python
parses), `v` 1. Left to check on the groups: the order of data's keys (the first groups), the
seqs, and the form of the times and types (their few distinct values)."""

_KNOWN_KEYS: dict[tuple[str, ...], None] = {}
"""Key lists (each key with its opening quote) already proven strictly increasing, in the order
they were met: `_line_pattern` matches data with these keys literally, capturing nothing."""
_MAX_KNOWN = 8
_LINES: dict[tuple[tuple[tuple[str, ...], ...], bool], re.Pattern[str]] = {((), False): _LINE}
_KNOWN: dict[tuple[tuple[tuple[str, ...], ...], bool], re.Pattern[str]] = {}


def _learn(keys: tuple[str, ...]) -> None:
    """Remember `keys` for `_line_pattern` (a few lists; only strictly increasing ones)."""
    fresh = keys and keys not in _KNOWN_KEYS and len(_KNOWN_KEYS) < _MAX_KNOWN
    if fresh and list(keys) == sorted(set(keys)):
        _KNOWN_KEYS[keys] = None


def _known_pattern(captured: bool = False) -> re.Pattern[str]:
    """A line whose data is empty or has one of the known key lists, written literally: only
    seq, time and type are groups (a tuple of three per line, not of `_MAX_MEMBERS` + 3), and
    the ceremony first when `captured`."""
    known = tuple(_KNOWN_KEYS)
    pattern = _KNOWN.get((known, captured))
    if pattern is None:
        literal = [",".join(f'{re.escape(key)}":{_VALUE}' for key in keys) for keys in known]
        data = "|".join(["", *literal])
        head = _CAPTURED_HEAD if captured else _HEAD
        pattern = _KNOWN[known, captured] = re.compile(head + f"(?:{data})" + _TAIL,
                                                       re.MULTILINE)
    return pattern


def _line_pattern(captured: bool = False) -> re.Pattern[str]:
    """`_LINE`, with data whose keys are a known list (`_KNOWN_KEYS`) matched first, literally.

    Capturing a key costs a string per line, most of a line's match; data whose keys are known
    to be in order needs none (its key groups stay "", as for no member). A line with other
    keys takes `_LINE`'s alternative, so the lines matched, and the checks left on the groups,
    are the same whatever has been learnt."""
    known = tuple(_KNOWN_KEYS)
    pattern = _LINES.get((known, captured))
    if pattern is None:
        literal = [",".join(f'{re.escape(key)}":{_VALUE}' for key in keys) for keys in known]
        data = "|".join([*literal, _members(_MAX_MEMBERS)])
        head = _CAPTURED_HEAD if captured else _HEAD
        pattern = _LINES[known, captured] = re.compile(head + f"(?:{data})" + _TAIL,
                                                       re.MULTILINE)
    return pattern


_TIME_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z")
"""An entry time's form (`_LINE` takes any string there; the distinct times are held to it)."""
_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
"""An entry type as `parse_entry` takes it (`_LINE` takes more: a repeated group in it would
cost the engine a copy of every group's mark per repetition)."""
_KEYS_GROUPS = itemgetter(slice(0, _MAX_MEMBERS))
_CAPTURED_KEYS_GROUPS = itemgetter(slice(1, _MAX_MEMBERS + 1))
_CEREMONY_GROUP = itemgetter(0)
"""With `_CAPTURED_HEAD`: the ceremony is the first group, the keys' groups follow it."""
_SEQ_GROUP, _TIME_GROUP, _TYPE_GROUP = (itemgetter(i) for i in (-3, -2, -1))
"""The last three groups of `_LINE`, `_line_pattern()` and `_known_pattern()` alike."""
_DAY = itemgetter(slice(0, 10))


def _valid_day(day: str) -> bool:
    """Whether `YYYY-MM-DD` is a date (with `_TIME_FORM`'s bounded time of day: `_valid_date`)."""
    return _valid_date(datetime.fromisoformat, f"{day}T00:00:00Z")

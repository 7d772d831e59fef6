"""The block path (`console.ledger.blockscan.accept_block`) accepts a line only when
`parse_entry` does: key order with keys that are prefixes of one another, empty keys, members
in any order, too many members, control characters, odd type names."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from console import jcs
from console.ledger import blockscan
from console.ledger.blockscan import _MAX_MEMBERS, accept_block, scan_block
from console.ledger.entry import scan_lines
from tests.unit.test_ledger_support import strict_ok

FIRST = jcs.canonicalize({"v": 1, "seq": 0, "time": "2027-01-15T10:00:00Z", "type": "note",
                          "ceremony": None, "actor": "console", "data": {}})
NONE: frozenset[str] = frozenset()


def _line(seq: int, members: list[tuple[str, Any]], kind: str = "note") -> bytes:
    """An entry line whose data holds `members` in the order given (canonical or not)."""
    data = "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{json.dumps(v)}"
                          for k, v in members) + "}"
    return (f'{{"actor":"console","ceremony":null,"data":{data},"seq":{seq},'
            f'"time":"2027-01-15T10:00:00Z","type":"{kind}","v":1}}').encode()


def _check(raw: bytes) -> bool:
    """Whether the block path accepted `raw` (as line 1, after a plain first line); asserts
    it agrees with `parse_entry` and that `scan_block` gives what `scan_lines` gives."""
    block = FIRST + b"\n" + raw + b"\n"
    accepted = accept_block(block, 0, NONE, NONE) is not None
    if accepted:
        assert strict_ok(raw, 1), raw
    assert scan_block(block, 0, NONE, NONE) == scan_lines(block, 0, NONE, NONE)
    return accepted


@pytest.mark.parametrize(
    ("members", "canonical"),
    [
        ([("a", 1), ("a!", 2)], True),
        ([("a!", 1), ("a", 2)], False),  # "a!" sorts first only when the closing quote counts
        ([("a", 1), ("a ", 2)], True),
        ([("a ", 1), ("a", 2)], False),
        ([("", 1), ("a", 2)], True),
        ([("a", 1), ("", 2)], False),
        ([("", 1), ("", 2)], False),
        ([("b", 1), ("a", 2)], False),
        ([("a", 1), ("a", 2)], False),
        ([("é", 1), ("z", 2)], False),  # code-point order: "z" < "é"
        ([("z", 1), ("é", 2)], True),
    ],
)
def test_data_key_order_is_that_of_the_keys(members: list[tuple[str, Any]],
                                            canonical: bool) -> None:
    raw = _line(1, members)
    assert strict_ok(raw, 1) == canonical
    accepted = _check(raw)
    assert accepted == canonical  # these plain lines all take the block path when canonical


def test_more_members_than_the_path_takes_go_line_by_line() -> None:
    members = [(f"k{i:02d}", i) for i in range(_MAX_MEMBERS + 1)]
    raw = _line(1, members)
    assert strict_ok(raw, 1)
    assert not _check(raw)
    assert _check(_line(1, members[:_MAX_MEMBERS]))


@pytest.mark.parametrize(
    "raw",
    [
        _line(1, [("a", "x\x01y")]),  # a raw control character: not JSON
        _line(1, [("a", "x\x7fy")]),  # DEL is allowed raw
        _line(1, [("a\x1f", 1)]),
        _line(1, [("a", 1)], kind="a..b"),
        _line(1, [("a", 1)], kind="a."),
        _line(1, [("a", 1)], kind="a.b_c9.d"),
        _line(1, [("a", "x\\u0041")]),
        _line(1, [("a", "\ue000")]),
    ],
)
def test_odd_lines_agree_with_parse_entry(raw: bytes) -> None:
    _check(raw)


_key = st.text(st.sampled_from(["a", "b", " ", "!", "#", "é", "\x7f", ":", ","]), max_size=3)
_value = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | _key


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_key, _value), max_size=_MAX_MEMBERS + 2))
def test_flat_data_in_any_order_is_accepted_only_when_canonical(
    members: list[tuple[str, Any]]
) -> None:
    raw = _line(1, members)
    accepted = _check(raw)
    short = all(not isinstance(v, int) or abs(v) < 10**18 for _, v in members)  # <= 18 digits
    if strict_ok(raw, 1) and len(members) <= _MAX_MEMBERS and short:
        assert accepted, raw


@pytest.mark.parametrize(
    "time",
    ["2027-01-15T10:00:00Z", "2027-01-15T24:00:00Z", "2027-01-15T10:60:00Z",
     "2027-1-15T10:00:00Z", "2027-01-15 10:00:00Z", "2027-02-30T10:00:00Z",
     "2027-01-15T10:00:00+00:00", "2027-01-15T10:00:00.5Z", "x", "2028-02-29T23:59:59Z"],
)
def test_times_agree_with_parse_entry(time: str) -> None:
    raw = _line(1, [("a", 1)]).replace(b"2027-01-15T10:00:00Z", time.encode())
    assert _check(raw) == strict_ok(raw, 1)


@pytest.mark.parametrize("seq", [b"1", b"01", b"1.0", b"-1", b"2", b"1e0", b"+1", b"10"])
def test_seqs_agree_with_parse_entry(seq: bytes) -> None:
    raw = _line(1, [("a", 1)]).replace(b'"seq":1,', b'"seq":' + seq + b",")
    assert _check(raw) == strict_ok(raw, 1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_key, _value), max_size=4))
@example([("b", 1), ("a", 2)])
@example([("a", 1), ("b", 2)])
@example([("a", 1), ("b", 2), ("c", 3)])
def test_learnt_key_lists_change_no_verdict(members: list[tuple[str, Any]]) -> None:
    """Key lists met before are matched literally; a line is accepted exactly as before."""
    before = _check(_line(1, members))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(blockscan, "_KNOWN_KEYS", {})
        for keys in [('"a', '"b'), ('"a',), ('"', '"a'), ('"b', '"a'), ('"a', '"a!')]:
            blockscan._learn(keys)  # ("b", "a") is out of order: never learnt
        assert ('"b', '"a') not in blockscan._KNOWN_KEYS
        assert _check(_line(1, members)) == before

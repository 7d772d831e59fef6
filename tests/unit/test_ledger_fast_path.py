"""The audit-pack verifier's fast path agrees with the strict reader, line for line.

`scan_lines` may only accept what `parse_entry` accepts; the pack verifier, serial or with worker
processes, must fail on exactly the message the all-strict verifier gives; the Merkle ranges built
in blocks equal the leaf-by-leaf ones; the C-encoder shortcut in `_is_canonical` equals RFC 8785.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console import jcs
from console.ceremony.actions import RevokeOfficer
from console.errors import EntryRejectedError, LedgerTamperedError
from console.ledger import Ledger, export_audit_pack, merkle
from console.ledger import pack as pack_module
from console.ledger.blockscan import accept_block, scan_block
from console.ledger.entry import _is_canonical, scan_lines
from tests.unit.test_ledger_support import (
    T0,
    all_strict,
    authorize,
    checkpoint_now,
    fill,
    new_ledger,
    strict_ok,
)

ACTED_ON = pack_module._ACTED_ON

_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from(['"', "\\", "\n", "\x00", "\x1f", "\x7f", "\ue000", "\U0001f600"])
    | st.sampled_from([":", "-", "0", " "]),
    max_size=8,
)
_scalar = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | _text
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


def _variants(value: Any) -> list[bytes]:
    """The canonical bytes and texts that differ from them only in form."""
    canonical = jcs.canonicalize(value)
    text = canonical.decode()
    out = [
        canonical,
        json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),
        json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode(),
        json.dumps(value, ensure_ascii=False, sort_keys=True).encode(),
        text.replace(":", ": ", 1).encode(),
        text.replace('"v":1}', '"v":1,"v":1}').encode(),
        text.replace('"data":{', '"data":{"a":1,"a":1,', 1).encode(),
        text.replace("A", "\\u0041", 1).encode(),
        text.replace(":0", ":-0", 1).encode(),
        text.replace('"v":1', '"v":1.0').encode(),
    ]
    return out


def _entry(seq: int, data: Any, time: str = "2027-01-15T10:00:00Z", **over: Any) -> dict[str, Any]:
    value = {
        "v": 1,
        "seq": seq,
        "time": time,
        "type": "key.state_changed",
        "ceremony": None,
        "actor": "console",
        "data": data,
    }
    value.update(over)
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_c_encoder_shortcut_is_rfc8785(value: Any) -> None:
    canonical = jcs.canonicalize(value)
    for raw in [*_variants({"k": value}), canonical]:
        try:
            parsed = jcs.loads_strict(raw)
        except EntryRejectedError:
            continue
        try:
            expected = jcs.canonicalize(parsed) == raw
        except EntryRejectedError:
            expected = False
        assert _is_canonical(parsed, raw) == expected


def test_c_encoder_shortcut_refuses_what_jcs_refuses_for_depth() -> None:
    deep: Any = 0
    for _ in range(jcs.MAX_DEPTH + 1):
        deep = [deep]
    raw = json.dumps({"k": deep}, separators=(",", ":")).encode()
    with pytest.raises(EntryRejectedError):
        jcs.canonicalize(jcs.loads_strict(raw))
    assert not _is_canonical(jcs.loads_strict(raw), raw)


_ENTRY_CASES = given(
    data=st.dictionaries(_text, _json, max_size=4),
    time=st.sampled_from(["2027-01-15T10:00:00Z", "2027-01-15T09:59:59Z", "2027-02-30T10:00:00Z"]),
    kind=st.sampled_from(["key.state_changed", "Key", "note", "officer.enrolled"]),
    ceremony=st.sampled_from([None, "", "c-1", 5]),
    seq=st.sampled_from([1, 2, True]),
)
"""One entry line's parts, valid or not: both fast paths are held against parse_entry with it."""


def _after_a_first_line(seq: Any, data: dict[str, Any], time: str, kind: str,
                        ceremony: Any) -> list[tuple[bytes, bytes]]:
    """(entry 0's line, one spelling of the entry from the parts) for every single-line
    spelling `_variants` makes; none when the parts make no entry at all."""
    first = jcs.canonicalize(_entry(0, {}))
    try:
        lines = _variants(_entry(seq, data, time, type=kind, ceremony=ceremony))
    except EntryRejectedError:
        return []
    return [(first, raw) for raw in lines if b"\n" not in raw]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_ENTRY_CASES
def test_scan_accepts_only_what_parse_entry_accepts(
    data: dict[str, Any], time: str, kind: str, ceremony: Any, seq: Any
) -> None:
    for first, raw in _after_a_first_line(seq, data, time, kind, ceremony):
        scan = scan_lines(first + b"\n" + raw + b"\n", 0, ACTED_ON, frozenset())
        accepted = 1 not in [i for i, _, _ in scan.slow]
        if accepted:
            assert strict_ok(raw, 1), raw
            assert time >= "2027-01-15T10:00:00Z" and kind not in ACTED_ON


@pytest.mark.parametrize(
    "data",
    [
        {"kid": "k-1", "reason": "scheduled rotation: a b"},  # no backslash: the quote split
        {"list": [1, {"a": None}], "q": 'say "hi"\n'},  # lists and escapes: the C encoder
        {"x": "\u00e9\U0001f600"},  # bytes >= 0xEE: left to the strict reader
    ],
)
def test_scan_accepts_plain_canonical_lines(data: dict[str, Any]) -> None:
    lines = [jcs.canonicalize(_entry(i, data)) for i in range(4)]
    scan = scan_lines(b"\n".join(lines) + b"\n", 0, ACTED_ON, frozenset())
    slow = [i for i, _, _ in scan.slow]
    if "x" in data:
        assert slow == [0, 1, 2, 3]
    else:
        assert slow == [0] and scan.last_time == "2027-01-15T10:00:00Z"
    cr = merkle.CompactRange()
    cr.append(merkle.leaf_hash(lines[0]))
    for run in scan.runs[1:]:
        cr.append_range(run)
    for i in slow[1:]:
        cr.append(merkle.leaf_hash(lines[i]))
    assert cr.root() == merkle.root_from_leaf_hashes([merkle.leaf_hash(x) for x in lines])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 70), st.lists(st.integers(0, 40), max_size=5))
def test_range_nodes_join_like_single_appends(start: int, cuts: list[int]) -> None:
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(start + sum(cuts) + 3)]
    one = merkle.CompactRange()
    for h in leaves:
        one.append(h)
    joined = merkle.CompactRange()
    for h in leaves[:start]:
        joined.append(h)
    at = start
    for n in [*cuts, len(leaves) - start - sum(cuts)]:
        joined.append_range(merkle.range_nodes(at, leaves[at : at + n]))
        at += n
        assert joined.size == at
    assert (joined.size, joined.root(), joined.levels) == (one.size, one.root(), one.levels)


# --- the whole verifier: fast, parallel and all-strict must fail alike -------------------------


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("fastpack")
    ledger: Ledger = new_ledger(folder)
    authorize(ledger)
    fill(ledger, 60)
    checkpoint_now(ledger, "alice", "bob")
    authorize(ledger, "c-2", approvers=("alice", "bob", "carol"), ceremony_class="destructive",
              actions=[RevokeOfficer(1, "revoke carol", "carol")])
    ledger.append("officer.revoked", {"name": "carol", "reason": "left"}, time=T0,
                  actor="console", ceremony="c-2")
    fill(ledger, 140)
    checkpoint_now(ledger, "alice", "bob")
    fill(ledger, 5)
    yield export_audit_pack(ledger, folder / "pack")
    ledger.close()


def _outcome(folder: Path, **kw: Any) -> str:
    verifier = pack_module._Verifier(folder, None, **kw)
    try:
        report = verifier.run()
    except LedgerTamperedError as e:
        return "error: " + e.message
    finally:
        if kw.get("workers", 1) > 1:
            assert verifier.blocks_in_workers > 0  # not the in-process fallback
    return f"ok {report.size} {report.root.hex()} {report.pending} {sorted(report.signers)}"


Edit = Callable[[list[bytes]], None]


def _set(i: int, old: bytes, new: bytes) -> Edit:
    def edit(lines: list[bytes]) -> None:
        assert old in lines[i]
        lines[i] = lines[i].replace(old, new, 1)

    return edit


def _reorder(lines: list[bytes], i: int) -> None:
    assert lines[i].startswith(b'{"actor":"console",')
    lines[i] = (
        lines[i]
        .replace(b'"actor":"console",', b"", 1)
        .replace(b'"v":1}', b'"v":1,"actor":"console"}')
    )


EDITS: dict[str, Edit] = {
    "none": lambda lines: None,
    "space": _set(100, b'"seq":', b'"seq": '),
    "key order": lambda ls: _reorder(ls, 100),
    "duplicate key": _set(100, b'"v":1}', b'"v":1,"v":1}'),
    "escape": _set(100, b'"actor":"console"', b'"actor":"c\\u006fnsole"'),
    "float": _set(100, b'"v":1}', b'"v":1.0}'),
    "time back": _set(150, b'"time":"2027', b'"time":"2026'),
    "bad date": _set(150, b'"time":"2027-01-15', b'"time":"2027-02-30'),
    "seq": _set(120, b'"seq":120', b'"seq":121'),
    "type": _set(120, b'"type":"', b'"type":"X'),
    "empty actor": _set(120, b'"actor":"console"', b'"actor":""'),
    "truncated": lambda ls: ls.__setitem__(-1, ls[-1][:-1]),
    "empty line": lambda ls: ls.insert(130, b"\n"),
    "swap": lambda ls: ls.__setitem__(slice(140, 142), [ls[141], ls[140]]),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_fast_serial_parallel_and_strict_verifiers_agree(
    name: str, pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "pack"
    shutil.copytree(pack, work)
    path = work / "entries.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    EDITS[name](lines)
    path.write_bytes(b"".join(lines))
    monkeypatch.setattr(pack_module, "_BLOCK_BYTES", 4096)  # several blocks: edges exercised
    serial = _outcome(work, workers=1)
    parallel = _outcome(work, workers=2, parallel_min_bytes=0)
    monkeypatch.setattr(pack_module, "scan_block", all_strict)
    strict = _outcome(work, workers=1)
    assert serial == parallel == strict
    assert (name == "none") == serial.startswith("ok"), serial


# --- the block path (console.ledger.blockscan) ---------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@_ENTRY_CASES
def test_block_path_accepts_only_what_parse_entry_accepts(
    data: dict[str, Any], time: str, kind: str, ceremony: Any, seq: Any
) -> None:
    for first, raw in _after_a_first_line(seq, data, time, kind, ceremony):
        block = first + b"\n" + raw + b"\n"
        accepted = accept_block(block, 0, ACTED_ON, frozenset())
        if accepted is not None:
            assert strict_ok(raw, 1), raw
            assert time >= "2027-01-15T10:00:00Z"
            assert (kind in ACTED_ON) == (1 in accepted.slow)
        assert scan_block(block, 0, ACTED_ON, frozenset()) == scan_lines(
            block, 0, ACTED_ON, frozenset()
        )


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 70), st.integers(0, 200))
def test_aligned_nodes_equal_range_nodes(start: int, count: int) -> None:
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(count)]
    assert merkle.aligned_nodes(start, leaves) == merkle.range_nodes(start, leaves)


def test_block_path_gives_the_line_by_line_result_on_plain_blocks() -> None:
    data = {"kid": "k-1", "reason": "scheduled rotation: a b", "n": -5, "ok": True}
    lines = [jcs.canonicalize(_entry(i, data)) for i in range(40)]
    lines[17] = jcs.canonicalize(_entry(17, data, type="officer.revoked"))
    block = b"\n".join(lines) + b"\n"
    assert accept_block(block, 0, ACTED_ON, frozenset({30})) is not None
    assert scan_block(block, 0, ACTED_ON, frozenset({30})) == scan_lines(
        block, 0, ACTED_ON, frozenset({30})
    )

"""The audit-pack verifier gives one verdict, and one error line, however its blocks are scanned:
in this process, in forked workers through the shared slots (reused many times over, and a block
too big for a slot sent whole), in spawned workers, or every line strictly.

Each tamper is drawn by Hypothesis (a byte changed, a line dropped, repeated, swapped or cut),
on a pack whose lines take every path: plain flat entries, nested data, trust entries, earlier
checkpoints, a line longer than a slot.
"""

from __future__ import annotations

import json
import mmap
import shutil
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.ceremony.actions import RevokeOfficer
from console.errors import LedgerTamperedError
from console.ledger import Ledger, export_audit_pack, merkle, packscan
from console.ledger import pack as pack_module
from console.ledger.blockscan import scan_block
from console.ledger.entry import LineScan
from tests.unit.test_ledger_support import (
    T0,
    all_strict,
    authorize,
    checkpoint_now,
    fill,
    new_ledger,
)

BLOCK = 2048
"""Piece size for these tests (workers get blocks of a few pieces): dozens of blocks, so slots
are reused and edges are many."""


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("parallelpack")
    ledger: Ledger = new_ledger(folder)
    authorize(ledger)
    fill(ledger, 200)
    ledger.append("key.generated", {"keyset": "api", "kid": "k1",
                                    "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}},
                  time=T0, actor="console", ceremony="c-1")
    checkpoint_now(ledger, "alice", "bob")
    fill(ledger, 150, minutes=1)
    later = T0 + timedelta(minutes=1)
    ledger.append("note", {"text": "long " * 4000}, time=later, actor="console")  # > a slot
    authorize(ledger, "c-2", approvers=("alice", "bob", "carol"), ceremony_class="destructive",
              actions=[RevokeOfficer(1, "revoke carol", "carol")], time=later)
    ledger.append("officer.revoked", {"name": "carol", "reason": "left"}, time=later,
                  actor="console", ceremony="c-2")
    fill(ledger, 300, minutes=2)
    checkpoint_now(ledger, "alice", "bob", minutes=3)
    fill(ledger, 7, minutes=3)
    yield export_audit_pack(ledger, folder / "pack")
    ledger.close()


def _outcome(folder: Path, **kw: Any) -> str:
    verifier = pack_module._Verifier(folder, None, **kw)
    try:
        report = verifier.run()
    except LedgerTamperedError as e:
        return "error: " + e.message
    if kw.get("workers", 1) > 1:
        assert verifier.blocks_in_workers > 0  # not the in-process fallback
    return f"ok {report.size} {report.root.hex()} {report.pending} {sorted(report.signers)}"


def _verdicts(folder: Path, *, spawn: bool = False) -> dict[str, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pack_module, "_BLOCK_BYTES", BLOCK)
        out = {"serial": _outcome(folder, workers=1)}
        if spawn:
            mp.setattr(packscan.threading, "active_count", lambda: 2)
        out["parallel"] = _outcome(folder, workers=2, parallel_min_bytes=0)
        mp.setattr(pack_module, "scan_block", all_strict)
        out["strict"] = _outcome(folder, workers=1)
    return out


def _tampered(pack: Path, work: Path, edit: tuple[str, int, int, bytes]) -> Path:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pack, work)
    path = work / "entries.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    kind, at, offset, byte = edit
    i = at % len(lines)
    if kind == "byte":
        line = lines[i]
        j = offset % len(line)
        lines[i] = line[:j] + byte + line[j + 1:]
    elif kind == "drop":
        del lines[i]
    elif kind == "repeat":
        lines.insert(i, lines[i])
    elif kind == "swap":
        k = (i + 1) % len(lines)
        lines[i], lines[k] = lines[k], lines[i]
    elif kind == "cut":
        data = b"".join(lines)
        path.write_bytes(data[: (at * 7919 + offset) % len(data)])
        return work
    path.write_bytes(b"".join(lines))
    return work


_edits = st.tuples(
    st.sampled_from(["byte", "byte", "byte", "drop", "repeat", "swap", "cut"]),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.sampled_from([b'"', b"\\", b"1", b"9", b"a", b"Z", b"\n", b" ", b"\x00", b"\xc3",
                     b"{", b"}", b",", b":", b"-", b"."]),
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edit=_edits)
def test_serial_parallel_and_strict_agree_on_any_tamper(
    edit: tuple[str, int, int, bytes], pack: Path, tmp_path: Path
) -> None:
    work = _tampered(pack, tmp_path / "pack", edit)
    verdicts = _verdicts(work)
    assert verdicts["serial"] == verdicts["parallel"] == verdicts["strict"], verdicts


def test_untouched_pack_verifies_alike_and_uses_slots_many_times(pack: Path) -> None:
    size = (pack / "entries.jsonl").stat().st_size
    slots = pack_module._WINDOW * 2 + 1
    assert size > 2 * slots * pack_module._WORKER_BLOCKS * BLOCK  # each slot is reused
    verdicts = _verdicts(pack)
    assert verdicts["serial"] == verdicts["parallel"] == verdicts["strict"]
    assert verdicts["serial"].startswith("ok")


@pytest.mark.parametrize("edit", [("byte", 150, 40, b"7"), ("swap", 170, 0, b""),
                                  ("byte", 142, 12, b"\\")])
def test_spawned_workers_agree_too(edit: tuple[str, int, int, bytes], pack: Path,
                                   tmp_path: Path) -> None:
    """A threaded process (the TUI) spawns its workers: the blocks go by the pool's pipe."""
    work = _tampered(pack, tmp_path / "pack", edit)
    verdicts = _verdicts(work, spawn=True)
    assert verdicts["serial"] == verdicts["parallel"] == verdicts["strict"], verdicts
    assert verdicts["serial"].startswith("error")


@pytest.mark.parametrize("piece", [1, 150, 700, 4096, 1 << 20])
def test_pieces_join_like_one_block(piece: int, pack: Path) -> None:
    block = (pack / "entries.jsonl").read_bytes()
    lines = block.split(b"\n")[:-1]
    whole = scan_block(block, 0, pack_module._ACTED_ON, frozenset())
    joined = packscan.scan_pieces(block, 0, pack_module._ACTED_ON, frozenset(), piece)
    assert joined.count == whole.count == len(lines)
    slow = [i for i, _, _ in joined.slow]
    assert joined.last_time == (None if len(lines) - 1 in slow else whole.last_time)
    assert {i for i, _, _ in whole.slow} <= set(slow)
    cr = merkle.CompactRange()
    for k, (i, before, raw) in enumerate(joined.slow):
        cr.append_range(joined.runs[k])
        assert raw == lines[i]
        if i - 1 >= 0 and i - 1 not in slow:  # the line before was accepted: its time
            assert before == json.loads(lines[i - 1])["time"]
        cr.append(merkle.leaf_hash(raw))
    cr.append_range(joined.runs[-1])
    assert cr.root() == merkle.root_from_leaf_hashes([merkle.leaf_hash(x) for x in lines])


def _fails_on_some_slots(offset: int, length: int, *args: Any) -> LineScan:
    if (offset // length) % 2:  # not every block: some come back from the worker
        raise BrokenProcessPool("a worker died")
    return _SCAN_SLOT(offset, length, *args)


_SCAN_SLOT = packscan._scan_slot
_SCAN_PIECES = packscan.scan_pieces
_HERE: list[int] = []
"""Blocks `_counted` scanned in this process (a forked worker counts in its own copy)."""


def _counted(*args: Any) -> LineScan:
    _HERE.append(1)
    return _SCAN_PIECES(*args)


@pytest.mark.parametrize("edit", [("byte", 0, 0, b"{"), ("byte", 420, 30, b"7"),
                                  ("drop", 600, 0, b"")])
def test_blocks_a_worker_failed_are_scanned_here_from_their_slot(
    edit: tuple[str, int, int, bytes], pack: Path, tmp_path: Path
) -> None:
    work = _tampered(pack, tmp_path / "pack", edit)
    expected = _verdicts(work)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pack_module, "_BLOCK_BYTES", BLOCK)
        mp.setattr(packscan, "_scan_slot", _fails_on_some_slots)  # forked workers inherit it
        # Forked, then: an idle thread another test left (a pool's) would make this process
        # spawn its workers, which inherit neither the failing slot scan nor the counter.
        mp.setattr(packscan.threading, "active_count", lambda: 1)
        _HERE.clear()
        mp.setattr(packscan, "scan_pieces", _counted)  # in the workers too, counted there
        verifier = pack_module._Verifier(work, None, workers=2, parallel_min_bytes=0)
        try:
            report = verifier.run()
            got = f"ok {report.size} {report.root.hex()} {report.pending} {sorted(report.signers)}"
        except LedgerTamperedError as e:
            got = "error: " + e.message
    assert got == expected["serial"]
    if got.startswith("ok") or edit[1] > 0:
        assert _HERE and verifier.blocks_in_workers > 0  # both: here (from the slot) and there


@pytest.mark.parametrize("piece", [150, 4096])
def test_pieces_read_from_a_slot_like_from_bytes(piece: int, pack: Path) -> None:
    block = (pack / "entries.jsonl").read_bytes()
    shared = mmap.mmap(-1, len(block) + 300)
    shared[100:100 + len(block)] = block
    shared[100 + len(block):] = b"x\n" * 100  # beyond the block: never read
    try:
        from_slot = packscan.scan_pieces(shared, 5, pack_module._ACTED_ON, frozenset(), piece,
                                         100, 100 + len(block))
    finally:
        shared.close()
    assert from_slot == packscan.scan_pieces(block, 5, pack_module._ACTED_ON, frozenset(), piece)

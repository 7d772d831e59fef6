"""The audit pack's authorization layer (console.ceremony.authorization), on test ledgers: a
table of ceremonies, each verified or refused naming its first bad entry; and the fast path's
view of the lines it accepts (`Watch`, `LineScan.acts`), which must be the strict path's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console import jcs
from console.ceremony.actions import Destroy, RecordConfig, RevokeOfficer
from console.ceremony.authorization import BULK_TYPES, DESTROYED_MARKER
from console.ceremony.plan import PLAN_LIFETIME
from console.errors import LedgerTamperedError
from console.ledger import Ledger, export_audit_pack, verify_audit_pack
from console.ledger import pack as pack_module
from console.ledger.blockscan import scan_block
from console.ledger.entry import LineScan, Watch, scan_lines
from console.ledger.packscan import scan_pieces
from tests.unit.test_ledger_support import (
    QUORUM,
    T0,
    approve,
    authorize,
    checkpoint_now,
    fill,
    make_plan,
    new_ledger,
)

Build = Callable[[Ledger], object]
"""Appends to a test ledger (what it returns is not used)."""


def _destroy(kid: str = "kid-1") -> Destroy:
    return Destroy(1, "destroy", keyset="api", kid=kid, label="api-1", cka_id="01", why="done")


def _destroyed(ledger: Ledger, ceremony: str, kid: str = "kid-1") -> None:
    ledger.append("key.state_changed", {"keyset": "api", "kid": kid, "from": "archived",
                                        "to": "destroyed", "reason": "done"},
                  time=T0, actor="console", ceremony=ceremony)


def _started(ledger: Ledger, plan_id: str, *, time: Any = T0) -> None:
    ledger.append("ceremony.started", {"plan_id": plan_id, "officers": ["alice", "bob"]},
                  time=time, actor="console", ceremony=plan_id)


def _completed(ledger: Ledger, plan_id: str, *, ratifies: tuple[str, ...] = ()) -> None:
    ledger.append("ceremony.completed", {"plan_id": plan_id}, time=T0, actor="console",
                  ceremony=plan_id)
    for other in ratifies:
        ledger.append("ceremony.ratified", {"plan_id": plan_id, "ratified_plan": other},
                      time=T0, actor="console", ceremony=plan_id)


def _planned(ledger: Ledger, plan_id: str, **kw: Any) -> Any:
    plan = make_plan(ledger, plan_id, **kw)
    ledger.append("ceremony.planned", {"plan": plan.to_dict(), "digest": plan.digest.hex()},
                  time=T0, actor="console", ceremony=plan_id)
    return plan


def _edited_plan(ledger: Ledger, change: Callable[[dict[str, Any]], None]) -> None:
    plan = make_plan(ledger, "c-2")
    data = plan.to_dict()
    change(data)
    digest = hashlib.sha256(jcs.canonicalize(data)).hexdigest()
    ledger.append("ceremony.planned", {"plan": data, "digest": digest},
                  time=T0, actor="console", ceremony="c-2")


def _late_approval(ledger: Ledger) -> None:
    plan = _planned(ledger, "c-2")
    approve(ledger, plan, "alice", time=T0 + PLAN_LIFETIME)


def _started_late(ledger: Ledger) -> None:
    plan = _planned(ledger, "c-2")
    approve(ledger, plan, "alice")
    approve(ledger, plan, "bob")
    _started(ledger, "c-2", time=T0 + PLAN_LIFETIME)


def _emergency(ledger: Ledger) -> None:
    authorize(ledger, "e-1", ceremony_class="emergency")
    _completed(ledger, "e-1")


def _ratified(ledger: Ledger) -> None:
    _emergency(ledger)
    plan = replace(make_plan(ledger, "r-1"), ratifies=("e-1",))
    ledger.append("ceremony.planned", {"plan": plan.to_dict(), "digest": plan.digest.hex()},
                  time=T0, actor="console", ceremony="r-1")
    approve(ledger, plan, "alice")
    approve(ledger, plan, "bob")
    _started(ledger, "r-1")
    _completed(ledger, "r-1", ratifies=("e-1",))


def _ratified_unnamed(ledger: Ledger) -> None:
    _emergency(ledger)
    authorize(ledger, "r-1")
    _completed(ledger, "r-1", ratifies=("e-1",))


@dataclass(frozen=True)
class Case:
    """One ledger: what happens after the officers' enrolment (entries 0-4) and ceremony c-1
    (routine, approved by alice and bob, started: entries 5-8), and how verifying its pack
    ends."""

    id: str
    build: Build
    refused: str | None = None
    """A fragment of the error; None: the pack verifies."""
    seq: int | None = None
    """The entry the error names (the first bad one)."""
    unratified: tuple[str, ...] = ()


RECORD = {"quorum": QUORUM, "files": {}}


def _then(*builds: Build) -> Build:
    """The builds, one after the other."""
    def build(ledger: Ledger) -> None:
        for step in builds:
            step(ledger)

    return build


def _destructive(*actions: Any) -> Build:
    """Ceremony c-2, destructive, approved by all three, started."""
    return lambda led: authorize(led, "c-2", ceremony_class="destructive",
                                 approvers=("alice", "bob", "carol"), actions=list(actions))

CASES = [
    Case("routine, 2 of 3, its entries: verifies", lambda led: fill(led, 3)),
    Case("the class's M not reached: refused at its start",
         _then(lambda led: approve(led, _planned(led, "c-2"), "alice"),
               lambda led: _started(led, "c-2")),
         "approvals of 1 of the 2 officers", 11),
    Case("destructive 3 of 3 with two approvals: refused at its start",
         lambda led: authorize(led, "c-2", ceremony_class="destructive",
                               actions=[RevokeOfficer(1, "revoke", "carol")]),
         "approvals of 2 of the 3 officers", 12),
    Case("a key destroyed by its own plan (3 of 3): verifies",
         _then(_destructive(_destroy()), lambda led: _destroyed(led, "c-2"))),
    Case("a key destroyed under a routine plan: refused",
         lambda led: _destroyed(led, "c-1"), "needs the destructive quorum", 9),
    Case("another key than its plan's destroyed: refused",
         _then(_destructive(_destroy()), lambda led: _destroyed(led, "c-2", "kid-2")),
         "kid kid-2", 14),
    Case("configuration recorded as its plan says: verifies",
         _then(_destructive(RecordConfig(1, "record", RECORD, ("x",))),
               lambda led: led.append("config.recorded", RECORD, time=T0, actor="console",
                                      ceremony="c-2"))),
    Case("another configuration than its plan's: refused",
         _then(_destructive(RecordConfig(1, "record", RECORD, ("x",))),
               lambda led: led.append("config.recorded", {**RECORD, "files": {"a": "b"}},
                                      time=T0, actor="console", ceremony="c-2")),
         "config.recorded (the configuration) is not an action", 14),
    Case("policy.changed (no console writes it): refused",
         lambda led: led.append("policy.changed", {}, time=T0, actor="console",
                                ceremony="c-1"), "not written by any ceremony", 9),
    Case("an entry of a ceremony that never started: refused",
         _then(lambda led: _planned(led, "c-2"), lambda led: fill(led, 1, ceremony="c-2")),
         "which had not started", 10),
    Case("an entry after its ceremony completed: refused",
         _then(lambda led: _completed(led, "c-1"), lambda led: fill(led, 1)),
         "which completed at seq 9", 10),
    Case("an entry of a ceremony never planned: refused",
         lambda led: fill(led, 1, ceremony="c-9"), "never planned", 9),
    Case("an approval after the plan expired: refused", _late_approval, "after the plan expired",
         10),
    Case("a start after the plan expired: refused", _started_late, "after its plan expired", 12),
    Case("a plan that lives two days: refused",
         lambda led: _edited_plan(led, lambda d: d.update(
             expires_at=(T0 + 2 * PLAN_LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ"))),
         "does not expire", 9),
    Case("a plan made on another ledger root: refused",
         lambda led: _edited_plan(led, lambda d: d["ledger"].update(root="A" * 43 + "=")),
         "not made on this ledger", 9),
    Case("a plan asking for a smaller quorum than its class: refused",
         lambda led: _edited_plan(led, lambda d: d.update(quorum={"m": 1, "n": 3})),
         "asks for the routine quorum 1 of 3", 9),
    Case("a plan recorded with other quorum rules: refused",
         lambda led: _edited_plan(led, lambda d: d["inputs"]["config"]["quorum"].update(
             routine={"m": 1, "n": 3})), "other quorum rules", 9),
    Case("an emergency not ratified: verifies, listed", _emergency, unratified=("e-1",)),
    Case("an emergency ratified by a routine ceremony: verifies", _ratified),
    Case("a ratification its plan does not name: refused", _ratified_unnamed,
         "which its plan does not name", 19),
]


def _pack(tmp_path: Path, build: Build) -> Path:
    ledger = new_ledger(tmp_path)
    authorize(ledger)
    build(ledger)
    checkpoint_now(ledger, "alice", "bob", minutes=60 * 24 * 3)
    pack = export_audit_pack(ledger, tmp_path / "pack")
    ledger.close()
    return pack


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_authorization(case: Case, tmp_path: Path) -> None:
    pack = _pack(tmp_path, case.build)
    if case.refused is None:
        report = verify_audit_pack(pack)
        assert tuple(u.plan_id for u in report.authorization.unratified) == case.unratified
        assert report.authorization.ceremonies >= 1
        return
    with pytest.raises(LedgerTamperedError) as caught:
        verify_audit_pack(pack)
    assert case.refused in caught.value.message
    assert f"(seq {case.seq}):" in caught.value.message, caught.value.message


def test_the_cli_says_what_was_checked_and_warns_of_an_emergency(tmp_path: Path) -> None:
    from console.verify import verify_audit_dir

    text = verify_audit_dir(_pack(tmp_path, _emergency))
    assert "2 ceremonies: each plan approved by its quorum (1 routine, 1 emergency)" in text
    assert "! emergency ceremony e-1 (test, completed, started at seq 12)" in text


def test_a_destroyed_key_in_a_big_block_takes_the_strict_path(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """In the middle of lines the block path accepts, a key destroyed under a routine plan is
    still read (the marker sends it to the strict path), in one process and in workers."""
    ledger = new_ledger(tmp_path)
    authorize(ledger)
    fill(ledger, 300)
    _destroyed(ledger, "c-1")
    fill(ledger, 300)
    checkpoint_now(ledger, "alice", "bob")
    pack = export_audit_pack(ledger, tmp_path / "pack")
    ledger.close()
    monkeypatch.setattr(pack_module, "_BLOCK_BYTES", 8192)
    for kw in ({"workers": 1}, {"workers": 2, "parallel_min_bytes": 0}):
        with pytest.raises(LedgerTamperedError, match=r"line 310 \(seq 309\): key.state_changed"):
            pack_module._Verifier(pack, None, **kw).run()


# --- the fast path's view of the lines it accepts ---------------------------------------------

WATCH = Watch(BULK_TYPES, (DESTROYED_MARKER,))
_KINDS = ["key.state_changed", "key.generated", "note", "ceremony.step.done", "officer.revoked"]


def _line(seq: int, kind: str, ceremony: str | None, to: str, minutes: int) -> bytes:
    return jcs.canonicalize({
        "v": 1, "seq": seq, "time": (T0 + timedelta(minutes=minutes)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"), "type": kind, "ceremony": ceremony, "actor": "console",
        "data": {"kid": f"k{seq}", "to": to}}) + b"\n"


_LINES = st.lists(st.tuples(st.sampled_from(_KINDS), st.sampled_from([None, "c-1", "c-2"]),
                            st.sampled_from(["active", "destroyed"]), st.integers(0, 2)),
                  min_size=1, max_size=40)


def _expected_acts(block: bytes, first_seq: int, scan: LineScan) -> list[dict[Any, int]]:
    """The acts of `scan`, computed the plain way from its slow lines."""
    slow = {i for i, _, _ in scan.slow}
    acts: list[dict[Any, int]] = [{}]
    for i, raw in enumerate(block.split(b"\n")[:-1]):
        if i in slow:
            acts.append({})
            continue
        entry = json.loads(raw)
        if entry["type"] in WATCH.types:
            acts[-1].setdefault((entry["type"], entry["ceremony"]), first_seq + i)
    return acts


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_LINES, first_seq=st.integers(0, 3), piece=st.sampled_from([64, 300, 1 << 20]))
def test_block_and_line_paths_report_the_same_acts(
        lines: list[tuple[str, str | None, str, int]], first_seq: int, piece: int) -> None:
    ordered = sorted(lines, key=lambda line: line[3])  # times never decrease
    block = b"".join(_line(first_seq + i, kind, ceremony, to, minutes)
                     for i, (kind, ceremony, to, minutes) in enumerate(ordered))
    special = frozenset({"officer.revoked"})
    fast = scan_block(block, first_seq, special, frozenset(), WATCH)
    assert fast == scan_lines(block, first_seq, special, frozenset(), WATCH)
    assert fast.acts == _expected_acts(block, first_seq, fast)
    joined = scan_pieces(block, first_seq, special, frozenset(), piece, watch=WATCH)
    assert joined.acts == _expected_acts(block, first_seq, joined)
    marked = {i for i, raw in enumerate(block.split(b"\n")[:-1])
              if DESTROYED_MARKER.encode() in raw}
    assert marked <= {i for i, _, _ in fast.slow} and marked <= {i for i, _, _ in joined.slow}
    assert len(fast.acts) == len(fast.runs) and len(joined.acts) == len(joined.runs)


def test_without_a_watch_nothing_changes() -> None:
    block = b"".join(_line(i, "key.state_changed", "c-1", "destroyed", 0) for i in range(5))
    scan = scan_block(block, 0, frozenset(), frozenset())
    assert scan.acts == [] and [i for i, _, _ in scan.slow] == [0]
    assert scan == scan_lines(block, 0, frozenset(), frozenset())

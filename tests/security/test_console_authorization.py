"""The console refuses to act on a ledger holding an entry no console writes under its rules
(the authorization replay the audit pack runs, `LedgerState.require_authorized`).

Before: an insider who writes the ledger's SQLite file appended `officer.revoked` for carol with
no ceremony (a destructive change, 3 of 3) or moved the active key to `retired`; the console
opened the ledger, showed the revocation as pending, and its next routine ceremony planned,
ran and cosigned the checkpoint that put the revocation in force. Now `plan`, `approve`,
`execute` and `resume` refuse with one error line naming the entry, and write nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import after, assert_one_error
from tests.security.conftest import Target
from tests.security.support import _connect, _restore_triggers, canonical, leaf, perfect_nodes
from tests.security.test_audit_authorization import (
    _entry,
    _kid,
    append_cosigned,
    entries,
    when_appended,
)

pytestmark = pytest.mark.hsm


def append_uncosigned(ws: Path, new: list[dict[str, object]]) -> list[int]:
    """Append `new` after the last checkpoint (its tail), the tree's nodes recomputed: what
    every open checks of the tail (leaf hashes, consistency with the checkpoint) holds."""
    rows = entries(ws)
    leaves = [leaf(canonical(e)) for e in rows]
    when = when_appended(ws)
    db = _connect(ws)
    seqs = []
    for item in new:
        entry = {**item, "seq": len(leaves), "time": when}
        raw = canonical(entry)
        db.execute("INSERT INTO entries (seq, raw, leaf_hash, type, ceremony, time) "
                   "VALUES (?,?,?,?,?,?)", (entry["seq"], raw, leaf(raw), entry["type"],
                                            entry["ceremony"], entry["time"]))
        leaves.append(leaf(raw))
        seqs.append(int(str(entry["seq"])))
    db.execute("DELETE FROM nodes")
    db.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", perfect_nodes(leaves))
    _restore_triggers(db)
    return seqs


def _plan_refused(target: Target, seq: int, contains: str) -> None:
    size = len(entries(target.ws))
    result = target.cli("plan", "quarterly-rotation", "--now", after(target.ws, 2))
    line = assert_one_error(result, 1, contains)
    assert f"ledger entry {seq} " in line, line
    assert len(entries(target.ws)) == size  # nothing written


def test_a_revocation_with_no_ceremony_cosigned_by_a_routine_checkpoint_is_refused(
        target: Target) -> None:
    [seq] = append_cosigned(target.ws, [_entry("officer.revoked",
                                               {"name": "carol", "reason": "insider"}, None)])
    _plan_refused(target, seq, "officer.revoked with no ceremony")


def test_status_names_the_forged_entry_and_still_works(target: Target) -> None:
    [seq] = append_cosigned(target.ws, [_entry("officer.revoked",
                                               {"name": "carol", "reason": "insider"}, None)])
    result = target.cli("status", "--now", after(target.ws, 2))
    assert result.returncode == 0, result.stderr
    assert f"ledger entry {seq} (officer.revoked)" in result.stdout
    assert "refuse until then" in result.stdout


def test_a_key_moved_in_the_ledger_tail_is_refused_before_it_is_cosigned(
        target: Target) -> None:
    kid = _kid(target.ws, "active")
    [seq] = append_uncosigned(target.ws, [_entry(
        "key.state_changed", {"keyset": "demo-api", "kid": kid, "from": "active",
                              "to": "retired", "reason": "insider"}, None)])
    _plan_refused(target, seq, "with no ceremony")


def test_an_approval_is_refused_once_a_forged_entry_follows_its_plan(target: Target) -> None:
    now = after(target.ws, 2)
    planned = target.ok("plan", "quarterly-rotation", "--now", now)
    plan_id = next(w for w in planned.split() if len(w) == 12 and w.isalnum())
    [seq] = append_uncosigned(target.ws, [_entry(
        "pin.resplit", {"officers": ["alice"], "sealed_id": "x", "sha256": "0" * 64,
                        "threshold": 1}, None)])
    size = len(entries(target.ws))
    result = target.cli("approve", plan_id, "--officer", "alice", "--now", after(target.ws))
    line = assert_one_error(result, 1, "pin.resplit with no ceremony")
    assert f"ledger entry {seq} " in line, line
    assert len(entries(target.ws)) == size


def test_the_genuine_demo_plans_and_runs(target: Target) -> None:
    """The control: the demo's own history passes the replay (every flow still works)."""
    target.ok("run", "quarterly-rotation", "--now", after(target.ws, 2), "--officer", "alice",
              "--officer", "bob")


async def test_the_dashboard_names_the_forged_entry(target: Target) -> None:
    """The TUI's dashboard worker holds the ledger to the same rules and shows the entry in
    its warnings (the launch's first data does not wait for it)."""
    from datetime import datetime

    from console.tui.app import CeremonyApp
    from console.tui.backend import Backend
    from console.workspace import Workspace
    from tests.tui.pilot_deliberate import settle, text_of

    [seq] = append_cosigned(target.ws, [_entry("officer.revoked",
                                               {"name": "carol", "reason": "insider"}, None)])
    now = datetime.fromisoformat(after(target.ws, 2).replace("Z", "+00:00"))
    ws = Workspace.open(target.ws)
    try:
        app = CeremonyApp(Backend(ws, clock=lambda: now), check_health=False)
        async with app.run_test(size=(140, 44)) as pilot:
            await settle(pilot)
            warnings = " ".join(text_of(app, "#warnings").split())
    finally:
        ws.close()
    assert f"ledger entry {seq} (officer.revoked)" in warnings, warnings

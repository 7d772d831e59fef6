"""The ledger's `type`, `time` and `ceremony` columns are an index beside each entry's bytes: the
Merkle tree and the checkpoints cover the bytes only. An insider who edits a column (one SQL
UPDATE with the append-only triggers dropped and put back) changes what the replays read
through the type index, and the clock, with nothing noticing.

OPEN DEFECTS (red-team report, 2026-12-03): both tests fail on main and are marked xfail(strict)
so the suite stays green until the fix lands; remove the marks with the fix. The fix: check at
open that every row's columns are the ones its bytes say (a scan: SQL string comparison against
the canonical bytes' fixed tail `,"time":"T","type":"X","v":1}` and the `,"ceremony":` member),
or stop reading trust from the index (replay from the bytes), and in production refuse a last
recorded time ahead of the wall clock rather than adopting it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from console.ceremony.officers import write_new_card
from tests.integration.ceremony_helpers import after
from tests.security.conftest import Target
from tests.security.support import _connect, _restore_triggers

pytestmark = pytest.mark.hsm

ALL_THREE = ("--officer", "alice", "--officer", "bob", "--officer", "carol")


def _set_column(ws: Path, sql: str) -> None:
    db = _connect(ws)
    db.execute(sql)
    _restore_triggers(db)


@pytest.mark.xfail(strict=True, reason="open defect: the type index is trusted (report #1)")
def test_a_revoked_officer_cannot_come_back_by_editing_the_type_column(
        target: Target, tmp_path: Path) -> None:
    """Carol is revoked under the destructive quorum, and a checkpoint covers it. Carol (who can
    still write the workspace) sets her revocation row's `type` column to 'note': before the
    fix, `officer list` shows her enrolled again and her approvals count."""
    card = tmp_path / "mallory.card"
    write_new_card("mallory", "amber-falcon-river-stone-42x", card,
                   unsafe_kdf_cost_for_tests=2**10)
    target.ok("run", "officer-change", "--set", f"enroll={card}", "--set", "revoke=carol",
              *ALL_THREE, "--now", after(target.ws))
    _set_column(target.ws, "UPDATE entries SET type = 'note' WHERE type = 'officer.revoked'")
    now = after(target.ws)
    result = target.cli("plan", "export-only", "--now", now, "--json")
    if result.returncode == 0:
        import json

        plan_id = json.loads(result.stdout)["plan_id"]
        approval = target.cli("approve", plan_id, "--officer", "carol", "--now", now)
        assert approval.returncode != 0, "a revoked officer's approval was taken"
    listing = target.cli("officer", "list")
    assert not [line for line in listing.stdout.splitlines()
                if line.startswith("carol") and "enrolled" in line]


@pytest.mark.xfail(strict=True, reason="open defect: the time column moves the clock (report #1)")
def test_the_clock_cannot_be_moved_by_editing_the_time_column(target: Target) -> None:
    """The last row's `time` column set a year ahead: before the fix, every command adopts it
    as the present (max(wall clock, last recorded time)), so timing rules count a year that did
    not pass: a rotation activates a successor consumers may not have, retired keys leave early."""
    _set_column(target.ws, "UPDATE entries SET time = '2099-01-01T00:00:00Z' "
                           "WHERE seq = (SELECT max(seq) FROM entries)")
    result = target.cli("status")
    assert result.returncode != 0 or "2099" not in result.stdout

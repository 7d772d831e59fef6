"""The ledger's `type`, `time` and `ceremony` columns are an index beside each entry's bytes: the
Merkle tree and the checkpoints cover the bytes only. An insider who edits a column (one SQL
UPDATE with the append-only triggers dropped and put back) must not change what the replays
read through the type index, nor the console's clock (red-team report, 2026-12-03).

Fixed: every open checks that each row's type column is the type its bytes end with, and the
clock's floor is the last entry's time as its checked bytes say. Left (see the last test): an
insider who rewrites an entry's bytes and its stored leaf hash along with the column hides it
from the console's replays until something recomputes the tree from the bytes; the audit pack
does, so the auditor sees it.
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


def test_a_revoked_officer_cannot_come_back_by_editing_the_type_column(
        target: Target, tmp_path: Path) -> None:
    """Carol is revoked under the destructive quorum, and a checkpoint covers it. Carol (who can
    still write the workspace) sets her revocation row's `type` column to 'note': before the
    fix, `officer list` showed her enrolled again and her approvals counted; now no command
    opens the ledger."""
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
    assert listing.returncode != 0
    assert "type column is not the type its bytes record" in listing.stderr


def test_the_clock_cannot_be_moved_by_editing_the_time_column(target: Target) -> None:
    """The last row's `time` column set a year ahead: before the fix, every command adopts it
    as the present (max(wall clock, last recorded time)), so timing rules count a year that did
    not pass: a rotation activates a successor consumers may not have, retired keys leave early."""
    _set_column(target.ws, "UPDATE entries SET time = '2099-01-01T00:00:00Z' "
                           "WHERE seq = (SELECT max(seq) FROM entries)")
    result = target.cli("status")
    assert result.returncode != 0 or "2099" not in result.stdout


def test_bytes_rewritten_with_the_column_are_caught_by_the_audit_pack(
        target: Target, tmp_path: Path) -> None:
    """What the open check leaves: the revocation's bytes, stored leaf hash and column all
    rewritten to a note. The tree still holds the revocation's leaf, and the audit pack is
    checked against the signed checkpoints, so verifying it refuses the pack."""
    import hashlib

    card = tmp_path / "mallory.card"
    write_new_card("mallory", "amber-falcon-river-stone-42x", card,
                   unsafe_kdf_cost_for_tests=2**10)
    target.ok("run", "officer-change", "--set", f"enroll={card}", "--set", "revoke=carol",
              *ALL_THREE, "--now", after(target.ws))
    db = _connect(target.ws)
    seq, raw = db.execute("SELECT seq, raw FROM entries WHERE type = 'officer.revoked'").fetchone()
    forged = bytes(raw).replace(b'"type":"officer.revoked"', b'"type":"note"')
    db.execute("UPDATE entries SET raw = ?, leaf_hash = ?, type = 'note' WHERE seq = ?",
               (forged, hashlib.sha256(b"\x00" + forged).digest(), seq))
    _restore_triggers(db)
    pack = tmp_path / "pack"
    exported = target.cli("audit", "export", "--out", str(pack))
    verified = (target.cli("verify", "audit", str(pack)) if exported.returncode == 0
                else exported)
    assert verified.returncode != 0, "the rewritten entry went unnoticed"
    assert "Traceback" not in verified.stderr
    assert "altered" in verified.stderr  # the checkpoint after it no longer matches

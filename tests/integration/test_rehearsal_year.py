"""A rehearsal year on a real SoftHSM2 token, through the `ceremony` CLI only.

`ceremony demo` (genesis 91 days back, one rotation now), then four quarterly rotations about
91 days apart, an officer change (carol leaves, dave joins), an emergency rotation ratified by
the next routine ceremony, and the destruction of archived keys past their wait. After every
ceremony a fresh audit pack and the newest bundle (against its predecessor) verify.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ceremony_helpers import (
    REPO,
    _env,
    after,
    cli,
    export_dirs,
    inspect,
    jwks_kids,
    keys_in,
    keyset,
    ledger_rows,
    make_demo,
    ok,
    status,
    verify_everything,
)

pytestmark = [pytest.mark.hsm, pytest.mark.slow]


def _officers(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--officer", name)]


def _quarterly(ws: Path, out: Path, now: str, *officers: str, extra: list[str] | None = None
               ) -> dict[str, Any]:
    """One quarterly rotation; checks the rollover invariants and returns the new status."""
    before = status(ws)
    published = keys_in(before, "published")
    assert len(published) == 1, "a published successor waits before every rotation"
    successor = published[0]["kid"]
    ok(ws, "run", "quarterly-rotation", "--now", now, *_officers(*officers), *(extra or []))
    report = status(ws, now)
    active = keys_in(report, "active")
    assert len(active) == 1, "exactly one active key"
    assert active[0]["kid"] == successor, "the key published last time is the one activated"
    assert keyset(report)["active_kid"] == successor
    new_published = keys_in(report, "published")
    assert len(new_published) == 1 and new_published[0]["kid"] != successor
    _check_jwks(ws, report, now)
    verify_everything(ws, out)
    return report


def _check_jwks(ws: Path, report: dict[str, Any], now: str) -> None:
    """The newest bundle serves exactly the published, active and in-grace retired keys; a
    retired key is only still retired if its grace has not ended."""
    latest = export_dirs(ws)[-1]
    served = jwks_kids(latest)
    keys = keyset(report)["keys"]
    expected = {k["kid"] for k in keys if k["state"] in ("published", "active", "retired")}
    assert served == expected
    for key in keys:
        if key["state"] == "retired":
            assert key["earliest_unpublish"] is None or key["earliest_unpublish"] > now, key
        if key["state"] in ("archived", "destroyed", "compromised"):
            assert key["kid"] not in served


def test_a_rehearsal_year(tmp_path: Path) -> None:
    ws = make_demo(tmp_path / "year", fast=False)  # the real `ceremony demo --headless`
    out = tmp_path / "checks"
    verify_everything(ws, out, all_bundles=True)
    seen_active: list[str] = [keyset(status(ws))["active_kid"]]

    # Quarter 1 and 2: alice and bob.
    report = status(ws)
    for _ in range(2):
        report = _quarterly(ws, out, after(ws, 91), "alice", "bob")
        seen_active.append(keyset(report)["active_kid"])
    assert keys_in(report, "archived"), "keys retired two quarters ago are unpublished"

    # Officer change: carol leaves, dave joins with a new card (destructive quorum 3 of 3).
    (ws / "dave.pass").write_text("dave-correct-horse-battery-41\n")
    ok(ws, "officer", "new-card", "dave", "--out", str(ws / "dave.card"),
       "--passphrase-file", str(ws / "dave.pass"))
    carol_card_before = (ws / "demo-cards" / "carol.card").read_bytes()
    ok(ws, "run", "officer-change", "--set", f"enroll={ws / 'dave.card'}", "--set",
       "revoke=carol", "--now", after(ws, 1), *_officers("alice", "bob", "carol"))
    verify_everything(ws, out)
    officers = {o["name"]: o for o in json.loads(
        ok(ws, "officer", "list", "--json"))}
    assert set(officers) >= {"alice", "bob", "carol", "dave"}
    assert (ws / "demo-cards" / "carol.card").read_bytes() == carol_card_before
    # Carol's share no longer opens the PIN (even with bob's); dave's does.
    refused = cli(ws, "run", "export-only", "--now", after(ws), *_officers("bob", "carol"))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert inspect(ws, ("bob", "dave"))["reconcile"]["clean"]
    carol_pin = _helper_fails(ws, "inspect", "alice", "carol")
    assert "carol" in carol_pin or "card" in carol_pin or "share" in carol_pin.lower()

    # Quarter 3 with bob and dave (dave's card is not a demo card: --card/--passphrase-file).
    dave = ["--card", f"dave={ws / 'dave.card'}", "--passphrase-file", f"dave={ws / 'dave.pass'}"]
    report = _quarterly(ws, out, after(ws, 90), "bob", "dave", extra=dave)
    seen_active.append(keyset(report)["active_kid"])

    # Emergency rotation (2 of 3): the active key is compromised, the successor signs now.
    suspected = keyset(report)["active_kid"]
    successor = keys_in(report, "published")[0]["kid"]
    when = after(ws, 10)
    ok(ws, "run", "emergency-rotation", "--now", when, *_officers("alice", "dave"), *dave)
    report = status(ws, when)
    assert keyset(report)["active_kid"] == successor
    assert [k["kid"] for k in keys_in(report, "compromised")] == [suspected]
    assert suspected not in jwks_kids(export_dirs(ws)[-1])
    emergency_plan = [r.ceremony for r in ledger_rows(ws) if r.type == "ceremony.completed"][-1]
    assert report["pending_ratification"] == [emergency_plan]
    verify_everything(ws, out)
    seen_active.append(successor)

    # Quarter 4 (routine) ratifies the emergency ceremony.
    report = _quarterly(ws, out, after(ws, 81), "alice", "bob")
    seen_active.append(keyset(report)["active_kid"])
    assert report["pending_ratification"] == []
    ratified = [r for r in ledger_rows(ws) if r.type == "ceremony.ratified"]
    assert len(ratified) == 1
    assert len(set(seen_active)) == len(seen_active), "every rotation activated a new key"

    # Key destruction (3 of 3) of archived keys past their 30-day wait.
    when = after(ws, 31)
    # Archived keys, and the compromised one, once their destruction wait has passed.
    due = [k for k in keyset(status(ws, when))["keys"]
           if k["state"] in ("archived", "compromised") and k["earliest_destruction"]
           and k["earliest_destruction"] <= when]
    assert len([k for k in due if k["state"] == "archived"]) >= 2
    objects_before = inspect(ws)["objects"]
    for key in due:
        assert key["cka_id"] in objects_before
    ok(ws, "run", "key-destruction", "--now", when, *_officers("alice", "bob", "dave"), *dave)
    report = status(ws, when)
    destroyed = {k["kid"]: k for k in keys_in(report, "destroyed")}
    assert set(destroyed) == {k["kid"] for k in due}
    seen = inspect(ws)
    for key in due:
        assert key["cka_id"] not in seen["objects"], "the private key is gone from the token"
    assert seen["reconcile"]["clean"], seen["reconcile"]
    verify_everything(ws, out, all_bundles=True)
    # The public keys stay in the ledger (the status reads them back from it).
    for key in due:
        assert destroyed[key["kid"]]["alg"] == "ES256"
    assert len(ledger_rows(ws)) > 100


def _helper_fails(ws: Path, command: str, *args: str) -> str:
    """Run the logged-in helper expecting failure; return its error text."""
    result = subprocess.run([sys.executable, "-m", "tests.integration.ceremony_helpers",
                             command, str(ws), *args], capture_output=True, text=True,
                            env=_env(), cwd=REPO, timeout=60, check=False)
    assert result.returncode != 0, "the revoked officer's card still opens the PIN"
    return result.stderr[-2000:]


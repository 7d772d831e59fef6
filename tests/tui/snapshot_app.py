"""The app the snapshot tests and screenshots photograph: fixed data, fixed clock, no HSM.

`tests/tui/data/demo-workspace/` is a demo workspace made once by `ceremony demo --headless` and
committed without its SoftHSM2 token, its throwaway cards and passphrases, or its sealed PIN (no
secret is in git, even a throwaway one): kids, digests and times in it never change, so snapshots
are stable. Everything on screen comes from the real services over that real ledger; only the two
HSM-probing reports (doctor, reconciliation) and the clock are fixed values here. The Pilot,
tmux and ceremony tests run on freshly made demo workspaces with a real token instead.

Regenerate the fixture (then `pytest tests/tui --snapshot-update`):
    rm -rf tests/tui/data/demo-workspace
    ceremony demo --workspace tests/tui/data/demo-workspace --headless
    cd tests/tui/data/demo-workspace && rm -rf softhsm demo-cards pin.sealed *.lock
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

from console.tui.app import CeremonyApp
from console.tui.backend import Backend, Health
from console.workspace import Workspace

FIXTURE = Path(__file__).parent / "data" / "demo-workspace"

DOCTOR_TEXT = """\
ceremony doctor — {now}

Module /usr/lib/softhsm/libsofthsm2.so — SoftHSM2
  library: SoftHSM / Implementation of PKCS11, library 2.6, Cryptoki 2.40
  config: <workspace>/softhsm/softhsm2.conf (from SOFTHSM2_CONF); tokens in softhsm/tokens
  slot 0: token 'demo-token' serial 5ab0c0ffee000001 — SoftHSM project SoftHSM v2; user PIN ok
    flags: login required, user PIN initialised, RNG, token initialised
    ok  RS256: CKM_RSA_PKCS with CKM_RSA_PKCS_KEY_PAIR_GEN (2048–16384 bits)
    ok  PS256: CKM_RSA_PKCS_PSS with CKM_RSA_PKCS_KEY_PAIR_GEN (2048–16384 bits)
    ok  ES256: CKM_ECDSA with CKM_EC_KEY_PAIR_GEN (P-256)
    ok  ES384: CKM_ECDSA with CKM_EC_KEY_PAIR_GEN (P-384)
    ok  EdDSA: CKM_EDDSA with CKM_EC_EDWARDS_KEY_PAIR_GEN (Ed25519)
"""

RECONCILE_TEXT = """\
reconciliation: 4 objects on the token, 4 known to the ledger
  ✓ every HSM object is known, nothing missing, no orphan intent
exports are allowed
"""


def fixed_now(ws: Workspace) -> datetime:
    """One hour after the fixture's last entry: stable, and later than anything recorded."""
    last: datetime | None = ws.ledger.last_time()
    assert last is not None
    return last + timedelta(hours=1)


class SnapshotBackend(Backend):
    """The real backend with a fixed clock and fixed HSM reports."""

    def health(self) -> Health:
        summary = self.ledger_summary()
        return Health("HSM demo-token #5ab0c0ffee000001 ✓", True,
                      f"ledger {summary.size:,} entries", True, "reconciled", True)

    def doctor_text(self) -> str:
        return DOCTOR_TEXT.format(now=self.now().strftime("%Y-%m-%dT%H:%M:%SZ"))

    def reconcile_text(self) -> str:
        return RECONCILE_TEXT


def copy_fixture(dest: Path) -> Path:
    """A private copy (opening a ledger writes WAL files; the committed fixture stays clean)."""
    target = dest / "demo-workspace"
    shutil.copytree(FIXTURE, target)
    return target


def snapshot_app(workspace: Path, *, later: timedelta = timedelta(0)) -> CeremonyApp:
    """The app over `workspace` at the fixed clock, or `later` than it (e.g. when the next
    quarterly rotation is due, for the plan screenshots)."""
    ws = Workspace.open(workspace)
    # The module file is this machine's SoftHSM2 build, not the fixture's: a different build
    # is a real difference the console reports, but it is about the machine, not the screens.
    ws.drift = tuple(d for d in ws.drift if d.what != "the PKCS#11 module")
    # pin.sealed is not committed (no secret in git, even a throwaway one): the screens see the
    # file the ledger records, not a missing one.
    recorded = [str(e.data["sha256"]) for e in ws.ledger.entries_of_type("pin.resplit")][-1]
    ws.sealed_pin_sha256 = lambda: recorded  # type: ignore[method-assign]
    now = fixed_now(ws) + later
    return CeremonyApp(SnapshotBackend(ws, clock=lambda: now))

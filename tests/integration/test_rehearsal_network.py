"""The rehearsal year against SoftHSM2 behind `p11-kit server` (the network HSM), losing it once.

`tests.rehearsal.run_year(network=True)` serves the demo's token through `p11-kit server`
(ceremony.toml: `module = "p11-kit"`, no `softhsm_conf`; the commands get
P11_KIT_SERVER_ADDRESS), and in the first quarterly rotation kills the server and its
`p11-kit-remote` connections once the console has recorded the intent of its key generation.
The console must report it (exit 1, one error line), `reconcile` must refuse while the server is
down, and once it is back `ceremony resume` completes the ceremony with nothing lost: the audit
pack verifies, reconciliation is clean, the token holds every key of the ledger exactly once.
The rest of the year then runs over the network HSM with the same checks as the direct one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_rehearsal_year import assert_a_full_year
from tests.rehearsal import run_year

pytestmark = [pytest.mark.hsm, pytest.mark.slow, pytest.mark.network_hsm]


@pytest.mark.soak  # `make soak`: the year itself runs directly in `make test`; HSM losses
# mid-ceremony over p11-kit are tests/reliability/test_network_hsm_faults.py's
def test_a_rehearsal_year_over_p11kit_with_an_hsm_loss(tmp_path: Path) -> None:
    summary = run_year(tmp_path, network=True, report=lambda message: None)
    print(summary.table())
    assert_a_full_year(summary)
    outage = summary.outage
    assert outage is not None and outage.ceremony == "rotation Q1"
    assert "generate" in outage.paused_at
    assert outage.exit_code == 1
    assert outage.error_line.startswith("ceremony: error: HSM unavailable")
    assert outage.reconcile_while_down.startswith("ceremony: error:")
    assert outage.resumed.startswith("ceremony ") and "completed" in outage.resumed
    q1 = next(r for r in summary.rows if r.ceremony == "rotation Q1")
    assert outage.resumed.split()[1] == q1.plan_id
    # The bundle-signing key and the three keys of demo-api that exist after Q1's rotation
    # (one retired, one active, the new successor) plus the genesis key, archived.
    assert outage.key_pairs_on_token == 5
    # python-pkcs11's failed-search cleanup must not print a traceback after the one line.
    assert not outage.stray_traceback

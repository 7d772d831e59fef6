"""A small, valid typed plan for the tests that need one (no tests here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from console.ceremony.actions import Change, Checkpoint, ExportBundle, Generate, KeyRef, Reconcile
from console.ceremony.plan import Deferred, Plan, PlanInputs

T0 = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
INPUTS = PlanInputs(
    policy_sha256="11" * 32, policy={"v": 1, "keysets": {}}, config_sha256="22" * 32,
    module_path="/usr/lib/softhsm/libsofthsm2.so", module_sha256="33" * 32, server_address=None,
    token_label="demo", token_serial=None,
    quorum={"routine": {"m": 2, "n": 3}, "destructive": {"m": 3, "n": 3},
            "emergency": {"m": 2, "n": 3}},
    rehearsal=True, pin_sealed_sha256="44" * 32, script_sha256="55" * 32,
)


def sample_plan(plan_id: str = "0123456789ab", **changes: object) -> Plan:
    actions = (
        Reconcile(1, "reconcile the HSM inventory with the ledger"),
        Generate(2, "generate ES256 key api-20270115-aaaaaa for api", keyset="api",
                 label="api-20270115-aaaaaa", alg="ES256", purpose="token", why="successor"),
        ExportBundle(3, "sign and export the JWKS bundle of api", keyset="api", changes=(
            Change("publish", KeyRef(label="api-20270115-aaaaaa"), "announce it"),
            Change("activate", KeyRef(kid="k" * 43), "allowed since …", paired_with="j" * 43),
        )),
        Checkpoint(4, "checkpoint cosigned by the approving officers"),
    )
    values: dict[str, object] = dict(
        id=plan_id, origin="example.com/ceremony-ledger/00000000-0000-0000-0000-000000000001",
        script="quarterly-rotation", ceremony_class="routine", quorum_m=2, quorum_n=3,
        keysets=("api",), parameters={}, inputs=INPUTS, ledger_size=10,
        ledger_root=bytes(32), actions=actions,
        deferred=(Deferred("unpublish", "api", "j" * 43, "2027-02-01T00:00:00Z", "grace"),),
        notes=("a note",), ratifies=(), created_at=T0, expires_at=T0 + timedelta(hours=24),
    )
    values.update(changes)
    return Plan(**values)  # type: ignore[arg-type]

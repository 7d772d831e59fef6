"""Results held for the next transaction (`CeremonyRun.hold` / `finish`), killed in between.

A self-test's verdict joins the next step's first write; an export's result joins the next
export's intent when that export is of another keyset. On a two-keyset rotation (reconcile,
generate + self-test per keyset, an export per keyset, checkpoint) the console kills itself at
the boundaries around those held results; then nothing half-written is visible, every step the
console showed as done (✓) is recorded, `ceremony resume` completes the ceremony, and the
result (key states, bundles of both keysets) is an uninterrupted run's. The bundles are checked
with jwcrypto against the bundle-signing key the ledger records.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk, jws

from tests.integration.ceremony_helpers import (
    FAST_KDF,
    PYTHON,
    REPO,
    TIMEOUT,
    _env,
    after,
    check_manifest,
    cli,
    clone,
    export_dirs,
    inspect,
    keyset_toml,
    ledger_entries,
    ok,
)
from tests.reliability.fault_kit import step_done_reported

pytestmark = [pytest.mark.hsm, pytest.mark.slow]

OFFICERS = ("--officer", "alice", "--officer", "bob")
KEYSETS = ("demo-api", "demo-web")
EXPECTED = ["reconcile", "generate", "self_test", "generate", "self_test", "export_bundle",
            "export_bundle", "checkpoint"]


@dataclass(frozen=True)
class Prepared:
    root: Path
    plan_id: str
    now: str
    reference: dict[str, Any]


def _fingerprint(ws: Path) -> dict[str, Any]:
    states = Counter((k["keyset"], k["state"]) for k in inspect(ws)["keys"])
    return {"states": sorted(states.items()),
            "exports": {name: [p.name for p in export_dirs(ws, name)] for name in KEYSETS}}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    base = tmp_path_factory.mktemp("held")
    demo = base / "demo"
    code = ("import sys; from pathlib import Path; import console.ceremony.demo as d; "
            f"d.DEMO_POLICY += {keyset_toml('demo-web', 'envoy-web')!r}; "
            "d.run_demo(Path(sys.argv[1]), progress=lambda m: None, "
            f"unsafe_kdf_cost_for_tests={FAST_KDF})")
    subprocess.run([PYTHON, "-c", code, str(demo)], env=_env(), cwd=REPO, check=True,
                   capture_output=True, timeout=TIMEOUT)
    root = clone(demo, base / "prepared")
    now = after(root, 91)
    plan = json.loads(ok(root, "plan", "quarterly-rotation", "--now", now, "--json"))
    assert [a["action"] for a in plan["actions"]] == EXPECTED
    for officer in ("alice", "bob"):
        ok(root, "approve", plan["plan_id"], "--officer", officer, "--now", now)
    reference = clone(root, base / "reference")
    run = cli(reference, "execute", plan["plan_id"], *OFFICERS, "--now", now)
    assert run.returncode == 0, run.stderr
    assert step_done_reported(run.stderr) == list(range(1, len(EXPECTED) + 1))
    yield Prepared(root, plan["plan_id"], now, _fingerprint(reference))


def _recorded_steps(ws: Path, plan_id: str) -> set[int]:
    return {int(e["data"]["step"]) for e in ledger_entries(ws)
            if e["type"] == "ceremony.step.done" and e["data"].get("plan_id") == plan_id}


def _bundles_verify(ws: Path) -> None:
    """Every visible bundle is whole and verifies (jwcrypto) with the recorded bundle key."""
    signing = next(e["data"]["jwk"] for e in ledger_entries(ws)
                   if e["type"] == "key.generated" and e["data"]["purpose"] == "bundle")
    key = jwk.JWK(**signing)
    for name in KEYSETS:
        for folder in export_dirs(ws, name):
            check_manifest(folder)
            token = jws.JWS()
            token.deserialize((folder / "jwks.jwt").read_text().strip())
            token.verify(key)


@pytest.mark.parametrize("point", [
    "effect:3",  # api's self-test signed, its verdict not yet held
    "done:3",  # api's verdict durable (with web's generate intent)
    "intent:4",
    "effect:6",  # api's bundle durable, its result not recorded
    "done:6",  # api's result durable (with web's export intent)
    "intent:7",
    "effect:7",
])
def test_killed_around_a_held_result_then_resumed(prepared: Prepared, tmp_path: Path,
                                                  point: str) -> None:
    ws = clone(prepared.root, tmp_path / "ws")
    crashed = cli(ws, "execute", prepared.plan_id, *OFFICERS, "--now", prepared.now,
                  env={"CEREMONY_UNSAFE_CRASH_AT": point})
    assert crashed.returncode == -9, (point, crashed.stderr[-2000:])
    shown = step_done_reported(crashed.stderr)
    assert set(shown) <= _recorded_steps(ws, prepared.plan_id), (point, shown)
    _bundles_verify(ws)

    resumed = ok(ws, "resume", *OFFICERS, "--now", prepared.now)
    assert "completed" in resumed
    assert _recorded_steps(ws, prepared.plan_id) == set(range(1, len(EXPECTED) + 1))
    assert _fingerprint(ws) == prepared.reference
    _bundles_verify(ws)
    seqs = [(e["data"]["keyset"], e["data"]["seq"]) for e in ledger_entries(ws)
            if e["type"] == "bundle.exported"]
    assert len(seqs) == len(set(seqs)), seqs

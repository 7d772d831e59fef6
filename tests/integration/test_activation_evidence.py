"""Evidence before activation, planned and enforced, on a demo workspace (no gateway needed).

A consumer declaring a probe and a jwks_uri is added under the quorum (config-change). The next
rotation's plan says which consumers will be asked before the activation and which stay
unconfirmed; when the consumer does not answer, the activation is refused before anything is
exported, naming the consumer and its answers, and the evidence is in the ledger. Emergencies
waive it (their key is activated with the bundle that publishes it): their plans ask no one.
The accepting side, against real gateways, is tests/gateway/test_rehearsal_gateway.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.harness import free_port
from tests.integration.ceremony_helpers import (
    after,
    assert_one_error,
    cli,
    export_dirs,
    keys_in,
    keyset,
    ledger_entries,
    make_demo,
    ok,
    status,
)

pytestmark = pytest.mark.hsm

ALL = ("--officer", "alice", "--officer", "bob", "--officer", "carol")
UNCONFIRMED = "envoy-edge, istio-mesh, kong-partners, nginx-plus"


def bundle_action(plan: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in plan["actions"] if a["action"] == "export_bundle")
    return found


def test_a_consumer_that_does_not_answer_refuses_the_activation(tmp_path: Path) -> None:
    ws = make_demo(tmp_path / "demo")
    port = free_port()  # nothing listens there
    with (ws / "policy.toml").open("a") as policy:
        policy.write(f"""
[[keysets.demo-api.consumers]]
name = "gw-probe"
type = "generic"
cache_lifetime = "5m"
jwks_uri = "https://127.0.0.1:{port}/jwks.json"
probe = {{ url = "https://127.0.0.1:{port}/canary/", status = 200 }}
""")
    ok(ws, "run", "config-change", "--now", after(ws), *ALL)
    before = status(ws)
    successor = keys_in(before, "published")[0]["kid"]
    bundles = export_dirs(ws)

    result = cli(ws, "run", "quarterly-rotation", "--now", after(ws, 91), "--officer", "alice",
                 "--officer", "bob")
    # The plan shown before the cards are unlocked says who is asked and who is not.
    assert (f"before activating {successor[:6]}…: a canary token signed by it must be accepted "
            f"by gw-probe (https://127.0.0.1:{port}/canary/ answers HTTP 200)") in result.stderr
    assert (f"before activating {successor[:6]}…: gw-probe's JWKS "
            f"(https://127.0.0.1:{port}/jwks.json) must serve its kid") in result.stderr
    assert f"unconfirmed (time rule only, no probe or jwks_uri): {UNCONFIRMED}" in result.stderr
    error = assert_one_error(result, contains=f"activation of {successor[:6]}… in demo-api "
                                              "refused")
    assert "gw-probe answered the canary with no answer: Connection refused" in error
    assert f"gw-probe's JWKS at https://127.0.0.1:{port}/jwks.json: no answer" in error

    # Nothing exported, no key changed; the evidence and the failure are recorded.
    assert export_dirs(ws) == bundles
    now = status(ws)
    assert keyset(now)["active_kid"] == keyset(before)["active_kid"]
    assert successor in [k["kid"] for k in keys_in(now, "published")]
    entries = ledger_entries(ws)
    probed = [e for e in entries if e["type"] == "consumer.probed"]
    assert [(e["data"]["consumer"], e["data"]["check"], e["data"]["accepted"]) for e in probed] \
        == [("gw-probe", "probe", False), ("gw-probe", "jwks_uri", False)]
    assert all(e["data"]["kid"] == successor and e["data"]["keyset"] == "demo-api"
               for e in probed)
    assert entries[-1]["type"] == "ceremony.step.failed"
    assert "refused" in entries[-1]["data"]["error"]
    plan = next(e["data"]["plan"] for e in entries if e["type"] == "ceremony.planned"
                and e["ceremony"] == entries[-1]["ceremony"])
    assert bundle_action(plan)["probes"] == ["gw-probe"]

    # An emergency activates at once, with the bundle that publishes the key: nobody is asked.
    ok(ws, "resume", "--abort", "--officer", "alice")
    emergency = json.loads(ok(ws, "plan", "emergency-rotation", "--json"))
    action = bundle_action(emergency)
    assert "activate" in action["description"] and action["probes"] == []
    assert "before activating" not in action["description"]

"""From HSM key to a token a real gateway accepts, across a rehearsal half-year.

Nothing is mocked: a demo workspace (its own SoftHSM2 token) drives the ceremonies through the
`ceremony` CLI; the token PIN reaches the signing service through `signer-enrollment` and the
standard `age -d`; tokens are signed by `ceremony sign-token` with the signer.json of the export
in force; and two real consumers judge them:

* Apache httpd + mod_auth_openidc (TLS, test CA) for keyset demo-api (ES256): `/api/` requires
  the keyset's issuer and aud "orders"; `/canary/` is its probe endpoint (aud
  "key-ceremony-canary"); the JWKS comes from `jwks`, which serves what the operator installed;
* node jose behind an HTTPS endpoint (`JoseGateway`) for keyset edge-api (EdDSA, which
  mod_auth_openidc cannot verify), fetching `edge_jwks`.

The rehearsal clock (`--now`) moves the ledger by quarters; the gateways live on the wall clock,
so every token carries wall-clock `iat`/`exp` and "a quarter later" is played by emptying the
gateways' JWKS caches (Apache restart, jose restart), as a quarter would.

Timeline (A→B→C→D→E: demo-api keys; E1→E2→E3→E4: edge-api keys):
0. the demo (A retired, B active, C published; bundles #1, #2); edge-api added by config-change
   with its genesis (E1 active, E2 published); a signing service enrolled (age).
1. Before publishing C: the operator installed demo-api bundle #1 only. Tokens of B (signer #2)
   and A (signer #1) pass; a token of C is refused (401).
2. Quarter 1, activation of C refused: Apache refuses the canary and its JWKS lacks C; the
   error names both; nothing is exported.
3. After publishing C (bundle #2 installed): C's tokens pass; `ceremony resume` asks again,
   both consumers accept, bundles demo-api #3 (A unpublished, B retired, C active, D published)
   and edge-api #2 (E1 retired, E2 active, E3 published); the evidence is in ledger and
   transcript.
4. After activation/retirement/unpublishing (bundles installed, caches expired): C (signer #3)
   and B pass, A is refused; E2 (signer #2) and E1 pass on jose.
5. Quarter 2: D and E3 activated after their canaries; B and E1 unpublished: refused; the
   signers in force pass.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from console import b64
from tests.gateway.harness import (
    ApacheGateway,
    JoseConsumer,
    JoseGateway,
    JwksServer,
    TestCA,
)
from tests.integration.ceremony_helpers import (
    after,
    assert_one_error,
    cli,
    export_dirs,
    keys_in,
    keyset,
    last_time,
    ledger_entries,
    make_demo,
    ok,
    sign_jwt,
    stamp,
    status,
)
from tests.integration.signer_helpers import (
    age_decrypt,
    age_keygen,
    require_age,
    write_contract_signer,
)

pytestmark = [pytest.mark.gateway, pytest.mark.hsm, pytest.mark.slow]

DEMO_ISSUER = "https://demo.example/api"
EDGE_ISSUER = "https://edge.example/api"
AUDIENCE = "orders"
TWO = ("--officer", "alice", "--officer", "bob")
ALL = (*TWO, "--officer", "carol")
UNCONFIRMED = "envoy-edge, istio-mesh, kong-partners, nginx-plus"


@pytest.fixture
def edge_jwks(gateway_ca: TestCA) -> Iterator[JwksServer]:
    server = JwksServer(gateway_ca).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def jose_gateway(jose_installed: Path, gateway_ca: TestCA,
                 edge_jwks: JwksServer) -> Iterator[JoseGateway]:
    consumer = JoseConsumer(edge_jwks.url, gateway_ca.ca_file, cooldown_ms=0).start()
    gateway = JoseGateway(consumer, gateway_ca, issuer=EDGE_ISSUER, audience=AUDIENCE,
                          algorithms=["EdDSA"]).start()
    try:
        yield gateway
    finally:
        gateway.stop()
        consumer.stop()


class Clock:
    """The test's own timeline: what happened when, for the report."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.marks: list[tuple[str, float]] = []

    def mark(self, what: str) -> None:
        self.marks.append((what, time.monotonic() - self.start))

    def table(self) -> str:
        return "\n".join(f"{t:6.1f} s  {what}" for what, t in self.marks)


def wall_claims(sub: str) -> str:
    now = int(time.time())  # the gateways check exp against the real clock
    return json.dumps({"sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + 900})


def policy_additions(ws: Path, apache: ApacheGateway, jwks: JwksServer, jose: JoseGateway,
                     edge_jwks: JwksServer, ca: TestCA) -> str:
    """A probe + jwks_uri consumer for demo-api, and the EdDSA keyset edge-api with one."""
    shutil.copyfile(ca.ca_file, ws / "gateway-ca.pem")  # pinned below, sealed with the policy
    digest = hashlib.sha256(ca.ca_file.read_bytes()).hexdigest()
    pin = f'ca_file = "gateway-ca.pem", ca_sha256 = "{digest}"'
    return f"""
[[keysets.demo-api.consumers]]
name = "apache-gw"
type = "generic"
cache_lifetime = "5m"
jwks_uri = "{jwks.url}"
probe = {{ url = "{apache.url('/canary/')}", status = 200, {pin} }}

[keysets.edge-api]
issuer = "{EDGE_ISSUER}"
alg = "EdDSA"
cryptoperiod = "90d"
max_token_lifetime = "1h"
clock_skew = "1m"
margin = "1d"
destruction_wait = "30d"
bundle_lifetime = "120d"

[[keysets.edge-api.consumers]]
name = "jose-edge"
type = "generic"
cache_lifetime = "10m"
jwks_uri = "{edge_jwks.url}"
probe = {{ url = "{jose.url('/canary/')}", status = 200, {pin} }}
"""


def test_tokens_from_sign_token_meet_real_gateways_through_a_rehearsal(
        tmp_path: Path, make_apache: Callable[..., ApacheGateway], jwks_server: JwksServer,
        edge_jwks: JwksServer, jose_gateway: JoseGateway, gateway_ca: TestCA) -> None:
    require_age()
    clock = Clock()
    apache = make_apache(issuer=DEMO_ISSUER, audience=AUDIENCE, tls=gateway_ca,
                         canary_location=True)
    ws = make_demo(tmp_path / "demo")
    clock.mark("demo workspace made; Apache (TLS) and the jose gateway started")

    # --- 0. the configuration under the quorum, edge-api's genesis, a signing service -------
    with (ws / "policy.toml").open("a") as policy:
        policy.write(policy_additions(ws, apache, jwks_server, jose_gateway, edge_jwks,
                                      gateway_ca))
    ok(ws, "run", "config-change", "--now", after(ws), *ALL)
    ok(ws, "run", "genesis", "--keyset", "edge-api", "--now", after(ws), *TWO)
    identity = tmp_path / "token-service.txt"
    recipient = age_keygen(identity)
    ok(ws, "run", "signer-enrollment", "--set", "signer=token-service", "--set",
       f"recipient={recipient}", "--now", after(ws), *ALL)
    pin = tmp_path / "token-service.pin"
    assert age_decrypt(identity, ws / "exports" / "signers" / "token-service" / "pin.age",
                       pin).returncode == 0
    clock.mark("config-change, edge-api genesis, signer-enrollment; pin.age opened with age -d")

    def signer(name: str, seq: int) -> Path:
        return write_contract_signer(ws / "exports" / name / str(seq),
                                     tmp_path / f"signer-{name}-{seq}.json")

    def sign(signer_file: Path, sub: str) -> str:
        """`ceremony sign-token` as the token service runs it (in the rehearsal workspace)."""
        return ok(ws, "sign-token", "--signer", str(signer_file), "--pin-file", str(pin),
                  "--claims", wall_claims(sub)).strip()

    def install(name: str, seq: int) -> None:
        """The operator installs a bundle's jwks.json on the consumer's JWKS host."""
        server = jwks_server if name == "demo-api" else edge_jwks
        server.set_jwks((ws / "exports" / name / str(seq) / "jwks.json").read_bytes())

    def apache_says(token: str) -> int:
        return apache.get(token, "/api/").status

    def jose_says(token: str) -> tuple[bool, str | None]:
        return jose_gateway.verify(token)

    report = status(ws)
    a = keys_in(report, "retired")[0]["kid"]
    b = keyset(report)["active_kid"]
    c = keys_in(report, "published")[0]["kid"]
    e1 = keyset(report, "edge-api")["active_kid"]
    assert [p.name for p in export_dirs(ws)] == ["1", "2"]
    assert [p.name for p in export_dirs(ws, "edge-api")] == ["1"]

    # --- 1. before C is published: the operator installed bundle #1 only ---------------------
    install("demo-api", 1)
    install("edge-api", 1)
    token_a = sign(signer("demo-api", 1), "svc-a")  # a service still on signer #1 (A)
    token_b = sign(signer("demo-api", 2), "svc-b")  # the signer.json in force (B)
    token_c = sign_jwt(ws, c, json.loads(wall_claims("next")) | {"iss": DEMO_ISSUER})
    token_e1 = sign(signer("edge-api", 1), "edge-1")
    assert json.loads(signer("demo-api", 2).read_text())["kid"] == b
    assert (apache_says(token_b), apache_says(token_a), apache_says(token_c)) == (200, 200, 401)
    assert jose_says(token_e1) == (True, None)
    clock.mark("1. before publishing C: B 200, A 200, C 401; E1 accepted by jose")

    # --- 2. quarter 1: the activation of C is refused by the gateway's evidence ---------------
    q1 = after(ws, 91)
    refused = cli(ws, "run", "quarterly-rotation", "--now", q1, *TWO)
    shown = refused.stderr
    assert (f"before activating {c[:6]}…: a canary token signed by it must be accepted by "
            f"apache-gw ({apache.url('/canary/')} answers HTTP 200)") in shown
    assert f"apache-gw's JWKS ({jwks_server.url}) must serve its kid" in shown
    assert f"unconfirmed (time rule only, no probe or jwks_uri): {UNCONFIRMED}" in shown
    error = assert_one_error(refused, contains=f"activation of {c[:6]}… in demo-api refused")
    assert "apache-gw answered the canary with HTTP 401 (expects 200)" in error
    assert f"apache-gw's JWKS at {jwks_server.url}: does not serve kid {c[:6]}…" in error
    assert [p.name for p in export_dirs(ws)] == ["1", "2"]
    assert [p.name for p in export_dirs(ws, "edge-api")] == ["1"]
    assert keyset(status(ws))["active_kid"] == b
    clock.mark("2. quarter 1: activation of C refused (canary 401, JWKS without C); "
               "nothing exported")

    # --- 3. C published to the gateway; the ceremony resumes ----------------------------------
    install("demo-api", 2)
    assert apache_says(token_c) == 200  # unknown kid: mod_auth_openidc fetched the set again
    ok(ws, "resume", *TWO)
    report = status(ws)
    assert keyset(report)["active_kid"] == c
    assert [k["kid"] for k in keys_in(report, "retired")] == [b]
    assert a in [k["kid"] for k in keys_in(report, "archived")]
    d = keys_in(report, "published")[0]["kid"]
    e2 = keyset(report, "edge-api")["active_kid"]
    assert e2 != e1 and [p.name for p in export_dirs(ws)] == ["1", "2", "3"]
    evidence = [e for e in ledger_entries(ws) if e["type"] == "consumer.probed"]
    assert [(e["data"]["consumer"], e["data"]["check"], e["data"]["accepted"], e["data"]["kid"])
            for e in evidence] == [
        ("apache-gw", "probe", False, c), ("apache-gw", "jwks_uri", False, c),
        ("apache-gw", "probe", True, c), ("apache-gw", "jwks_uri", True, c),
        ("jose-edge", "probe", True, e2), ("jose-edge", "jwks_uri", True, e2)]
    assert [e["data"]["answer"] for e in evidence[2:4]] == ["HTTP 200", f"serves kid {c[:6]}…"]
    transcript = max((ws / "transcripts").glob("*-quarterly-rotation-*.md"),
                     key=lambda p: p.stat().st_mtime).read_text()
    assert "consumer=apache-gw" in transcript and "answer=HTTP 200" in transcript
    canaries = [auth for path, auth in jose_gateway.endpoint.seen if path == "/canary/"]
    assert len(canaries) == 1 and canaries[0] is not None
    canary_claims = json.loads(b64.decode(canaries[0].split()[1].split(".")[1]))
    assert canary_claims["aud"] == "key-ceremony-canary" and canary_claims["iss"] == EDGE_ISSUER
    assert canary_claims["exp"] - canary_claims["iat"] <= 300
    assert abs(canary_claims["iat"] - time.time()) < 120  # the wall clock, not the rehearsal's
    clock.mark("3. C published (C 200); resumed: canaries accepted by Apache and jose, "
               "bundles demo-api #3, edge-api #2")

    # --- 4. after activation, retirement and unpublishing -------------------------------------
    install("demo-api", 3)
    install("edge-api", 2)
    apache.restart()  # a quarter later every JWKS cache has expired
    jose_gateway.consumer.restart()
    token_c_signer = sign(signer("demo-api", 3), "svc-c")
    token_e2 = sign(signer("edge-api", 2), "edge-2")
    assert json.loads(signer("demo-api", 3).read_text())["kid"] == c
    assert (apache_says(token_c_signer), apache_says(token_b), apache_says(token_a)) == \
        (200, 200, 401)
    assert jose_says(token_e2) == (True, None) and jose_says(token_e1) == (True, None)
    clock.mark("4. after: C (signer #3) 200, B retired 200, A unpublished 401; E2, E1 accepted")

    # --- 5. quarter 2 -------------------------------------------------------------------------
    ok(ws, "run", "quarterly-rotation", "--now", stamp(last_time(ws) + timedelta(days=91)), *TWO)
    report = status(ws)
    assert keyset(report)["active_kid"] == d
    e3 = keyset(report, "edge-api")["active_kid"]
    install("demo-api", 4)
    install("edge-api", 3)
    apache.restart()
    jose_gateway.consumer.restart()
    token_d = sign(signer("demo-api", 4), "svc-d")
    token_e3 = sign(signer("edge-api", 3), "edge-3")
    assert json.loads(signer("edge-api", 3).read_text())["kid"] == e3
    assert [apache_says(t) for t in (token_d, token_c_signer, token_b, token_a)] == \
        [200, 200, 401, 401]
    assert jose_says(token_e3) == (True, None) and jose_says(token_e2) == (True, None)
    assert jose_says(token_e1) == (False, "ERR_JWKS_NO_MATCHING_KEY")
    accepted = [e["data"]["kid"] for e in ledger_entries(ws)
                if e["type"] == "consumer.probed" and e["data"]["accepted"]]
    assert {d, e3} <= set(accepted)
    clock.mark("5. quarter 2: D, E3 activated after their canaries; D 200, C 200, B 401, "
               "A 401; E3, E2 accepted, E1 refused")
    print(clock.table())
    assert clock.marks[-1][1] < 90, "the gateway rehearsal should stay near a minute"


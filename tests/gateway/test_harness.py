"""The harness is real: tokens signed in software, then in SoftHSM2, meet real gateways.

Apache httpd + mod_auth_openidc 2.4.12 (cjose) and node jose fetch the JWK Set from the TLS
JWKS server; what each accepts, refuses and re-fetches is what the module's source says
(docs/gateways.md), checked here against the running programs.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from console.exports import public_jwk
from tests.gateway.conftest import AUDIENCE, ISSUER
from tests.gateway.harness import (
    CANARY_AUDIENCE,
    ApacheGateway,
    JoseConsumer,
    JoseGateway,
    JwksServer,
    SoftwareKey,
    TestCA,
    sign_jwt,
    wall_claims,
)
from tests.integration.ceremony_helpers import export_dirs, keys_in, keyset, make_demo, status
from tests.integration.ceremony_helpers import sign_jwt as hsm_sign_jwt

pytestmark = pytest.mark.gateway


def es256() -> tuple[ec.EllipticCurvePrivateKey, dict[str, str]]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, public_jwk(key.public_key(), "ES256")


def token(key: SoftwareKey, jwk: dict[str, str], **claims: Any) -> str:
    base = wall_claims(issuer=ISSUER, audience=AUDIENCE)
    base.update(claims)
    return sign_jwt(key, jwk["alg"], jwk["kid"], {k: v for k, v in base.items() if v is not None})


def fetch(server: JwksServer, ca: TestCA) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(server.url, context=ca.client_context(), timeout=10) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


# --- the JWKS server alone ---------------------------------------------------------------


def test_jwks_server_serves_what_the_test_sets(jwks_server: JwksServer,
                                                gateway_ca: TestCA) -> None:
    assert fetch(jwks_server, gateway_ca) == (200, b'{"keys":[]}')
    jwks_server.set_jwks(b'{"keys":[1]}')
    assert fetch(jwks_server, gateway_ca) == (200, b'{"keys":[1]}')
    jwks_server.hold()  # keep serving the old set
    jwks_server.set_jwks(b'{"keys":[2]}')
    assert fetch(jwks_server, gateway_ca) == (200, b'{"keys":[1]}')
    jwks_server.release()
    assert fetch(jwks_server, gateway_ca) == (200, b'{"keys":[2]}')
    jwks_server.fail_with(503)
    assert fetch(jwks_server, gateway_ca)[0] == 503
    jwks_server.fail_with(None)
    assert jwks_server.requests == 5
    jwks_server.reset_count()
    assert jwks_server.requests == 0
    # Only the test CA vouches for it: the system trust store does not.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(jwks_server.url, context=ssl.create_default_context(), timeout=10)


# --- Apache httpd + mod_auth_openidc ------------------------------------------------------


def test_apache_accepts_a_served_key_and_caches_the_set(apache_gateway: ApacheGateway,
                                                         jwks_server: JwksServer) -> None:
    key, jwk = es256()
    jwks_server.set_jwks({"keys": [jwk]})
    assert apache_gateway.request(token(key, jwk)) == 200
    assert jwks_server.requests == 1
    assert apache_gateway.request(token(key, jwk, sub="second")) == 200
    assert jwks_server.requests == 1  # served from mod_auth_openidc's cache
    assert apache_gateway.request(None) == 401
    response = apache_gateway.get("not-a-jwt")
    assert response.status == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_apache_refuses_the_same_kid_signed_by_another_key(apache_gateway: ApacheGateway,
                                                            jwks_server: JwksServer) -> None:
    key, jwk = es256()
    impostor = ec.generate_private_key(ec.SECP256R1())
    jwks_server.set_jwks({"keys": [jwk]})
    mark = apache_gateway.log_mark()
    assert apache_gateway.request(token(impostor, jwk)) == 401
    assert "signature" in apache_gateway.log_since(mark).lower()
    assert apache_gateway.request(token(key, jwk)) == 200


def test_apache_refuses_a_key_absent_from_the_set_after_one_forced_refetch(
        apache_gateway: ApacheGateway, jwks_server: JwksServer) -> None:
    key, jwk = es256()
    other_key, other_jwk = es256()
    jwks_server.set_jwks({"keys": [other_jwk]})
    assert apache_gateway.request(token(other_key, other_jwk)) == 200
    assert jwks_server.requests == 1
    mark = apache_gateway.log_mark()
    assert apache_gateway.request(token(key, jwk)) == 401
    # An unknown kid forces one re-fetch, on every such request (no rate limit in 2.4.12).
    assert jwks_server.requests == 2
    assert apache_gateway.request(token(key, jwk)) == 401
    assert jwks_server.requests == 3
    assert "doing a forced refresh" in apache_gateway.log_since(mark)


def test_apache_checks_exp_and_the_required_claims_only(apache_gateway: ApacheGateway,
                                                         jwks_server: JwksServer) -> None:
    key, jwk = es256()
    jwks_server.set_jwks({"keys": [jwk]})
    now = int(time.time())
    assert apache_gateway.request(token(key, jwk, exp=now - 5)) == 401
    assert apache_gateway.request(token(key, jwk, iss="https://someone.else")) == 401
    assert apache_gateway.request(token(key, jwk, aud="payments")) == 401
    assert apache_gateway.request(token(key, jwk, aud=["payments", AUDIENCE])) == 200
    # What 2.4.12 does not check for bearer tokens: a missing exp, a future nbf or iat.
    assert apache_gateway.request(token(key, jwk, exp=None)) == 200
    assert apache_gateway.request(token(key, jwk, nbf=now + 3600, iat=now + 3600)) == 200


def test_apache_without_require_claim_takes_any_issuer_and_audience(
        make_apache: Callable[..., ApacheGateway], jwks_server: JwksServer) -> None:
    gateway = make_apache()  # no Require claim lines
    key, jwk = es256()
    jwks_server.set_jwks({"keys": [jwk]})
    assert gateway.request(token(key, jwk, iss="https://anyone", aud="anything")) == 200


@pytest.mark.parametrize(
    ("alg", "status"),
    [("RS256", 200), ("PS256", 200), ("ES256", 200), ("ES384", 200), ("EdDSA", 401)],
)
def test_apache_algorithms(apache_gateway: ApacheGateway, jwks_server: JwksServer,
                           alg: str, status: int) -> None:
    """cjose 0.6.2 verifies RSA, PSS and ECDSA; it has no EdDSA (OKP keys are skipped)."""
    key: SoftwareKey
    if alg in ("RS256", "PS256"):
        key = rsa.generate_private_key(65537, 2048)
    elif alg == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    jwk = public_jwk(key.public_key(), alg)
    jwks_server.set_jwks({"keys": [jwk]})
    assert apache_gateway.request(token(key, jwk)) == status


def test_apache_jwks_cache_refresh_rules(apache_gateway: ApacheGateway,
                                         jwks_server: JwksServer) -> None:
    """What makes mod_auth_openidc fetch the set again, and what it keeps trusting."""
    old_key, old = es256()
    new_key, new = es256()
    jwks_server.set_jwks({"keys": [old]})
    assert apache_gateway.request(token(old_key, old)) == 200
    assert jwks_server.requests == 1

    # A newly published kid is fetched on first sight: no wait for the refresh interval.
    jwks_server.set_jwks({"keys": [old, new]})
    assert apache_gateway.request(token(new_key, new)) == 200
    assert jwks_server.requests == 2

    # An unpublished key is still trusted from the cache (its kid is known: no fetch) ...
    jwks_server.set_jwks({"keys": [new]})
    assert apache_gateway.request(token(old_key, old)) == 200
    assert jwks_server.requests == 2
    # ... until the cache is emptied (restart) or expires (OIDCJWKSRefreshInterval >= 300 s).
    apache_gateway.restart()
    assert apache_gateway.request(token(old_key, old)) == 401
    assert apache_gateway.request(token(new_key, new)) == 200


def test_apache_forced_refetch_falls_back_on_the_cached_set(apache_gateway: ApacheGateway,
                                                             jwks_server: JwksServer) -> None:
    key, jwk = es256()
    late_key, late = es256()
    jwks_server.set_jwks({"keys": [jwk]})
    assert apache_gateway.request(token(key, jwk)) == 200
    # The server holds back the new set: the forced re-fetch gets the old one, 401.
    jwks_server.hold()
    jwks_server.set_jwks({"keys": [jwk, late]})
    assert apache_gateway.request(token(late_key, late)) == 401
    jwks_server.release()
    assert apache_gateway.request(token(late_key, late)) == 200
    # A failing JWKS endpoint: cached keys keep working, unknown kids are refused.
    jwks_server.fail_with(503)
    before = jwks_server.requests
    assert apache_gateway.request(token(key, jwk)) == 200
    assert apache_gateway.request(token(*es256())) == 401
    assert jwks_server.requests == before + 1


# --- node jose ----------------------------------------------------------------------------


def test_jose_accepts_eddsa_and_names_each_refusal(jose_consumer: JoseConsumer,
                                                    jwks_server: JwksServer) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    jwk = public_jwk(key.public_key(), "EdDSA")
    jwks_server.set_jwks({"keys": [jwk]})
    checks: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE}
    assert jose_consumer.verify(token(key, jwk), **checks) == (True, None)
    answer = jose_consumer.verify_full(token(key, jwk), **checks)
    assert answer["header"] == {"alg": "EdDSA", "kid": jwk["kid"], "typ": "JWT"}

    impostor = ed25519.Ed25519PrivateKey.generate()
    assert jose_consumer.verify(token(impostor, jwk), **checks) == (
        False, "ERR_JWS_SIGNATURE_VERIFICATION_FAILED")
    stranger = ed25519.Ed25519PrivateKey.generate()
    stranger_jwk = public_jwk(stranger.public_key(), "EdDSA")
    assert jose_consumer.verify(token(stranger, stranger_jwk), **checks) == (
        False, "ERR_JWKS_NO_MATCHING_KEY")
    assert jose_consumer.verify(token(key, jwk, aud="payments"), **checks) == (
        False, "ERR_JWT_CLAIM_VALIDATION_FAILED")
    assert jose_consumer.verify(token(key, jwk, exp=int(time.time()) - 5), **checks) == (
        False, "ERR_JWT_EXPIRED")
    assert jose_consumer.verify(token(key, jwk), algorithms=["ES256"]) == (
        False, "ERR_JOSE_ALG_NOT_ALLOWED")


def test_jose_refetch_is_limited_by_its_cooldown(jose_installed: Path, gateway_ca: TestCA,
                                                 jwks_server: JwksServer) -> None:
    """jose re-fetches for an unknown kid only after `cooldownDuration` since the last fetch."""
    key = ed25519.Ed25519PrivateKey.generate()
    jwk = public_jwk(key.public_key(), "EdDSA")
    late_key = ed25519.Ed25519PrivateKey.generate()
    late = public_jwk(late_key.public_key(), "EdDSA")
    jwks_server.set_jwks({"keys": [jwk]})
    consumer = JoseConsumer(jwks_server.url, gateway_ca.ca_file, cooldown_ms=60_000).start()
    try:
        assert consumer.verify(token(key, jwk)) == (True, None)
        jwks_server.set_jwks({"keys": [jwk, late]})
        assert consumer.verify(token(late_key, late)) == (False, "ERR_JWKS_NO_MATCHING_KEY")
        assert jwks_server.requests == 1
        consumer.restart()
        assert consumer.verify(token(late_key, late)) == (True, None)
    finally:
        consumer.stop()
    fast = JoseConsumer(jwks_server.url, gateway_ca.ca_file, cooldown_ms=0).start()
    try:
        jwks_server.set_jwks({"keys": [jwk]})
        assert fast.verify(token(key, jwk)) == (True, None)
        jwks_server.set_jwks({"keys": [jwk, late]})
        assert fast.verify(token(late_key, late)) == (True, None)
    finally:
        fast.stop()


# --- a token signed in SoftHSM2 -----------------------------------------------------------


@pytest.mark.hsm
@pytest.mark.slow
def test_softhsm_signed_token_passes_apache(tmp_path: Path, apache_gateway: ApacheGateway,
                                            jwks_server: JwksServer) -> None:
    """The demo's HSM signs (active key, and the published next key as a canary); Apache
    accepts both against the export's jwks.json, and refuses once the key is not served."""
    ws = make_demo(tmp_path / "demo")
    report = status(ws)
    active = keyset(report)["active_kid"]
    published = [k["kid"] for k in keys_in(report, "published")]
    assert published, "the demo keeps a published successor"
    served = (export_dirs(ws)[-1] / "jwks.json").read_bytes()
    assert {k["kid"] for k in json.loads(served)["keys"]} >= {active, *published}
    jwks_server.set_jwks(served)

    claims = wall_claims(issuer=ISSUER, audience=AUDIENCE)
    hsm_token = hsm_sign_jwt(ws, active, claims)
    assert apache_gateway.request(hsm_token) == 200
    canary = hsm_sign_jwt(ws, published[0], {**claims, "sub": "key-ceremony-canary"})
    assert apache_gateway.request(canary) == 200

    # The same kid served with other key material: refused once a restart empties the cache.
    impostor = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")
    replaced = [{**k, "x": impostor["x"], "y": impostor["y"]} if k["kid"] == active else k
                for k in json.loads(served)["keys"]]
    jwks_server.set_jwks({"keys": replaced})
    apache_gateway.restart()
    assert apache_gateway.request(hsm_token) == 401


# --- the probe endpoints the console's canary meets -----------------------------------------


def test_apache_over_tls_has_a_canary_location_apart_from_the_api(
        make_apache: Callable[..., ApacheGateway], jwks_server: JwksServer,
        gateway_ca: TestCA) -> None:
    """`/canary/` takes only the canary's audience, `/api/` never does: a canary opens no API
    and an API token answers no probe. Served over HTTPS, as console probes require."""
    gateway = make_apache(issuer=ISSUER, audience=AUDIENCE, tls=gateway_ca,
                          canary_location=True)
    assert gateway.url("/canary/").startswith("https://127.0.0.1:")
    key, jwk = es256()
    jwks_server.set_jwks({"keys": [jwk]})
    canary = token(key, jwk, aud=CANARY_AUDIENCE)
    assert gateway.get(canary, "/canary/").status == 200
    assert gateway.get(canary, "/api/").status == 401
    assert gateway.get(token(key, jwk), "/canary/").status == 401
    assert gateway.get(token(key, jwk), "/api/").status == 200
    assert gateway.get(token(key, jwk, aud=CANARY_AUDIENCE, iss="https://other"),
                       "/canary/").status == 401


def test_jose_gateway_answers_like_a_gateway(jose_consumer: JoseConsumer,
                                             jwks_server: JwksServer,
                                             gateway_ca: TestCA) -> None:
    gateway = JoseGateway(jose_consumer, gateway_ca, issuer=ISSUER, audience=AUDIENCE,
                          algorithms=["EdDSA"]).start()
    try:
        key = ed25519.Ed25519PrivateKey.generate()
        jwk = public_jwk(key.public_key(), "EdDSA")
        jwks_server.set_jwks({"keys": [jwk]})

        def status(bearer: str | None, path: str) -> tuple[int, str]:
            conn = http.client.HTTPSConnection("127.0.0.1", gateway.endpoint.port,
                                               context=gateway_ca.client_context(), timeout=10)
            try:
                conn.request("GET", path, headers={"Authorization": f"Bearer {bearer}"}
                             if bearer else {})
                response = conn.getresponse()
                response.read()
                return response.status, response.getheader("WWW-Authenticate") or ""
            finally:
                conn.close()

        assert status(token(key, jwk), "/api/") == (200, "")
        assert status(token(key, jwk, aud=CANARY_AUDIENCE), "/canary/") == (200, "")
        code, challenge = status(token(key, jwk, aud=CANARY_AUDIENCE), "/api/")
        assert code == 401 and "ERR_JWT_CLAIM_VALIDATION_FAILED" in challenge
        assert status(None, "/api/")[0] == 401
        assert status(token(key, jwk), "/other")[0] == 404
    finally:
        gateway.stop()

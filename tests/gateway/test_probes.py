"""How the console asks a consumer about the next key (console.ceremony.probes), over real TLS.

Probes and JWKS URIs are served on loopback with the test CA: a probe is accepted only with the
status it declares, redirects are answers (never followed), the CA file must match its pin, an
unknown CA, a closed port or a silent server is "no answer", and a JWKS must serve the next kid
with the next key's material. Each refusal names the consumer and its answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from console.ceremony import probes
from console.ceremony.probes import CANARY_AUDIENCE, Evidence, canary_claims, gather, refusal
from console.config import Consumer, Probe
from console.exports import public_jwk
from tests.gateway.harness import Answer, HttpsEndpoint, JwksServer, TestCA, free_port

pytestmark = pytest.mark.gateway

CANARY = "header.claims.signature"
WHEN = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
JWK = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")
KID = JWK["kid"]


def clock() -> datetime:
    return WHEN


@pytest.fixture
def answers() -> dict[str, Answer]:
    """What the endpoint answers, by path (the test sets it)."""
    return {}


@pytest.fixture
def endpoint(gateway_ca: TestCA, answers: dict[str, Answer]) -> Iterator[HttpsEndpoint]:
    def answer(path: str, headers: Mapping[str, str]) -> Answer:
        if path == "/slow/":
            time.sleep(1.0)
        if headers.get("authorization") != f"Bearer {CANARY}":
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b""
        return answers.get(path, (200, {}, b"ok"))

    server = HttpsEndpoint(gateway_ca, answer).start()
    try:
        yield server
    finally:
        server.stop()


def pinned(url: str, ca: TestCA, status: int = 200) -> Probe:
    return Probe(url, status, str(ca.ca_file), hashlib.sha256(ca.ca_file.read_bytes()).hexdigest())


def consumer(probe: Probe | None = None, jwks_uri: str | None = None) -> Consumer:
    return Consumer("gw-1", "generic", timedelta(minutes=5), probe=probe, jwks_uri=jwks_uri)


def ask(c: Consumer, root: Path = Path("/")) -> list[Evidence]:
    return gather([c], canary=CANARY, kid=KID, jwk=JWK, root=root, clock=clock)


def test_a_probe_that_answers_its_status_accepts(endpoint: HttpsEndpoint,
                                                 gateway_ca: TestCA) -> None:
    (evidence,) = ask(consumer(pinned(endpoint.url("/canary/"), gateway_ca)))
    assert evidence == Evidence("gw-1", "probe", endpoint.url("/canary/"), KID, True,
                                "HTTP 200", WHEN)
    assert endpoint.seen == [("/canary/", f"Bearer {CANARY}")]
    assert refusal([evidence], keyset="api") is None


def test_a_ca_file_given_by_a_relative_path_is_the_workspaces(endpoint: HttpsEndpoint,
                                                              gateway_ca: TestCA) -> None:
    probe = pinned(endpoint.url("/canary/"), gateway_ca)
    relative = Probe(probe.url, 200, gateway_ca.ca_file.name, probe.ca_sha256)
    (evidence,) = ask(consumer(relative), root=gateway_ca.ca_file.parent)
    assert evidence.accepted


@pytest.mark.parametrize(("path", "status", "answer", "says"), [
    ("/canary/", 200, (401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b""),
     'HTTP 401 (expects 200): Bearer error="invalid_token"'),
    ("/canary/", 204, (200, {}, b"ok"), "HTTP 200 (expects 204)"),
    ("/canary/", 200, (302, {"Location": "/elsewhere/"}, b""),
     "HTTP 302 (expects 200): a redirect, not followed"),
])
def test_any_other_answer_refuses_naming_it(endpoint: HttpsEndpoint, gateway_ca: TestCA,
                                            answers: dict[str, Answer], path: str,
                                            status: int, answer: Answer, says: str) -> None:
    answers[path] = answer
    (evidence,) = ask(consumer(pinned(endpoint.url(path), gateway_ca, status)))
    assert not evidence.accepted and evidence.answer == says
    assert [p for p, _ in endpoint.seen] == [path]  # a redirect is not followed
    error = refusal([evidence], keyset="api")
    assert error is not None and error.rule == "consumer-evidence"
    assert f"gw-1 answered the canary with {says}" in error.message


def test_the_canary_is_not_sent_where_trust_is_missing(endpoint: HttpsEndpoint,
                                                       gateway_ca: TestCA) -> None:
    url = endpoint.url("/canary/")
    forged = Probe(url, 200, str(gateway_ca.ca_file), "0" * 64)
    (evidence,) = ask(consumer(forged))
    assert not evidence.accepted
    assert "does not match the ca_sha256 policy.toml pins" in evidence.answer
    # The system trust store does not know the test CA.
    (evidence,) = ask(consumer(Probe(url)))
    assert evidence.answer.startswith("no answer: TLS certificate not trusted")
    assert endpoint.seen == []


def test_no_answer_refuses(endpoint: HttpsEndpoint, gateway_ca: TestCA,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    closed = f"https://127.0.0.1:{free_port()}/canary/"
    (evidence,) = ask(consumer(pinned(closed, gateway_ca)))
    assert evidence.answer == "no answer: Connection refused"
    monkeypatch.setattr(probes, "PROBE_TIMEOUT", 0.3)
    started = time.monotonic()
    (evidence,) = ask(consumer(pinned(endpoint.url("/slow/"), gateway_ca)))
    assert evidence.answer == "no answer within 0.3 s" and not evidence.accepted
    assert time.monotonic() - started < 1.0


def test_a_jwks_uri_must_serve_the_next_key(jwks_server: JwksServer,
                                            gateway_ca: TestCA) -> None:
    def check() -> Evidence:
        # The consumer's pinned CA (from its probe) is trusted for its JWKS too.
        c = consumer(pinned(f"https://127.0.0.1:{free_port()}/", gateway_ca),
                     jwks_uri=jwks_server.url)
        return ask(c)[1]

    other = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")
    jwks_server.set_jwks({"keys": [other]})
    evidence = check()
    assert (evidence.check, evidence.accepted) == ("jwks_uri", False)
    assert evidence.answer == f"does not serve kid {KID[:6]}… (1 keys served)"
    error = refusal([evidence], keyset="api")
    assert error is not None and f"gw-1's JWKS at {jwks_server.url}: does not serve" in \
        error.message
    jwks_server.set_jwks({"keys": [other, {**JWK, "x": other["x"], "y": other["y"]}]})
    assert check().answer == f"serves kid {KID[:6]}… with other key material"
    jwks_server.set_jwks(b"<html>")
    assert check().answer == "HTTP 200, but not JSON"
    jwks_server.set_jwks({"kid": KID})
    assert check().answer == "HTTP 200, but not a JWK Set"
    jwks_server.set_jwks({"keys": [other, JWK]})
    jwks_server.fail_with(503)
    assert check().answer == "HTTP 503"
    jwks_server.fail_with(None)
    evidence = check()
    assert evidence.accepted and evidence.answer == f"serves kid {KID[:6]}…"


def test_the_canary_and_the_evidence_record() -> None:
    claims = canary_claims("https://demo.example/api", WHEN)
    assert claims["aud"] == CANARY_AUDIENCE == "key-ceremony-canary"
    assert claims["iss"] == "https://demo.example/api"
    assert claims["exp"] - claims["iat"] == 300 and claims["iat"] == int(WHEN.timestamp())
    assert claims["jti"] != canary_claims("https://demo.example/api", WHEN)["jti"]
    evidence = Evidence("gw-1", "jwks_uri", "https://x/jwks.json", KID, False, "HTTP 503", WHEN)
    data = evidence.ledger_data("api")
    assert data == {"keyset": "api", "consumer": "gw-1", "check": "jwks_uri",
                    "url": "https://x/jwks.json", "kid": KID, "accepted": False,
                    "answer": "HTTP 503", "at": "2027-01-15T10:00:00Z"}
    assert Evidence.from_ledger(json.loads(json.dumps(data))) == evidence

"""Gateway and IdP files: each parses with a real parser, carries the fields its tool needs,
and refuses key sets its tool cannot use (with the reason)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from console import jose
from console.errors import TargetLintError
from console.exports import CONSUMER_TYPES, TargetInput, public_jwk, render_targets
from console.exports.targets import Target

ISSUER = "https://auth.example.com/realms/demo"
URI = "pkcs11:token=ceremony;id=%01%02;object=demo-api-2027q1;type=private"
ISSUED = datetime(2027, 1, 15, 10, 0, 0, 500, tzinfo=UTC)


@pytest.fixture(scope="module")
def rsa_keys() -> list[dict[str, str]]:
    return [
        public_jwk(rsa.generate_private_key(65537, 2048).public_key(), "RS256"),
        public_jwk(rsa.generate_private_key(65537, 3072).public_key(), "RS256"),
    ]


@pytest.fixture(scope="module")
def ec_keys() -> list[dict[str, str]]:
    return [
        public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256") for _ in range(3)
    ]


def inp(keys: list[dict[str, str]], **kw: Any) -> TargetInput:
    args: dict[str, Any] = {"keyset": "demo-api", "issuer": ISSUER, "keys": keys}
    args.update(kw)
    return TargetInput.build(**args)


def jwks_of(keys: list[dict[str, str]]) -> dict[str, Any]:
    return {"keys": keys}


def test_envoy(ec_keys: list[dict[str, str]]) -> None:
    files = render_targets(inp(ec_keys), ["envoy"])
    text = files["envoy-jwt-authn.yaml"].decode()
    assert text.startswith("# Envoy jwt_authn provider for keyset demo-api\n")
    doc = yaml.safe_load(text)
    provider = doc["providers"]["demo-api"]
    assert provider["issuer"] == ISSUER and provider["forward"] is True
    assert json.loads(provider["local_jwks"]["inline_string"]) == jwks_of(ec_keys)
    assert doc["rules"] == [{"match": {"prefix": "/"}, "requires": {"provider_name": "demo-api"}}]


def test_istio(rsa_keys: list[dict[str, str]]) -> None:
    files = render_targets(inp(rsa_keys), ["istio"])
    text = files["istio-request-authentication.yaml"].decode()
    doc, policy = yaml.safe_load_all(text)
    assert doc["apiVersion"] == "security.istio.io/v1"
    assert doc["kind"] == "RequestAuthentication"
    assert doc["metadata"]["name"] == "demo-api-jwt"
    (rule,) = doc["spec"]["jwtRules"]
    assert rule["issuer"] == ISSUER
    assert isinstance(rule["jwks"], str) and json.loads(rule["jwks"]) == jwks_of(rsa_keys)
    # Without the AuthorizationPolicy a request with no token at all would pass.
    assert policy["kind"] == "AuthorizationPolicy"
    assert policy["metadata"]["name"] == "demo-api-require-jwt"
    assert policy["spec"] == {
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}],
                   "when": [{"key": "request.auth.claims[iss]", "values": [ISSUER]}]}],
    }
    assert "a request with no token at all would pass" in text.replace("\n# ", " ")


def test_kong(rsa_keys: list[dict[str, str]]) -> None:
    files = render_targets(inp(rsa_keys), ["kong"])
    text = files["kong-deck.yaml"].decode()
    assert text.startswith("# Kong decK state")
    assert "Kong/deck#181" in text  # the header says why every credential has a secret
    doc = yaml.safe_load(text)
    assert doc["_format_version"] == "3.0"
    (consumer,) = doc["consumers"]
    secrets = consumer["jwt_secrets"]
    assert [s["key"] for s in secrets] == [k["kid"] for k in rsa_keys]
    for secret, _key in zip(secrets, rsa_keys, strict=True):
        assert secret["algorithm"] == "RS256"
        pem = secret["rsa_public_key"]
        assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
        assert isinstance(load_pem_public_key(pem.encode()), rsa.RSAPublicKey)
        assert isinstance(secret["secret"], str) and len(secret["secret"]) >= 32
    # One random value per credential, never shared (it must not become a usable HS key).
    assert len({s["secret"] for s in secrets}) == len(secrets)
    (plugin,) = doc["plugins"]
    assert plugin["name"] == "jwt" and plugin["config"]["key_claim_name"] == "kid"


KEY_MAKERS = {
    "RS256": lambda: rsa.generate_private_key(65537, 2048).public_key(),
    "PS256": lambda: rsa.generate_private_key(65537, 2048).public_key(),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()).public_key(),
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()).public_key(),
    "EdDSA": lambda: ed25519.Ed25519PrivateKey.generate().public_key(),
}


@pytest.mark.parametrize("alg", ["PS256", "ES384", "EdDSA"])
def test_kong_without_a_version_refuses_newer_algorithms(alg: str) -> None:
    with pytest.raises(TargetLintError, match=rf"Kong jwt plugin \(no version declared\) "
                       rf"cannot verify {alg}") as e:
        render_targets(inp([public_jwk(KEY_MAKERS[alg](), alg)]), ["kong"])
    assert "declare the consumer's version" in e.value.hint


@pytest.mark.parametrize(
    ("version", "accepted"),
    [("0.9", {"RS256"}), ("0.10", {"RS256", "ES256"}), ("2.3.9", {"RS256", "ES256"}),
     ("2.4", {"RS256", "ES256", "ES384"}), ("3.6.1", {"RS256", "ES256", "ES384"}),
     ("3.7", {"RS256", "PS256", "ES256", "ES384", "EdDSA"}),
     ("3.9.3", {"RS256", "PS256", "ES256", "ES384", "EdDSA"})],
)
def test_kong_algorithms_follow_the_declared_version(version: str, accepted: set[str]) -> None:
    """docs/gateways.md §1: ES256 from 0.10, ES384 from 2.4, PS256 and EdDSA from 3.7."""
    for alg, make in KEY_MAKERS.items():
        target = Target("kong", version=version, name="kong-partners")
        key = public_jwk(make(), alg)
        if alg in accepted:
            doc = yaml.safe_load(render_targets(inp([key]), [target])["kong-deck.yaml"])
            assert doc["consumers"][0]["jwt_secrets"][0]["algorithm"] == alg
        else:
            with pytest.raises(TargetLintError, match=rf"Kong jwt plugin {version} cannot "
                               rf"verify {alg}"):
                render_targets(inp([key]), [target])


def test_nginx(ec_keys: list[dict[str, str]]) -> None:
    files = render_targets(inp(ec_keys), ["nginx"])
    assert json.loads(files["nginx-jwks.json"]) == jwks_of(ec_keys)
    assert b"nginx-jwks.json: NGINX Plus: auth_jwt_key_file" in files["README.txt"]


def test_apim(rsa_keys: list[dict[str, str]]) -> None:
    files = render_targets(inp(rsa_keys, clock_skew_seconds=30), ["apim"])
    text = files["apim-validate-jwt.xml"].decode()
    assert text.startswith("<!-- Azure APIM validate-jwt policy")
    root = ET.fromstring(text)
    assert root.tag == "validate-jwt" and root.get("clock-skew") == "30"
    keys = root.findall("./issuer-signing-keys/key")
    assert [(k.get("id"), k.get("n"), k.get("e")) for k in keys] == [
        (k["kid"], k["n"], k["e"]) for k in rsa_keys
    ]
    assert [i.text for i in root.findall("./issuers/issuer")] == [ISSUER]


def test_apim_and_auth0_refuse_ec(ec_keys: list[dict[str, str]]) -> None:
    with pytest.raises(TargetLintError, match=r"APIM validate-jwt accepts RSA keys only") as e:
        render_targets(inp(ec_keys[:1]), ["apim"])
    assert "ES256" in e.value.user_message()
    with pytest.raises(TargetLintError, match=r"Auth0 client credentials accepts RSA keys only"):
        render_targets(inp(ec_keys[:1]), ["auth0"])


def test_auth0(rsa_keys: list[dict[str, str]]) -> None:
    files = render_targets(inp(rsa_keys), ["auth0"])
    bodies = json.loads(files["auth0-credentials.json"])
    assert len(bodies) == 2
    for body, key in zip(bodies, rsa_keys, strict=True):
        assert body["credential_type"] == "public_key"
        assert body["kid"] == key["kid"] and body["alg"] == "RS256"
        assert isinstance(load_pem_public_key(body["pem"].encode()), rsa.RSAPublicKey)
    assert b"auth0-credentials.json: Auth0: each element is the body of POST" in files["README.txt"]


def test_auth0_refuses_three_keys(rsa_keys: list[dict[str, str]]) -> None:
    third = public_jwk(rsa.generate_private_key(65537, 2048).public_key(), "RS256")
    with pytest.raises(TargetLintError, match=r"at most 2 keys per application, .* has 3"):
        render_targets(inp([*rsa_keys, third]), ["auth0"])


def test_one_refusal_means_no_files(ec_keys: list[dict[str, str]]) -> None:
    """render_targets lints every target before rendering: envoy fits, apim does not."""
    with pytest.raises(TargetLintError):
        render_targets(inp(ec_keys), ["envoy", "apim"])


def test_base_files_readme_and_signer(ec_keys: list[dict[str, str]]) -> None:
    files = render_targets(
        inp(ec_keys, active_kid=ec_keys[1]["kid"], pkcs11_uri=URI, issued_at=ISSUED, seq=3),
        (*CONSUMER_TYPES[:4], "apache-openidc", "aws-apigw", "generic"),
    )
    assert json.loads(files["jwks.json"]) == jwks_of(ec_keys)
    for key in ec_keys:
        pem = files[f"keys/{key['kid']}.pem"]
        assert isinstance(load_pem_public_key(pem), ec.EllipticCurvePublicKey)
    signer = json.loads(files["signer.json"])
    assert signer == {
        "v": 1,
        "iss": ISSUER,
        "alg": "ES256",
        "kid": ec_keys[1]["kid"],
        "pkcs11_uri": URI,
        "mechanism": "CKM_ECDSA",
        "host_hash": "sha256",
        "valid_from": "2027-01-15T10:00:00Z",
    }
    readme = files["README.txt"].decode()
    for name in files:
        if name != "README.txt":
            assert f"\n{name}: " in readme, name
    assert "AWS API Gateway" in readme and "jwks.jwt: the signed bundle" in readme
    assert ("ceremony verify bundle jwks.jwt --trust ../../bundle-signing-key.jwk --previous "
            "../2/jwks.jwt") in readme


@pytest.mark.parametrize(
    ("alg", "mechanism", "host_hash"),
    # PS256: host SHA-256 + CKM_RSA_PKCS_PSS, which works behind p11-kit 0.24 too (it cannot
    # forward CKM_SHA256_RSA_PKCS_PSS), not the token's first choice.
    [("RS256", "CKM_SHA256_RSA_PKCS", None), ("PS256", "CKM_RSA_PKCS_PSS", "sha256"),
     ("ES256", "CKM_ECDSA", "sha256"), ("ES384", "CKM_ECDSA", "sha384"),
     ("EdDSA", "CKM_EDDSA", None)],
)
def test_signer_json_names_the_mechanism_from_console_jose(
        alg: str, mechanism: str, host_hash: str | None) -> None:
    key = public_jwk(KEY_MAKERS[alg](), alg)
    body = json.loads(render_targets(inp([key], active_kid=key["kid"], pkcs11_uri=URI,
                                         issued_at=ISSUED), [])["signer.json"])
    assert list(body) == ["v", "iss", "alg", "kid", "pkcs11_uri", "mechanism", "host_hash",
                          "valid_from"]
    assert (body["mechanism"], body["host_hash"]) == (mechanism, host_hash)
    row = jose.algorithm(alg)
    how = next(m for m in row.sign_mechanisms if m.ckm == body["mechanism"])
    assert (how.host_hashes, row.hash_name if how.host_hashes else None) == \
        (host_hash is not None, host_hash)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"pkcs11_uri": "slot=1;id=01"}, "not an RFC 7512"),
        ({"pkcs11_uri": URI + "?pin-value=1234"}, "PIN"),
        ({"active_kid": "nope"}, "not in the published key set"),
    ],
)
def test_signer_lint(ec_keys: list[dict[str, str]], kw: dict[str, str], match: str) -> None:
    args = {"active_kid": ec_keys[0]["kid"], "pkcs11_uri": URI, "issued_at": ISSUED, **kw}
    with pytest.raises(TargetLintError, match=match):
        render_targets(inp(ec_keys, **args), ["generic"])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"issuer": "https://a b"}, "issuer"),
        ({"issuer": "https://x\n"}, "issuer"),
        ({"keyset": "Demo_API"}, "keyset name"),
        ({"clock_skew_seconds": 3600}, "clock skew"),
    ],
)
def test_input_lint(ec_keys: list[dict[str, str]], kw: dict[str, Any], match: str) -> None:
    with pytest.raises(TargetLintError, match=match):
        inp(ec_keys, **kw)


def test_unknown_consumer(ec_keys: list[dict[str, str]]) -> None:
    with pytest.raises(TargetLintError, match=r"unknown consumer type 'traefik'"):
        render_targets(inp(ec_keys), ["traefik"])


def test_yaml_quoting_survives_hostile_issuer(ec_keys: list[dict[str, str]]) -> None:
    issuer = 'https://x/"a":b#c\\d{e}[f]&g*h!i|j>k%l@m`'
    files = render_targets(inp(ec_keys, issuer=issuer), ["envoy", "istio"])
    assert (
        yaml.safe_load(files["envoy-jwt-authn.yaml"])["providers"]["demo-api"]["issuer"] == issuer
    )
    assert (
        next(yaml.safe_load_all(files["istio-request-authentication.yaml"]))["spec"]["jwtRules"][0][
            "issuer"] == issuer
    )

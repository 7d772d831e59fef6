"""Gateway and IdP files: each parses with a real parser, carries the fields its tool needs,
and refuses key sets its tool cannot use (with the reason)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from console.errors import TargetLintError
from console.exports import CONSUMER_TYPES, TargetInput, public_jwk, render_targets

ISSUER = "https://auth.example.com/realms/demo"
URI = "pkcs11:token=ceremony;id=%01%02;object=demo-api-2027q1;type=private"


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
    doc = yaml.safe_load(files["istio-request-authentication.yaml"])
    assert doc["apiVersion"] == "security.istio.io/v1"
    assert doc["kind"] == "RequestAuthentication"
    assert doc["metadata"]["name"] == "demo-api-jwt"
    (rule,) = doc["spec"]["jwtRules"]
    assert rule["issuer"] == ISSUER
    assert isinstance(rule["jwks"], str) and json.loads(rule["jwks"]) == jwks_of(rsa_keys)


def test_kong(rsa_keys: list[dict[str, str]]) -> None:
    files = render_targets(inp(rsa_keys), ["kong"])
    text = files["kong-deck.yaml"].decode()
    assert text.startswith("# Kong decK state")
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
    (plugin,) = doc["plugins"]
    assert plugin["name"] == "jwt" and plugin["config"]["key_claim_name"] == "kid"


@pytest.mark.parametrize(
    ("alg", "make"),
    [
        ("PS256", lambda: rsa.generate_private_key(65537, 2048).public_key()),
        ("ES384", lambda: ec.generate_private_key(ec.SECP384R1()).public_key()),
        ("EdDSA", lambda: ed25519.Ed25519PrivateKey.generate().public_key()),
    ],
)
def test_kong_refuses_unsupported_algorithms(alg: str, make: Any) -> None:
    with pytest.raises(TargetLintError, match=rf"Kong jwt plugin cannot verify {alg}"):
        render_targets(inp([public_jwk(make(), alg)]), ["kong"])


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
    with pytest.raises(TargetLintError, match=r"APIM accepts RSA keys only") as e:
        render_targets(inp(ec_keys[:1]), ["apim"])
    assert "ES256" in e.value.user_message()
    with pytest.raises(TargetLintError, match=r"Auth0 accepts RSA keys only"):
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
    with pytest.raises(TargetLintError, match=r"at most 2 credentials .* has 3"):
        render_targets(inp([*rsa_keys, third]), ["auth0"])


def test_one_refusal_means_no_files(ec_keys: list[dict[str, str]]) -> None:
    """render_targets lints every target before rendering: envoy fits, apim does not."""
    with pytest.raises(TargetLintError):
        render_targets(inp(ec_keys), ["envoy", "apim"])


def test_base_files_readme_and_signer(ec_keys: list[dict[str, str]]) -> None:
    files = render_targets(
        inp(ec_keys, active_kid=ec_keys[1]["kid"], pkcs11_uri=URI),
        (*CONSUMER_TYPES[:4], "aws-apigw", "generic"),
    )
    assert json.loads(files["jwks.json"]) == jwks_of(ec_keys)
    for key in ec_keys:
        pem = files[f"keys/{key['kid']}.pem"]
        assert isinstance(load_pem_public_key(pem), ec.EllipticCurvePublicKey)
    signer = json.loads(files["signer.json"])
    assert signer == {
        "v": 1,
        "keyset": "demo-api",
        "kid": ec_keys[1]["kid"],
        "alg": "ES256",
        "pkcs11_uri": URI,
    }
    readme = files["README.txt"].decode()
    for name in files:
        if name != "README.txt":
            assert f"\n{name}: " in readme, name
    assert "AWS API Gateway" in readme and "jwks.jwt: the signed bundle" in readme


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"pkcs11_uri": "slot=1;id=01"}, "not an RFC 7512"),
        ({"pkcs11_uri": URI + "?pin-value=1234"}, "PIN"),
        ({"active_kid": "nope"}, "not in the published key set"),
    ],
)
def test_signer_lint(ec_keys: list[dict[str, str]], kw: dict[str, str], match: str) -> None:
    args = {"active_kid": ec_keys[0]["kid"], "pkcs11_uri": URI, **kw}
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
        yaml.safe_load(files["istio-request-authentication.yaml"])["spec"]["jwtRules"][0]["issuer"]
        == issuer
    )

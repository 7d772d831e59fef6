"""`apache-openidc.conf`: mod_auth_openidc as an OAuth 2.0 resource server for one keyset.

Rendered here without Apache; tests/gateway/test_apache_target.py runs it in a real one."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from console.errors import TargetLintError
from console.exports import TargetInput, public_jwk
from console.exports.targets import apache

ISSUER = "https://auth.example.com/realms/demo"
JWKS_URI = "https://keys.example.com/demo-api/jwks.json"


def inp(*algs: str, issuer: str = ISSUER) -> TargetInput:
    keys = []
    for alg in algs:
        if alg in ("RS256", "PS256"):
            keys.append(public_jwk(rsa.generate_private_key(65537, 2048).public_key(), alg))
        elif alg == "ES384":
            keys.append(public_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), alg))
        elif alg == "EdDSA":
            keys.append(public_jwk(ed25519.Ed25519PrivateKey.generate().public_key(), alg))
        else:
            keys.append(public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), alg))
    return TargetInput.build(keyset="demo-api", issuer=issuer, keys=keys)


def directives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_renders_a_resource_server_for_the_keyset() -> None:
    keys = inp("ES256", "ES256", "RS256")
    (out,) = apache.render(keys, jwks_uri=JWKS_URI, location="/api/", audience="orders",
                           refresh_interval=600)
    assert out.name == "apache-openidc.conf"
    text = out.data.decode("ascii")
    assert text.startswith("# mod_auth_openidc OAuth 2.0 resource server for keyset demo-api\n")
    assert "# Goes to: /etc/apache2/conf-available/demo-api-openidc.conf" in text
    assert directives(text) == [
        f'OIDCOAuthVerifyJwksUri "{JWKS_URI}"',
        "OIDCJWKSRefreshInterval 600",
        'OIDCCryptoPassphrase "exec:/bin/sh -c \\"head -c 32 /dev/urandom | base64\\""',
        '<Location "/api/">',
        "AuthType oauth20",
        "<RequireAll>",
        "Require valid-user",
        f'Require claim "iss:{ISSUER}"',
        'Require claim "aud:orders"',
        "</RequireAll>",
        "</Location>",
    ]
    for key in keys.keys:  # every published kid is listed for the operator
        assert re.search(rf"^#   {re.escape(key['kid'])} {key['alg']}$", text, re.MULTILINE)
    assert "FILL IN" not in text
    assert "jwks.json" in out.readme and "Apache" in out.readme


def test_without_a_jwks_uri_a_placeholder_the_operator_fills_in() -> None:
    (out,) = apache.render(inp("ES256"))
    text = out.data.decode()
    assert f'OIDCOAuthVerifyJwksUri "{apache.JWKS_URI_PLACEHOLDER}"' in text
    assert "# FILL IN:" in text
    assert "OIDCJWKSRefreshInterval 3600" in text
    assert '<Location "/">' in text
    assert "aud:" not in text
    assert "set OIDCOAuthVerifyJwksUri" in out.readme


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384"])
def test_algorithms_cjose_verifies(alg: str) -> None:
    apache.lint(inp(alg))


def test_refuses_eddsa() -> None:
    with pytest.raises(TargetLintError, match="EdDSA") as e:
        apache.render(inp("ES256", "EdDSA"))
    assert "cjose" in str(e.value)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"jwks_uri": "http://keys.example.com/jwks.json"}, "https"),
        ({"jwks_uri": 'https://keys.example.com/"x'}, "https"),
        ({"jwks_uri": "https://keys.example.com/a b"}, "https"),
        ({"location": "api"}, "location"),
        ({"location": '/api"'}, "location"),
        ({"audience": "two words"}, "audience"),
        ({"audience": 'a"b'}, "audience"),
        ({"refresh_interval": 299}, "300"),
        ({"refresh_interval": 3600 * 24 * 366}, "refresh"),
    ],
)
def test_refuses_values_the_file_cannot_carry(options: dict[str, object], words: str) -> None:
    with pytest.raises(TargetLintError, match=words):
        apache.render(inp("ES256"), **options)  # type: ignore[arg-type]


def test_refuses_an_issuer_that_breaks_the_quoting() -> None:
    with pytest.raises(TargetLintError, match="issuer"):
        apache.lint(inp("ES256", issuer='https://x.example/"a'))

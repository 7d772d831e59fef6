"""Public JWKs: RFC 7638 thumbprints, the member allowlist, algorithm binding, JWK Sets, PEM."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk as jwcrypto_jwk

from console.errors import ExportError
from console.exports import build_jwks, jwk_to_pem, public_jwk, sanitize_public_jwk, thumbprint
from console.exports._keys import PRIVATE_MEMBERS, _roca_fingerprint

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
RFC7638 = VECTORS / "rfc7638.json"


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "RS256": rsa.generate_private_key(65537, 2048).public_key(),
        "PS256": rsa.generate_private_key(65537, 3072).public_key(),
        "ES256": ec.generate_private_key(ec.SECP256R1()).public_key(),
        "ES384": ec.generate_private_key(ec.SECP384R1()).public_key(),
        "EdDSA": ed25519.Ed25519PrivateKey.generate().public_key(),
    }


@pytest.fixture(scope="module")
def jwks(keys: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {alg: public_jwk(key, alg) for alg, key in keys.items()}


def test_rfc7638_thumbprint_known_answer() -> None:
    vector = json.loads(RFC7638.read_text())
    assert thumbprint(vector["jwk"]) == vector["thumbprint_sha256_b64url"]
    # The same value through the hex form, so both encodings of the vector are used.
    raw = base64.urlsafe_b64decode(vector["thumbprint_sha256_b64url"] + "=")
    assert raw.hex() == vector["thumbprint_sha256_hex"]


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "EdDSA"])
def test_public_jwk_members_and_kid(jwks: dict[str, dict[str, str]], alg: str) -> None:
    jwk = jwks[alg]
    expected = {
        "RS256": {"n", "e"},
        "PS256": {"n", "e"},
        "ES256": {"crv", "x", "y"},
        "ES384": {"crv", "x", "y"},
        "EdDSA": {"crv", "x"},
    }[alg]
    assert set(jwk) == {"kty", "use", "alg", "kid"} | expected
    assert jwk["use"] == "sig" and jwk["alg"] == alg
    # jwcrypto computes the RFC 7638 thumbprint independently.
    assert jwk["kid"] == jwcrypto_jwk.JWK(**jwk).thumbprint()
    assert sanitize_public_jwk(jwk) == jwk


def test_jwk_to_pem_round_trips(keys: dict[str, Any], jwks: dict[str, dict[str, str]]) -> None:
    for alg, key in keys.items():
        loaded = load_pem_public_key(jwk_to_pem(jwks[alg]).encode())
        assert loaded == key
    assert jwk_to_pem(jwks["RS256"]).startswith("-----BEGIN PUBLIC KEY-----\n")


@pytest.mark.parametrize(
    ("alg", "key_alg"),
    [("ES384", "ES256"), ("ES256", "ES384"), ("RS256", "EdDSA"), ("EdDSA", "ES256")],
    ids=["P-256 as ES384", "P-384 as ES256", "RSA as EdDSA", "Ed25519 as ES256"],
)
def test_alg_must_fit_the_key(keys: dict[str, Any], alg: str, key_alg: str) -> None:
    with pytest.raises(ExportError, match=r"alg|curve"):
        public_jwk(keys[key_alg], alg)


@pytest.mark.parametrize("alg", ["HS256", "none", "RS384", "ES512", "RSA-OAEP", ""])
def test_alg_outside_policy_refused(keys: dict[str, Any], alg: str) -> None:
    with pytest.raises(ExportError, match=r"not allowed"):
        public_jwk(keys["RS256"], alg)


def test_small_rsa_refused() -> None:
    small = rsa.generate_private_key(65537, 1024).public_key()
    with pytest.raises(ExportError, match=r"1024 bits, fewer than 2048"):
        public_jwk(small, "RS256")


def _with_kid(jwk: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in jwk.items() if k != "kid"}
    out["kid"] = thumbprint(out)
    return out


@pytest.mark.parametrize(
    ("e", "reason"), [(1, "exponent 1"), (65536, "exponent 65536"), (2, "exponent 2")]
)
def test_bad_rsa_exponent_refused(jwks: dict[str, dict[str, str]], e: int, reason: str) -> None:
    jwk = dict(jwks["RS256"])
    jwk["e"] = base64.urlsafe_b64encode(e.to_bytes(3, "big").lstrip(b"\0")).rstrip(b"=").decode()
    with pytest.raises(ExportError, match=reason):
        sanitize_public_jwk(_with_kid(jwk))


def test_kid_must_be_thumbprint(jwks: dict[str, dict[str, str]]) -> None:
    jwk = dict(jwks["ES256"], kid="2011-04-29")
    with pytest.raises(ExportError, match=r"not its RFC 7638 thumbprint"):
        sanitize_public_jwk(jwk)
    missing = {k: v for k, v in jwks["ES256"].items() if k != "kid"}
    with pytest.raises(ExportError, match=r"thumbprint"):
        sanitize_public_jwk(missing)


@pytest.mark.parametrize("member", ["x5c", "key_ops", "ext", "state", "kid2"])
def test_unknown_member_refused_not_dropped(jwks: dict[str, dict[str, str]], member: str) -> None:
    with pytest.raises(ExportError, match=rf"unknown member '{member}'"):
        sanitize_public_jwk(dict(jwks["ES256"], **{member: "x"}))


@pytest.mark.parametrize("use", ["enc", None])
def test_use_must_be_sig(jwks: dict[str, dict[str, str]], use: str | None) -> None:
    jwk = dict(jwks["EdDSA"])
    if use is None:
        del jwk["use"]
    else:
        jwk["use"] = use
    with pytest.raises(ExportError, match=r"use"):
        sanitize_public_jwk(jwk)


def test_ec_point_not_on_curve_refused(jwks: dict[str, dict[str, str]]) -> None:
    jwk = dict(jwks["ES256"])
    y = bytearray(base64.urlsafe_b64decode(jwk["y"] + "="))
    y[-1] ^= 1
    jwk["y"] = base64.urlsafe_b64encode(bytes(y)).rstrip(b"=").decode()
    with pytest.raises(ExportError, match=r"not on P-256"):
        sanitize_public_jwk(_with_kid(jwk))


def test_padded_base64_refused(jwks: dict[str, dict[str, str]]) -> None:
    jwk = dict(jwks["EdDSA"])
    jwk["x"] += "="
    with pytest.raises(ExportError, match=r"base64url"):
        sanitize_public_jwk(jwk)


def test_build_jwks(jwks: dict[str, dict[str, str]]) -> None:
    keys = [jwks["ES256"], jwks["RS256"]]
    assert build_jwks(keys) == {"keys": keys}
    with pytest.raises(ExportError, match=r"duplicate kid"):
        build_jwks([jwks["ES256"], jwks["RS256"], dict(jwks["ES256"])])
    with pytest.raises(ExportError, match=r"empty"):
        build_jwks([])
    # jwcrypto reads the set back with every key.
    parsed = jwcrypto_jwk.JWKSet.from_json(json.dumps(build_jwks(list(jwks.values()))))
    assert {k.export_public(as_dict=True)["kid"] for k in parsed} == {
        j["kid"] for j in jwks.values()
    }


def test_generated_keys_do_not_match_roca(keys: dict[str, Any]) -> None:
    for alg in ("RS256", "PS256"):
        assert not _roca_fingerprint(keys[alg].public_numbers().n)


_private_member = st.sampled_from(sorted(PRIVATE_MEMBERS))
_b64 = st.binary(min_size=0, max_size=64).map(
    lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
)


@settings(max_examples=200, deadline=None)
@given(
    alg=st.sampled_from(["RS256", "PS256", "ES256", "ES384", "EdDSA"]),
    injected=st.dictionaries(_private_member, _b64 | st.just(""), min_size=1, max_size=8),
    through=st.sampled_from(["sanitize", "build_jwks", "jwk_to_pem"]),
)
def test_private_members_always_refused(
    jwks: dict[str, dict[str, str]], alg: str, injected: dict[str, str], through: str
) -> None:
    jwk = {**jwks[alg], **injected}
    with pytest.raises(ExportError, match=r"private member"):
        if through == "sanitize":
            sanitize_public_jwk(jwk)
        elif through == "build_jwks":
            build_jwks([jwks["ES256"] if alg != "ES256" else jwks["RS256"], jwk])
        else:
            jwk_to_pem(jwk)

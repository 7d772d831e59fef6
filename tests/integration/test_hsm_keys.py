"""Key generation, audit, signing, inventory, destroy and URIs on real SoftHSM2 tokens.

Every test runs twice (`hsm_target`): SoftHSM2 loaded directly, and SoftHSM2 behind
`p11-kit server` reached through `p11-kit-client.so`. Signatures are checked with
`cryptography` and, as compact JWS, with jwcrypto: libraries we did not write.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwcrypto import jwk, jws
from jwcrypto.common import base64url_encode

from console.errors import (
    HsmError,
    MechanismNotSupportedError,
    ObjectExistsError,
    ObjectNotFoundError,
    PinIncorrectError,
    TokenNotFoundError,
)
from console.hsm import ALGORITHMS, GeneratedKey, Hsm, PinState
from tests.integration.conftest import HsmTarget
from tests.softhsm import make_token

pytestmark = pytest.mark.hsm

RSA_TEST_BITS = 2048  # speed; the default (3072) and 4096 are covered by the slow test


def _bits(alg: str) -> int | None:
    return RSA_TEST_BITS if alg in ("RS256", "PS256") else None


def verify_with_cryptography(public_key: object, alg: str, data: bytes, sig: bytes) -> None:
    """Independent check: raises cryptography.exceptions.InvalidSignature when wrong."""
    if alg == "RS256":
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256":
        assert isinstance(public_key, rsa.RSAPublicKey)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        public_key.verify(sig, data, pss, hashes.SHA256())
    elif alg in ("ES256", "ES384"):
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        size = 32 if alg == "ES256" else 48
        assert len(sig) == 2 * size  # raw r||s, as JWS wants
        der = encode_dss_signature(
            int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
        )
        h = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
        public_key.verify(der, data, ec.ECDSA(h))
    else:
        assert isinstance(public_key, ed25519.Ed25519PublicKey)
        public_key.verify(sig, data)


def compact_jws(hsm: Hsm, key: GeneratedKey, payload: bytes) -> str:
    header = {"alg": key.alg, "kid": key.cka_id.hex(), "typ": "JWT"}
    h = base64url_encode(json.dumps(header, separators=(",", ":")).encode())
    p = base64url_encode(payload)
    sig = hsm.sign(key.cka_id, key.alg, f"{h}.{p}".encode("ascii"))
    return f"{h}.{p}.{base64url_encode(sig)}"


def verify_with_jwcrypto(token: str, key: GeneratedKey) -> bytes:
    verifier = jws.JWS()
    verifier.allowed_algs = [key.alg]
    verifier.deserialize(token, key=jwk.JWK.from_pyca(key.public_key))  # raises when invalid
    payload: bytes = verifier.payload
    return payload


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_keygen_audit_sign_and_jws(hsm_target: HsmTarget, hsm: Hsm, alg: str) -> None:
    assert hsm.network_path is hsm_target.network
    if hsm_target.network and alg == "EdDSA":
        support = hsm.mechanisms()["EdDSA"]
        assert not support.available
        assert "p11-kit network path does not carry Ed25519" in support.note
        with pytest.raises(MechanismNotSupportedError, match="EdDSA: not offered"):
            hsm.generate_keypair(alg, label="ed-net", rsa_bits=None)
        assert hsm.inventory() == []  # refused before anything was made
        return

    key = hsm.generate_keypair(alg, label=f"key-{alg}", rsa_bits=_bits(alg))

    assert key.alg == alg and key.label == f"key-{alg}" and len(key.cka_id) == 16
    audit = key.audit
    assert audit.problems() == ()
    assert (audit.sensitive, audit.always_sensitive, audit.never_extractable, audit.local) == (
        True,
        True,
        True,
        True,
    )
    assert (audit.extractable, audit.decrypt, audit.unwrap, audit.derive) == (
        False,
        False,
        False,
        False,
    )
    assert audit.private_value_readable is False and audit.self_test is True

    # The attributes again, read back by inventory in a separate search.
    private = [o for o in hsm.find(key.cka_id) if o.object_class == "private key"]
    assert len(private) == 1
    for name, want in (
        ("SENSITIVE", True),
        ("EXTRACTABLE", False),
        ("NEVER_EXTRACTABLE", True),
        ("ALWAYS_SENSITIVE", True),
        ("LOCAL", True),
        ("SIGN", True),
        ("DECRYPT", False),
        ("UNWRAP", False),
        ("DERIVE", False),
    ):
        assert private[0].attribute(name) is want, name

    data = b"ceremony self-check \x00\xff"
    sig = hsm.sign(key.cka_id, alg, data)
    verify_with_cryptography(key.public_key, alg, data, sig)
    verify_with_cryptography(hsm.public_key(key.cka_id), alg, data, sig)

    payload = b'{"iss":"https://issuer.example","sub":"ceremony"}'
    assert verify_with_jwcrypto(compact_jws(hsm, key, payload), key) == payload

    if hsm_target.network and alg == "PS256":
        # p11-kit 0.24 cannot forward CKM_SHA256_RSA_PKCS_PSS: the host-hash fallback did this.
        assert "CKM_RSA_PKCS_PSS on a host SHA-256 digest" in str(
            hsm.mechanisms()["PS256"].sign_mechanism
        )


def test_tampered_jws_is_rejected_by_jwcrypto(hsm: Hsm) -> None:
    key = hsm.generate_keypair("ES256", label="tamper")
    token = compact_jws(hsm, key, b"payload")
    head, _, sig = token.split(".")
    forged = f"{head}.{base64url_encode(b'other')}.{sig}"
    with pytest.raises(jws.InvalidJWSSignature):
        verify_with_jwcrypto(forged, key)


@pytest.mark.slow
@pytest.mark.parametrize("bits", [3072, 4096])
def test_large_rsa_keys(
    direct_target: HsmTarget, hsm_factory: Callable[..., Hsm], bits: int
) -> None:
    hsm = hsm_factory(direct_target)
    key = hsm.generate_keypair("PS256", label=f"rsa-{bits}", rsa_bits=bits)
    assert isinstance(key.public_key, rsa.RSAPublicKey) and key.public_key.key_size == bits
    assert key.audit.problems() == ()
    sig = hsm.sign(key.cka_id, "PS256", b"x")
    assert len(sig) == bits // 8
    verify_with_cryptography(key.public_key, "PS256", b"x", sig)


def test_default_rsa_size_is_3072(
    direct_target: HsmTarget, hsm_factory: Callable[..., Hsm]
) -> None:
    hsm = hsm_factory(direct_target)
    key = hsm.generate_keypair("RS256", label="default-size")
    assert isinstance(key.public_key, rsa.RSAPublicKey) and key.public_key.key_size == 3072


def test_label_and_id_collisions_are_refused(hsm: Hsm) -> None:
    first = hsm.generate_keypair("ES256", label="taken")
    before = hsm.inventory()
    with pytest.raises(ObjectExistsError, match="labelled 'taken'"):
        hsm.generate_keypair("ES384", label="taken")
    with pytest.raises(ObjectExistsError, match=first.cka_id.hex()):
        hsm.generate_keypair("ES256", label="fresh-label", cka_id=first.cka_id)
    assert hsm.inventory() == before


def test_bad_parameters_are_refused_before_the_token(hsm: Hsm) -> None:
    with pytest.raises(HsmError, match="RSA key size 1024"):
        hsm.generate_keypair("RS256", label="small", rsa_bits=1024)
    with pytest.raises(HsmError, match="no RSA size"):
        hsm.generate_keypair("ES256", label="ec", rsa_bits=2048)
    with pytest.raises(MechanismNotSupportedError, match="unknown JWS algorithm"):
        hsm.generate_keypair("HS256", label="hmac")
    with pytest.raises(HsmError, match="printable"):
        hsm.generate_keypair("ES256", label="bad\nlabel")
    assert hsm.inventory() == []


def test_inventory_find_and_key_type_binding(hsm: Hsm) -> None:
    ec_key = hsm.generate_keypair("ES384", label="inv-ec")
    rsa_key = hsm.generate_keypair("RS256", label="inv-rsa", rsa_bits=RSA_TEST_BITS)
    objects = hsm.inventory()
    summary = sorted((o.label, o.object_class, o.key_type, o.size) for o in objects)
    assert summary == [
        ("inv-ec", "private key", "EC", "P-384"),
        ("inv-ec", "public key", "EC", "P-384"),
        ("inv-rsa", "private key", "RSA", "2048-bit"),
        ("inv-rsa", "public key", "RSA", "2048-bit"),
    ]
    assert {o.cka_id for o in hsm.find(ec_key.cka_id)} == {ec_key.cka_id}
    assert hsm.find(b"\x00" * 16) == []
    with pytest.raises(HsmError, match="cannot sign RS256"):
        hsm.sign(ec_key.cka_id, "RS256", b"x")
    with pytest.raises(ObjectNotFoundError):
        hsm.sign(b"\x01" * 16, "ES256", b"x")
    assert hsm.sign(rsa_key.cka_id, "RS256", b"x")


def test_destroy_proves_the_keypair_is_gone(hsm: Hsm) -> None:
    keep = hsm.generate_keypair("ES256", label="keep")
    doomed = hsm.generate_keypair("ES256", label="doomed")
    hsm.sign(doomed.cka_id, "ES256", b"warm the handle cache")
    hsm.destroy_keypair(doomed.cka_id)
    assert hsm.find(doomed.cka_id) == []
    assert {o.label for o in hsm.inventory()} == {"keep"}
    with pytest.raises(ObjectNotFoundError):
        hsm.sign(doomed.cka_id, "ES256", b"x")  # no stale cached handle
    with pytest.raises(ObjectNotFoundError, match="nothing was destroyed"):
        hsm.destroy_keypair(doomed.cka_id)
    assert hsm.sign(keep.cka_id, "ES256", b"x")


_URI = re.compile(
    r"^pkcs11:([A-Za-z0-9\-._~:\[\]@!$'()*+,%]+=[A-Za-z0-9\-._~:\[\]@!$'()*+,%]*;?)+$"
)


def test_rfc7512_uris(hsm_target: HsmTarget, hsm_factory: Callable[..., Hsm]) -> None:
    hsm = hsm_factory(hsm_target)
    key = hsm.generate_keypair("ES256", label="api prod;2027/q1 é")
    info = hsm.token_info()
    for uri in (hsm.token_uri(), hsm.key_uri(key.cka_id, key.label)):
        assert _URI.match(uri), uri  # RFC 7512 path characters only
    attrs = dict(part.split("=", 1) for part in hsm.key_uri(key.cka_id, key.label)[7:].split(";"))
    assert unquote(attrs["token"]) == info.label
    assert unquote(attrs["serial"]) == info.serial
    assert unquote(attrs["manufacturer"]) == info.manufacturer
    assert unquote(attrs["model"]) == info.model
    assert unquote(attrs["object"]) == "api prod;2027/q1 é"
    assert attrs["id"] == "".join(f"%{b:02X}" for b in key.cka_id)
    assert unquote(attrs["id"], encoding="latin-1").encode("latin-1") == key.cka_id
    assert attrs["type"] == "private"


def test_token_info_login_logout_and_pin(
    hsm_target: HsmTarget, hsm_factory: Callable[..., Hsm]
) -> None:
    hsm = hsm_factory(hsm_target, login=False)
    info = hsm.token_info()
    assert info.label == hsm_target.label and info.pin_state is PinState.OK
    assert "TOKEN_INITIALIZED" in info.flags and info.manufacturer == "SoftHSM project"
    with pytest.raises(HsmError, match="not logged in"):
        hsm.generate_keypair("ES256", label="nope")
    with pytest.raises(PinIncorrectError):
        hsm.login(b"wrong-pin")
    assert hsm.login_calls == 1 and not hsm.logged_in
    hsm.login(hsm_target.user_pin)
    key = hsm.generate_keypair("ES256", label="pin-test")
    hsm.set_pin(hsm_target.user_pin, b"new-pin-2222")
    hsm.logout()
    assert [o.object_class for o in hsm.inventory()] == ["public key"]  # private hidden again
    with pytest.raises(PinIncorrectError):
        hsm.login(hsm_target.user_pin)
    hsm.login(b"new-pin-2222")
    assert hsm.sign(key.cka_id, "ES256", b"x")
    assert "new-pin" not in repr(hsm) and "pin-2222" not in repr(hsm)


def test_open_refuses_unknown_or_ambiguous_tokens(hsm_target: HsmTarget) -> None:
    with pytest.raises(TokenNotFoundError, match="tokens seen:") as err:
        Hsm.open(hsm_target.module, token_label="no-such-token")
    assert repr(hsm_target.label) in str(err.value)
    with pytest.raises(TokenNotFoundError):
        Hsm.open(hsm_target.module, token_label=hsm_target.label, token_serial="0000")


def test_same_label_twice_needs_the_serial(
    session_dir: Path, hsm_factory: Callable[..., Hsm]
) -> None:
    label = f"twin-{uuid.uuid4().hex[:8]}"
    conf = Path(os.environ["SOFTHSM2_CONF"])
    first = make_token(session_dir / "softhsm", label, conf=conf)
    make_token(session_dir / "softhsm", label, conf=conf)
    with pytest.raises(TokenNotFoundError, match="2 tokens match") as err:
        Hsm.open(first.module, token_label=label)
    serials = re.findall(re.escape(repr(label)) + r" \(serial (\w+)\)", str(err.value))
    assert len(set(serials)) == 2
    target = HsmTarget("direct", first.module, first, None)
    for serial in serials:
        hsm = hsm_factory(target, login=False, token_serial=serial)
        assert hsm.token_info().serial == serial
        hsm.close()

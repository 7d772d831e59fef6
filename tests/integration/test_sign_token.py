"""The reference signer on a real token (SoftHSM2 directly and behind `p11-kit server`).

For each algorithm and each of its `console.jose` mechanisms, a key made on a fresh token is
named by a signer.json as the exports write it; `sign_token_on` opens the token through the
module, logs in with the PIN and signs with exactly the mechanism named. PyJWT and jwcrypto
(libraries we did not write) verify the token against the key's public JWK. A mechanism the
token does not offer (p11-kit cannot carry CKM_SHA256_RSA_PKCS_PSS) is refused by name, never
swapped for another; a signer.json naming another key, label, token or a wrong PIN signs
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt

from console import jose
from console.errors import MechanismNotSupportedError, PinIncorrectError, SignerError
from console.exports.jwks import public_jwk
from console.hsm import Hsm
from console.hsm._pkcs11 import Modules
from console.hsm._signing import pkcs11_mechanism
from console.signing import SignerFile, sign_token_on
from tests.integration.conftest import HsmTarget

pytestmark = pytest.mark.hsm

ISSUER = "https://demo.example/api"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def signer_bytes(hsm: Hsm, alg: str, cka_id: bytes, label: str, kid: str,
                 how: jose.SignMechanism, **changes: Any) -> bytes:
    spec = jose.algorithm(alg)
    body = {"v": 1, "iss": ISSUER, "alg": alg, "kid": kid,
            "pkcs11_uri": hsm.key_uri(cka_id, label), "mechanism": how.ckm,
            "host_hash": spec.hash_name if how.host_hashes else None,
            "valid_from": (now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    body.update(changes)
    return json.dumps(body).encode()


CASES = [(alg, how) for alg in jose.ALGORITHMS for how in jose.algorithm(alg).sign_mechanisms]


@pytest.mark.parametrize(("alg", "how"), CASES, ids=[f"{a}-{h.ckm}" for a, h in CASES])
def test_sign_token_signs_with_the_named_mechanism_and_verifies_elsewhere(
        alg: str, how: jose.SignMechanism, hsm_target: HsmTarget,
        hsm_factory: Callable[..., Hsm]) -> None:
    officer = hsm_factory(hsm_target)  # the ceremony side: makes the key
    if not officer.mechanisms()[alg].available:  # p11-kit 0.24 does not carry Ed25519 at all
        assert hsm_target.network and alg == "EdDSA"
        return
    label = f"sign-token-{alg.lower()}"
    made = officer.generate_keypair(alg, label=label,
                                    rsa_bits=2048 if jose.algorithm(alg).is_rsa else None)
    jwk = public_jwk(made.public_key, alg)
    signer = SignerFile.from_bytes(signer_bytes(officer, alg, made.cka_id, label, jwk["kid"],
                                                how))
    offered = pkcs11_mechanism(how.name) in officer._token.offered
    officer.logout()  # one login per token and process: the signing service logs in itself
    claims = {"sub": "user-17", "aud": "orders"}
    if not offered:
        with pytest.raises(MechanismNotSupportedError, match=how.ckm):
            sign_token_on(hsm_target.module, signer, bytearray(hsm_target.user_pin), claims,
                          now=now())
        assert hsm_target.network and how.ckm == "CKM_SHA256_RSA_PKCS_PSS"
        return
    token = sign_token_on(hsm_target.module, signer, bytearray(hsm_target.user_pin), claims,
                          now=now())
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": jwk["kid"], "typ": "JWT"}
    decoded = jwt.decode(token, jwt.PyJWK(jwk), algorithms=[alg], audience="orders",
                         issuer=ISSUER)
    assert decoded["sub"] == "user-17" and decoded["exp"] - decoded["iat"] == 300
    checked = jwcrypto_jwt.JWT(jwt=token, key=jwcrypto_jwk.JWK(**jwk),
                               algs=[alg], check_claims={"iss": ISSUER, "aud": "orders"})
    assert json.loads(checked.claims)["sub"] == "user-17"


@pytest.fixture
def es256_key(hsm_target: HsmTarget,
              hsm_factory: Callable[..., Hsm]) -> tuple[Hsm, bytes, str, str, str]:
    """(a logged-out handle, the CKA_ID, label and kid of one key, and another key's kid)."""
    officer = hsm_factory(hsm_target)
    made = officer.generate_keypair("ES256", label="signer-es256")
    other = officer.generate_keypair("ES256", label="signer-other")
    officer.logout()
    return (officer, made.cka_id, "signer-es256", public_jwk(made.public_key, "ES256")["kid"],
            public_jwk(other.public_key, "ES256")["kid"])


ECDSA = jose.SignMechanism("ECDSA", host_hashes=True)


def test_a_signer_json_naming_another_key_or_token_signs_nothing(
        hsm_target: HsmTarget, es256_key: tuple[Hsm, bytes, str, str, str]) -> None:
    officer, cka_id, label, kid, other_kid = es256_key
    pin = hsm_target.user_pin

    def attempt(body: bytes) -> str:
        return sign_token_on(hsm_target.module, SignerFile.from_bytes(body), bytearray(pin),
                             now=now())

    # The kid of one key with the URI of another: the thumbprint check refuses.
    with pytest.raises(SignerError, match=f"has kid {kid}, not {other_kid}"):
        attempt(signer_bytes(officer, "ES256", cka_id, label, other_kid, ECDSA))
    # The right id under another label.
    with pytest.raises(SignerError, match="labelled 'signer-es256', not 'renamed'"):
        attempt(signer_bytes(officer, "ES256", cka_id, "renamed", kid, ECDSA))
    # An id the token does not hold (a destroyed key).
    with pytest.raises(SignerError, match="holds no private key"):
        attempt(signer_bytes(officer, "ES256", b"\x01" * 16, label, kid, ECDSA))
    # Another manufacturer in the URI: the token opened by label and serial is not the one.
    uri = officer.key_uri(cka_id, label).replace("manufacturer=SoftHSM%20project",
                                                 "manufacturer=Acme")
    with pytest.raises(SignerError, match="manufacturer='Acme'"):
        attempt(signer_bytes(officer, "ES256", cka_id, label, kid, ECDSA, pkcs11_uri=uri))
    # And the right file signs.
    assert attempt(signer_bytes(officer, "ES256", cka_id, label, kid, ECDSA)).count(".") == 2


def test_a_wrong_pin_is_refused_and_every_pin_buffer_is_wiped(
        hsm_target: HsmTarget, es256_key: tuple[Hsm, bytes, str, str, str]) -> None:
    officer, cka_id, label, kid, _ = es256_key
    signer = SignerFile.from_bytes(signer_bytes(officer, "ES256", cka_id, label, kid, ECDSA))
    wrong = bytearray(b"not-the-pin")
    with pytest.raises(PinIncorrectError):
        sign_token_on(hsm_target.module, signer, wrong, now=now())
    assert wrong == bytearray()
    right = bytearray(hsm_target.user_pin)
    sign_token_on(hsm_target.module, signer, right, now=now())
    assert right == bytearray()


def test_a_future_signer_json_opens_nothing(
        hsm_target: HsmTarget, es256_key: tuple[Hsm, bytes, str, str, str]) -> None:
    officer, cka_id, label, kid, _ = es256_key
    later = (now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    signer = SignerFile.from_bytes(signer_bytes(officer, "ES256", cka_id, label, kid, ECDSA,
                                                valid_from=later))
    handles = Modules.open_handles(hsm_target.module)
    with pytest.raises(SignerError, match=f"valid from {later}"):
        sign_token_on(hsm_target.module, signer, bytearray(hsm_target.user_pin), now=now())
    assert Modules.open_handles(hsm_target.module) == handles

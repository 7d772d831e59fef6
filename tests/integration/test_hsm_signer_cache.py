"""Signing again with a key: what `Hsm.sign` keeps after a first signature loosens no check.

The first signature with a key, an algorithm and a mechanism resolves them once
(`console.hsm._signing.Signer`); later ones skip that work (issue 16's overhead row). Each test
warms that cache, then shows that a wrong algorithm or mechanism is still refused, that a token
error is still one console error (retried only after a lost session, as before), and that
logging out, closing the handle or destroying the key leaves nothing stale behind.
"""

from __future__ import annotations

from collections.abc import Callable

import pkcs11.exceptions as p11e
import pytest

from console import jose
from console.errors import HsmError, MechanismNotSupportedError, ObjectNotFoundError
from console.hsm import Hsm, verify_jws_signature
from tests.integration.conftest import HsmTarget
from tests.integration.faults import FaultyLib

pytestmark = pytest.mark.hsm


def _warm(hsm: Hsm, cka_id: bytes, alg: str) -> None:
    for _ in range(2):
        hsm.sign(cka_id, alg, b"warm")


def test_a_kept_signer_does_not_widen_what_a_key_signs(hsm: Hsm) -> None:
    key = hsm.generate_keypair("ES256", label="kept")
    _warm(hsm, key.cka_id, "ES256")
    for other in ("ES384", "RS256", "PS256"):
        with pytest.raises(HsmError, match=f"cannot sign {other}"):
            hsm.sign(key.cka_id, other, b"x")
    with pytest.raises(MechanismNotSupportedError):
        hsm.sign(key.cka_id, "HS256", b"x")
    rsa_way = jose.algorithm("RS256").sign_mechanisms[0]
    with pytest.raises(HsmError, match="cannot make ES256 signatures"):
        hsm.sign(key.cka_id, "ES256", b"x", mechanism=rsa_way)
    sig = hsm.sign(key.cka_id, "ES256", b"still signs")
    verify_jws_signature(key.public_key, "ES256", b"still signs", sig)


def test_a_token_error_on_a_kept_signer_is_one_console_error_and_not_retried(
    direct_target: HsmTarget,
) -> None:
    faulty = FaultyLib.load(direct_target.module)
    with Hsm.open(direct_target.module, token_label=direct_target.label, _lib=faulty) as hsm:
        hsm.login(direct_target.user_pin)
        key = hsm.generate_keypair("ES256", label="refused")
        _warm(hsm, key.cka_id, "ES256")
        signs = faulty.calls["C_Sign"]
        faulty.inject("C_Sign", p11e.FunctionFailed)
        with pytest.raises(HsmError, match="refused while signing with ES256") as err:
            hsm.sign(key.cka_id, "ES256", b"x")
        assert isinstance(err.value.__cause__, p11e.FunctionFailed)
        assert faulty.calls["C_Sign"] == signs + 1  # not a lost session: no retry
        assert hsm.sign(key.cka_id, "ES256", b"x")


def test_logout_close_and_destroy_drop_the_kept_signer(
    hsm_target: HsmTarget, hsm_factory: Callable[..., Hsm]
) -> None:
    hsm = hsm_factory(hsm_target)
    key = hsm.generate_keypair("ES256", label="dropped")
    _warm(hsm, key.cka_id, "ES256")
    hsm.logout()
    with pytest.raises(HsmError):  # the private key is out of sight of a public session
        hsm.sign(key.cka_id, "ES256", b"x")
    hsm.login(hsm_target.user_pin)
    _warm(hsm, key.cka_id, "ES256")
    hsm.destroy_keypair(key.cka_id)
    with pytest.raises(ObjectNotFoundError):
        hsm.sign(key.cka_id, "ES256", b"x")
    other = hsm.generate_keypair("ES256", label="other")
    _warm(hsm, other.cka_id, "ES256")
    hsm.close()
    with pytest.raises(HsmError, match="closed"):
        hsm.sign(other.cka_id, "ES256", b"x")

"""What SoftHSM2 cannot do on its own, injected around the real token (tests/integration/faults.py).

PIN lockout flags, a removed device, a session handle that dies: each case checks what the
officer sees (the error class and its words) and what reached the token (call counts).
"""

from __future__ import annotations

import pkcs11.exceptions as p11e
import pytest
from pkcs11 import TokenFlag

from console.errors import HsmUnavailableError, PinIncorrectError, PinLockedError
from console.hsm import Hsm, PinState, verify_jws_signature
from tests.integration.conftest import HsmTarget
from tests.integration.faults import FaultyLib

pytestmark = pytest.mark.hsm


@pytest.fixture
def faulty(direct_target: HsmTarget) -> FaultyLib:
    return FaultyLib.load(direct_target.module)


def _open(target: HsmTarget, lib: FaultyLib) -> Hsm:
    return Hsm.open(target.module, token_label=target.label, _lib=lib)


@pytest.mark.parametrize(
    ("flag", "state"),
    [
        (TokenFlag.USER_PIN_LOCKED, PinState.LOCKED),
        (TokenFlag.USER_PIN_FINAL_TRY, PinState.FINAL_TRY),
    ],
)
def test_locked_or_final_try_pin_is_never_tried(
    direct_target: HsmTarget, faulty: FaultyLib, flag: TokenFlag, state: PinState
) -> None:
    faulty.set_token_flags(flag)
    with _open(direct_target, faulty) as hsm:
        assert hsm.token_info().pin_state is state
        with pytest.raises(PinLockedError) as err:
            hsm.login(direct_target.user_pin)
        assert "did not try" in str(err.value) or "will not risk" in str(err.value)
        with pytest.raises(PinLockedError):
            hsm.login(b"any other pin")
        assert faulty.calls["C_Login"] == 0
        assert hsm.login_calls == 0 and not hsm.logged_in


def test_count_low_still_logs_in_once(direct_target: HsmTarget, faulty: FaultyLib) -> None:
    faulty.set_token_flags(TokenFlag.USER_PIN_COUNT_LOW)
    with _open(direct_target, faulty) as hsm:
        assert hsm.token_info().pin_state is PinState.COUNT_LOW
        hsm.login(direct_target.user_pin)
        assert faulty.calls["C_Login"] == 1 and hsm.logged_in


def test_token_reporting_pin_locked_at_login(direct_target: HsmTarget, faulty: FaultyLib) -> None:
    faulty.inject("C_Login", p11e.PinLocked)
    with _open(direct_target, faulty) as hsm:
        with pytest.raises(PinLockedError, match="locked"):
            hsm.login(direct_target.user_pin)
        assert faulty.calls["C_Login"] == 1  # one try, never retried


def test_wrong_pin_is_reported_and_not_retried(direct_target: HsmTarget, faulty: FaultyLib) -> None:
    with _open(direct_target, faulty) as hsm:
        with pytest.raises(PinIncorrectError) as err:
            hsm.login(b"secret-wrong-pin")
        assert "secret-wrong-pin" not in str(err.value)
        assert faulty.calls["C_Login"] == 1


def test_session_handle_invalid_reopens_and_finds_key_again(
    direct_target: HsmTarget, faulty: FaultyLib
) -> None:
    with _open(direct_target, faulty) as hsm:
        hsm.login(direct_target.user_pin)
        key = hsm.generate_keypair("ES256", label="survivor")
        hsm.sign(key.cka_id, "ES256", b"cached")  # the handle is cached now
        before = dict(faulty.calls)
        faulty.inject("C_Sign", p11e.SessionHandleInvalid)
        sig = hsm.sign(key.cka_id, "ES256", b"after the fault")
        verify_jws_signature(key.public_key, "ES256", b"after the fault", sig)
        after = {n: faulty.calls[n] - before.get(n, 0) for n in faulty.calls}
        assert after["C_OpenSession"] == 1  # a new session
        assert after["C_Login"] == 1  # logged in again with the held PIN
        assert after["C_FindObjects"] == 1  # the key found again by CKA_ID
        assert after["C_Sign"] == 2  # the failed call and its one retry
        assert after.get("C_Initialize", 0) == 0  # a session fault needs no module rescan
        assert hsm.sign(key.cka_id, "ES256", b"again")


def test_device_removed_once_recovers(direct_target: HsmTarget, faulty: FaultyLib) -> None:
    with _open(direct_target, faulty) as hsm:
        hsm.login(direct_target.user_pin)
        key = hsm.generate_keypair("ES384", label="blip")
        inits = faulty.calls["C_Initialize"]
        faulty.inject("C_Sign", p11e.DeviceRemoved)
        sig = hsm.sign(key.cka_id, "ES384", b"data")
        verify_jws_signature(key.public_key, "ES384", b"data", sig)
        assert faulty.calls["C_Initialize"] == inits + 1  # the module was rescanned (only user)


def test_device_gone_for_good_is_unavailable_until_back(
    direct_target: HsmTarget, faulty: FaultyLib
) -> None:
    with _open(direct_target, faulty) as hsm:
        hsm.login(direct_target.user_pin)
        key = hsm.generate_keypair("ES256", label="unplugged")
        faulty.unplug_at("C_Sign")
        with pytest.raises(HsmUnavailableError) as err:
            hsm.sign(key.cka_id, "ES256", b"data")
        text = str(err.value)
        assert text.startswith("HSM unavailable") and "ceremony reconcile" in text
        assert "check the cable" in text
        signs = faulty.calls["C_Sign"]
        with pytest.raises(HsmUnavailableError):
            hsm.inventory()
        assert faulty.calls["C_Sign"] == signs
        faulty.plug()  # the officer reconnects the token
        sig = hsm.sign(key.cka_id, "ES256", b"data")
        verify_jws_signature(key.public_key, "ES256", b"data", sig)


def test_interrupted_generation_is_not_repeated(
    direct_target: HsmTarget, faulty: FaultyLib
) -> None:
    with _open(direct_target, faulty) as hsm:
        hsm.login(direct_target.user_pin)
        faulty.inject("C_GenerateKeyPair", p11e.SessionHandleInvalid)
        with pytest.raises(HsmUnavailableError, match="outcome on the token is unknown") as err:
            hsm.generate_keypair("ES256", label="maybe")
        assert "ceremony reconcile" in str(err.value)
        assert faulty.calls["C_GenerateKeyPair"] == 1
        assert hsm.logged_in and hsm.inventory() == []  # usable again, nothing made


def test_interrupted_destroy_is_not_repeated(direct_target: HsmTarget, faulty: FaultyLib) -> None:
    with _open(direct_target, faulty) as hsm:
        hsm.login(direct_target.user_pin)
        key = hsm.generate_keypair("ES256", label="half-destroyed")
        faulty.inject("C_DestroyObject", p11e.DeviceError)
        with pytest.raises(HsmUnavailableError, match="unknown"):
            hsm.destroy_keypair(key.cka_id)
        assert faulty.calls["C_DestroyObject"] == 1
        assert hsm.find(key.cka_id) != []  # the console reports; reconcile decides


def test_pin_change_interrupted_needs_a_new_login(
    direct_target: HsmTarget, faulty: FaultyLib
) -> None:
    with _open(direct_target, faulty) as hsm:
        hsm.login(direct_target.user_pin)
        faulty.inject("C_SetPIN", p11e.SessionHandleInvalid)
        logins = faulty.calls["C_Login"]
        with pytest.raises(HsmUnavailableError, match="unknown"):
            hsm.set_pin(direct_target.user_pin, b"new-pin-3333")
        assert faulty.calls["C_Login"] == logins  # neither PIN was guessed on the token
        assert not hsm.logged_in

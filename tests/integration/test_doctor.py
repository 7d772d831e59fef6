"""`ceremony doctor` on real modules: SoftHSM2 directly, and SoftHSM2 behind p11-kit server."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console.hsm import Hsm, PinState
from console.hsm.doctor import (
    DoctorReport,
    ModuleReport,
    SlotReport,
    TokenReport,
    diagnose,
    render_text,
    softhsm_config,
)
from tests.integration.conftest import HsmTarget
from tests.softhsm import SoftHsmToken

pytestmark = pytest.mark.hsm

NOW = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)


def _token(report: DoctorReport, label: str) -> tuple[ModuleReport, SlotReport, TokenReport]:
    found = [
        (m, s)
        for m in report.modules
        for s in m.slots
        if s.token is not None and s.token.info.label == label
    ]
    assert len(found) == 1, f"token {label!r} not found exactly once"
    module, slot = found[0]
    assert slot.token is not None
    return module, slot, slot.token


def test_doctor_on_softhsm(make_softhsm_token: Callable[[str], SoftHsmToken]) -> None:
    token = make_softhsm_token("doctor")  # made after SoftHSM2 may have been loaded: rescanned
    report = diagnose([token.module], now=NOW)
    module, _, tok = _token(report, token.label)
    assert module.kind == "SoftHSM2" and module.loaded and module.problems == ()
    assert module.softhsm is not None
    assert module.softhsm.conf_path == os.environ["SOFTHSM2_CONF"]
    assert module.softhsm.source == "SOFTHSM2_CONF" and module.softhsm.token_dir_exists
    info = tok.info
    assert info.pin_state is PinState.OK and "TOKEN_INITIALIZED" in info.flags
    assert {a.alg: a.available for a in tok.algorithms} == dict.fromkeys(
        ("RS256", "PS256", "ES256", "ES384", "EdDSA"), True
    )
    text = render_text(report)
    assert "2027-01-15T10:00:00Z" in text
    assert f"token {token.label!r}" in text and "EdDSA: offered, signing with CKM_EDDSA" in text
    assert os.environ["SOFTHSM2_CONF"] in text
    assert report.healthy


@pytest.mark.network_hsm
def test_doctor_via_p11kit(net_target: HsmTarget, hsm_factory: Callable[..., Hsm]) -> None:
    hsm_target = net_target
    report = diagnose([hsm_target.module], now=NOW)
    module, _, tok = _token(report, hsm_target.label)
    assert module.kind == "p11-kit client (network HSM)"
    assert module.network is not None and module.network.socket_exists
    assert module.network.address == os.environ["P11_KIT_SERVER_ADDRESS"]
    algs = {a.alg: a for a in tok.algorithms}
    assert not algs["EdDSA"].available
    assert algs["EdDSA"].note == (
        "EdDSA: not offered by this token (the p11-kit network path does not carry Ed25519)"
    )
    assert "CKM_EDDSA" in algs["EdDSA"].missing
    assert algs["PS256"].available
    assert algs["PS256"].sign_mechanism == "CKM_RSA_PKCS_PSS on a host SHA-256 digest"
    assert all(algs[a].available for a in ("RS256", "ES256", "ES384"))
    text = render_text(report)
    assert "the p11-kit network path does not carry Ed25519" in text
    # The doctor and an open Hsm agree, and the doctor did not disturb the open session.
    hsm = hsm_factory(hsm_target)
    again = diagnose([hsm_target.module], now=NOW)
    assert {a.alg: a.available for a in _token(again, hsm_target.label)[2].algorithms} == {
        alg: s.available for alg, s in hsm.mechanisms().items()
    }
    assert hsm.sign(hsm.generate_keypair("ES256", label="after-doctor").cka_id, "ES256", b"x")


def test_doctor_reports_missing_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P11_KIT_SERVER_ADDRESS", "unix:path=/nonexistent/p11-kit/pkcs11")
    report = diagnose(["/nonexistent/libvendor-pkcs11.so"], now=NOW)
    (module,) = report.modules
    assert not module.loaded
    assert any("does not exist" in p for p in module.problems)
    assert not report.healthy
    assert "! module file /nonexistent/libvendor-pkcs11.so does not exist" in render_text(report)


def test_softhsm_config_precedence(tmp_path: Path) -> None:
    home = tmp_path
    user_conf = home / ".config/softhsm2/softhsm2.conf"
    user_conf.parent.mkdir(parents=True)
    (home / "tok").mkdir()
    user_conf.write_text(f"# comment\ndirectories.tokendir = {home / 'tok'}  # here\n")
    assert softhsm_config({"HOME": str(home)}).source == "user config"
    cfg = softhsm_config({"HOME": str(home)})
    assert cfg.token_dir == str(home / "tok") and cfg.token_dir_exists
    explicit = softhsm_config({"HOME": str(home), "SOFTHSM2_CONF": "/x/softhsm2.conf"})
    assert (explicit.source, explicit.exists) == ("SOFTHSM2_CONF", False)
    assert softhsm_config({"HOME": str(home / "nobody")}).conf_path == "/etc/softhsm/softhsm2.conf"

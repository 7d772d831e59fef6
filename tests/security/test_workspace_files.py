"""Attacks through the workspace's files: the PKCS#11 module, the scripts, the quorum, the
rehearsal flag and the sealed PIN (sealed-trust issue, items 2, 3, 7 and 8).

Every file that decides what a ceremony does is recorded in the ledger under the destructive
quorum; a difference refuses before any module is loaded or any share is opened.
"""

from __future__ import annotations

import base64
import json
import shutil
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from console.ceremony.officers import write_new_card
from console.cli import ExitCode, main
from console.quorum.pin_gate import seal_pin
from tests.integration.ceremony_helpers import REPO, after, set_config
from tests.security.conftest import SOFTHSM, Target
from tests.security.support import assert_refused, build_spy, entries, spy_lines
from tests.softhsm import TEST_USER_PIN, SoftHsmToken

pytestmark = pytest.mark.hsm

RUN_EXPORT = ("run", "export-only", "--officer", "alice", "--officer", "bob")
ALL_THREE = ("--officer", "alice", "--officer", "bob", "--officer", "carol")


def _run_export(target: Target) -> Callable[[], object]:
    return lambda: target.cli(*RUN_EXPORT, "--now", after(target.ws))


# --- the module --------------------------------------------------------------------------------


def test_a_module_path_to_a_pin_logger_is_refused_before_it_is_loaded(
        target: Target, tmp_path: Path) -> None:
    evil = build_spy(tmp_path / "evil" / "libpkcs11-evil.so", SOFTHSM)
    if evil is None:
        pytest.skip("no C compiler to build the pass-through module")
    set_config(target.ws, r'^module = ".*"$', f'module = "{evil}"')
    line = assert_refused(target.ws, lambda: target.cli(*RUN_EXPORT, "--now", after(target.ws)),
                          contains="ceremony.toml", spy_log=target.spy_log)
    assert "config-change" in line
    # Not even loaded: the module's constructor writes "loaded" at dlopen (both modules log to
    # the same file). Nor does any other command log in through it.
    assert target.spy_log is not None and spy_lines(target.spy_log) == []
    for command in (("reconcile",), ("status",), ("verify", "audit")):
        target.cli(*command)
    assert not [x for x in spy_lines(target.spy_log) if x.startswith("C_Login")]


def test_the_module_file_replaced_in_place_is_refused(target: Target, tmp_path: Path) -> None:
    """Same path, other bytes: the officers recorded the module's SHA-256, not only its path."""
    module = tmp_path / "lib" / "libpkcs11-site.so"
    module.parent.mkdir()
    shutil.copy(SOFTHSM, module)
    set_config(target.ws, r'^module = ".*"$', f'module = "{module}"')
    target.ok("run", "config-change", *ALL_THREE, "--now", after(target.ws))
    target.ok(*RUN_EXPORT, "--now", after(target.ws))  # the recorded module works
    evil = build_spy(tmp_path / "evil.so", SOFTHSM)
    if evil is None:
        with module.open("ab") as f:  # still loadable: ELF ignores trailing bytes
            f.write(b"\0" * 16)
    else:
        shutil.copy(evil, module)
    assert_refused(target.ws, lambda: target.cli(*RUN_EXPORT, "--now", after(target.ws)),
                   contains="module", spy_log=target.spy_log if evil is None else None)
    assert "the PKCS#11 module" in target.ok("status")


# --- scripts and quorum ---------------------------------------------------------------------


def _routine_officer_change(ws: Path) -> Path:
    folder = ws / "ceremonies"
    folder.mkdir(exist_ok=True)
    text = (REPO / "ceremonies" / "officer-change.toml").read_text()
    assert 'class = "destructive"' in text
    shadow = folder / "officer-change.toml"
    shadow.write_text(text.replace('class = "destructive"', 'class = "routine"'))
    return shadow


def test_a_workspace_script_cannot_shadow_a_shipped_one_silently(target: Target,
                                                                  tmp_path: Path) -> None:
    _routine_officer_change(target.ws)
    card = tmp_path / "mallory.card"
    write_new_card("mallory", "amber-falcon-river-stone-42x", card,
                   unsafe_kdf_cost_for_tests=2**10)
    args = ("plan", "officer-change", "--set", f"enroll={card}", "--set", "revoke=carol")
    line = assert_refused(target.ws, lambda: target.cli(*args, "--now", after(target.ws)),
                          contains="script officer-change", spy_log=target.spy_log)
    assert "config-change" in line
    assert "script officer-change" in target.ok("status")

    # Recorded by the whole quorum, the shadow is used; its class still cannot lower the
    # quorum: revoking and enrolling are destructive whatever the script says.
    target.ok("run", "config-change", *ALL_THREE, "--now", after(target.ws))
    plan = json.loads(target.ok(*args, "--now", after(target.ws), "--json"))
    assert plan["class"] == "destructive"
    assert plan["quorum"]["m"] == 3


def test_lowering_the_destructive_quorum_in_ceremony_toml_is_refused(target: Target) -> None:
    set_config(target.ws, r'^destructive = "3/3"$', 'destructive = "2/3"')
    for args in (("plan", "key-destruction", "--keyset", "demo-api"), RUN_EXPORT):
        assert_refused(target.ws, lambda a=args: target.cli(*a, "--now",  # type: ignore[misc]
                                                            after(target.ws)),
                       contains="ceremony.toml", spy_log=target.spy_log)
    assert "quorum.destructive.m: 3 → 2" in target.ok("status")


# --- the sealed PIN --------------------------------------------------------------------------


def _forged_sealed_pin(ws: Path, pin: bytes = b"123456") -> bytes:
    """What anyone can build from the public keys in ceremony.toml: a well-formed file sealing
    a PIN of their choosing, whose AES-GCM tags check under their own key."""
    config = tomllib.loads((ws / "ceremony.toml").read_text())
    recipients = [(o["name"], X25519PublicKey.from_public_bytes(
        base64.urlsafe_b64decode(o["x25519"] + "="))) for o in config["officers"]]
    return seal_pin(pin, recipients, 2, now=datetime.now(UTC), token="demo-token")


@pytest.mark.parametrize("attack", ["forged", "truncated", "missing", "empty", "symlink"])
def test_a_sealed_pin_the_ledger_does_not_vouch_for_never_reaches_c_login(
        target: Target, attack: str, tmp_path: Path) -> None:
    sealed = target.ws / "pin.sealed"
    if attack == "forged":
        sealed.write_bytes(_forged_sealed_pin(target.ws))
    elif attack == "truncated":
        sealed.write_bytes(sealed.read_bytes()[:200])
    elif attack == "missing":
        sealed.unlink()
    elif attack == "empty":
        sealed.write_bytes(b"")
    else:
        decoy = tmp_path / "decoy.sealed"
        decoy.write_bytes(_forged_sealed_pin(target.ws))
        sealed.unlink()
        sealed.symlink_to(decoy)
    line = assert_refused(target.ws, lambda: target.cli(*RUN_EXPORT, "--now", after(target.ws)),
                          contains="pin.sealed", spy_log=target.spy_log, flags=True)
    assert "Traceback" not in line
    assert "pin.sealed" in target.ok("status")


def test_an_old_sealed_pin_after_an_officer_change_is_refused(target: Target,
                                                              tmp_path: Path) -> None:
    """Carol is revoked and the PIN re-split; restoring the previous pin.sealed (which carol's
    share still opens, with the old PIN) is refused before any share is opened."""
    old = (target.ws / "pin.sealed").read_bytes()
    card = tmp_path / "mallory.card"
    write_new_card("mallory", "amber-falcon-river-stone-42x", card,
                   unsafe_kdf_cost_for_tests=2**10)
    target.ok("run", "officer-change", "--set", f"enroll={card}", "--set", "revoke=carol",
              *ALL_THREE, "--now", after(target.ws))
    assert (target.ws / "pin.sealed").read_bytes() != old
    (target.ws / "pin.sealed").write_bytes(old)
    assert_refused(target.ws, lambda: target.cli(*RUN_EXPORT, "--now", after(target.ws)),
                   contains="pin.sealed", spy_log=target.spy_log, flags=True)
    resplits = [e for e in entries(target.ws) if e["type"] == "pin.resplit"]
    assert len(resplits) == 2


# --- rehearsal ---------------------------------------------------------------------------------


def test_rehearsal_cannot_be_switched_on_in_a_production_workspace(
        make_softhsm_token: Callable[[str], SoftHsmToken], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A production workspace (made by `init`, in this process's SoftHSM2) edited to say
    `rehearsal = true`: the rehearsal clock is refused, as is every command that acts."""
    token = make_softhsm_token("prod")
    cards: list[str] = []
    for name in ("alice", "bob", "carol"):
        card = tmp_path / f"{name}.card"
        write_new_card(name, f"{name}-quartz-meadow-violin-88", card,
                       unsafe_kdf_cost_for_tests=2**10)
        cards += ["--officer-card", str(card)]
    pin = tmp_path / "pin"
    pin.write_text(TEST_USER_PIN)
    ws = tmp_path / "prod"
    assert main(["init", "--workspace", str(ws), "--org", "acme", "--module", token.module,
                 "--token-label", token.label, "--pin-file", str(pin), *cards]) == ExitCode.OK
    created = next(e for e in entries(ws) if e["type"] == "workspace.created")
    assert created["data"]["rehearsal"] is False  # type: ignore[index]
    text = (ws / "ceremony.toml").read_text()
    assert "rehearsal = false" in text
    (ws / "ceremony.toml").write_text(text.replace("rehearsal = false", "rehearsal = true"))
    capsys.readouterr()
    code = main(["plan", "genesis", "--workspace", str(ws), "--now", "2031-01-01T00:00:00Z"])
    err = capsys.readouterr().err
    assert code == ExitCode.FAILED, err
    assert "rehearsal" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not [e for e in entries(ws) if e["type"] == "ceremony.planned"]


# --- the network HSM ---------------------------------------------------------------------------


@pytest.mark.network_hsm
def test_a_rogue_network_hsm_address_never_receives_the_pin(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The p11-kit client sends C_Login, PIN included, to whatever P11_KIT_SERVER_ADDRESS names
    — an environment variable, not a workspace file. An insider's server (here in front of the
    real token, logging every C_Login) must not receive it: the address is a plan input."""
    from tests.integration.ceremony_helpers import cli, make_demo, ok, serve_over_p11kit
    from tests.softhsm import P11KitServer

    ws = make_demo(tmp_path / "demo")
    server = serve_over_p11kit(ws, tmp_path / "p11")
    rogue: P11KitServer | None = None
    try:
        now = after(ws)
        plan = json.loads(ok(ws, "plan", "export-only", "--now", now, "--json",
                             env=server.env()))
        shown = cli(ws, "approve", plan["plan_id"], "--officer", "alice", "--now", now,
                    env=server.env())
        assert shown.returncode == 0, shown.stderr
        assert f"network HSM {server.address}" in shown.stdout + shown.stderr
        ok(ws, "approve", plan["plan_id"], "--officer", "bob", "--now", now, env=server.env())
        spy = build_spy(tmp_path / "rogue" / "libpkcs11-rogue.so", SOFTHSM)
        log = tmp_path / "rogue.log"
        monkeypatch.setenv("CEREMONY_SPY_LOG", str(log))
        token = SoftHsmToken(conf=(ws / "softhsm" / "softhsm2.conf").resolve(),
                             module=str(spy) if spy is not None else SOFTHSM,
                             label="demo-token")
        rogue = P11KitServer(token, tmp_path / "rogue-socket")
        rogue.start()
        line = assert_refused(ws, lambda: cli(ws, "execute", plan["plan_id"], "--officer",
                                              "alice", "--officer", "bob", "--now", now,
                                              env=rogue.env()),
                              contains="network HSM address", flags=True)
        assert rogue.address in line
        assert not [x for x in spy_lines(log) if x.startswith("C_Login")]
        # The server the officers approved still works.
        ok(ws, "execute", plan["plan_id"], "--officer", "alice", "--officer", "bob",
           "--now", now, env=server.env())
        if spy is not None:
            # The control: officers who approve a plan naming the rogue address (it is in the
            # plan they read) do send it the PIN — the log would have seen a login above.
            ok(ws, "run", "export-only", "--officer", "alice", "--officer", "bob",
               "--now", after(ws), env=rogue.env())
            assert [x for x in spy_lines(log) if x.startswith("C_Login")]
    finally:
        server.stop()
        if rogue is not None:
            rogue.stop()

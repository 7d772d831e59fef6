"""`ceremony init` and a first genesis on a production (non-rehearsal) workspace, in-process,
on a fresh SoftHSM2 token of the test session; cards and passphrases come from files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from console.ceremony.officers import write_new_card
from console.cli import ExitCode, main
from console.quorum.pin_gate import read_sealed_pin
from tests.softhsm import TEST_USER_PIN, SoftHsmToken

POLICY = """\
[keysets.api]
issuer = "https://auth.example.com"
alg = "ES256"
max_token_lifetime = "1h"

[[keysets.api.consumers]]
name = "edge"
type = "envoy"
cache_lifetime = "10m"
"""


@pytest.fixture
def officers(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    cards: dict[str, tuple[Path, Path]] = {}
    for name, words in (("alice", "amber-falcon-river-stone-42"),
                        ("bob", "copper-meadow-violin-tiger-17"),
                        ("carol", "silver-canyon-orbit-maple-93")):
        card, secret = tmp_path / f"{name}.card", tmp_path / f"{name}.pass"
        write_new_card(name, words, card, unsafe_kdf_cost_for_tests=2**10)
        secret.write_text(words + "\n")
        cards[name] = (card, secret)
    return cards


def _officer_args(cards: dict[str, tuple[Path, Path]], *names: str) -> list[str]:
    out: list[str] = []
    for name in names:
        card, secret = cards[name]
        out += ["--officer", name, "--card", f"{name}={card}", "--passphrase-file",
                f"{name}={secret}"]
    return out


def _init_args(token: SoftHsmToken, tmp_path: Path, officers: dict[str, tuple[Path, Path]],
               *extra: str, pin: str = TEST_USER_PIN) -> tuple[Path, list[str]]:
    """The workspace folder and the `ceremony init` command for `token` and three officers."""
    ws = tmp_path / "ws"
    pin_file = tmp_path / "pin"
    pin_file.write_text(pin)
    args = ["init", "--workspace", str(ws), "--org", "acme", "--module", token.module,
            "--token-label", token.label, "--pin-file", str(pin_file), *extra]
    for name in ("alice", "bob", "carol"):
        args += ["--officer-card", str(officers[name][0])]
    return ws, args


def test_init_then_genesis_on_a_production_workspace(
    make_softhsm_token: Callable[[str], SoftHsmToken], tmp_path: Path,
    officers: dict[str, tuple[Path, Path]], capsys: pytest.CaptureFixture[str],
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    ws, args = _init_args(make_softhsm_token("init"), tmp_path, officers, "--policy",
                          str(policy), "--quorum", "routine=2/3", "--quorum", "destructive=3/3",
                          "--quorum", "emergency=2/3")
    assert main(args) == ExitCode.OK
    # The token's PIN was changed: the old one is dead, and only the sealed file opens the new.
    sealed = read_sealed_pin((ws / "pin.sealed").read_bytes())
    assert sealed.threshold == 2 and sorted(sealed.officers) == ["alice", "bob", "carol"]
    assert TEST_USER_PIN.encode() not in (ws / "pin.sealed").read_bytes()
    assert not any(TEST_USER_PIN in p.read_text(errors="ignore")
                   for p in ws.iterdir() if p.is_file() and p.suffix in (".toml", ".sealed"))

    # Production workspaces refuse the rehearsal clock, before anything happens.
    capsys.readouterr()
    assert main(["run", "genesis", "--workspace", str(ws), "--now", "2030-01-01T00:00:00Z",
                 *_officer_args(officers, "alice", "bob")]) == ExitCode.FAILED
    assert "rehearsal" in capsys.readouterr().err

    # Production: the officers read the digest words aloud and type them (--words here).
    capsys.readouterr()
    assert main(["plan", "genesis", "--json", "--workspace", str(ws)]) == ExitCode.OK
    planned = json.loads(capsys.readouterr().out)
    words = " ".join(planned["words"][:2])
    plan_id = planned["plan_id"]
    assert main(["approve", plan_id, "--workspace", str(ws), "--yes",
                 *_officer_args(officers, "alice")]) == ExitCode.USAGE
    assert "rehearsal workspaces only" in capsys.readouterr().err
    assert main(["approve", plan_id, "--workspace", str(ws), "--words", "wrong words",
                 *_officer_args(officers, "alice")]) == ExitCode.USAGE
    assert "not this plan's digest words" in capsys.readouterr().err
    for name in ("alice", "bob"):
        assert main(["approve", plan_id, "--workspace", str(ws), "--words", words,
                     *_officer_args(officers, name)]) == ExitCode.OK
    assert main(["execute", plan_id, "--workspace", str(ws), "--words", words,
                 *_officer_args(officers, "alice", "bob")]) == ExitCode.OK
    capsys.readouterr()
    assert main(["status", "--json", "--workspace", str(ws)]) == ExitCode.OK
    status = json.loads(capsys.readouterr().out)
    (keyset,) = status["keysets"]
    states = sorted(k["state"] for k in keyset["keys"])
    assert states == ["active", "published"]
    assert status["bundle_signing_key"]["alg"] == "ES256"
    assert (ws / "exports" / "api" / "1" / "jwks.jwt").is_file()

    # A second init on the same folder is refused and changes nothing.
    before = sorted(p.name for p in ws.iterdir())
    assert main(args) == ExitCode.FAILED
    assert "already holds a workspace" in capsys.readouterr().err
    assert sorted(p.name for p in ws.iterdir()) == before


def test_init_with_a_wrong_pin_leaves_nothing_behind(
    make_softhsm_token: Callable[[str], SoftHsmToken], tmp_path: Path,
    officers: dict[str, tuple[Path, Path]], capsys: pytest.CaptureFixture[str],
) -> None:
    ws, args = _init_args(make_softhsm_token("initbad"), tmp_path, officers,
                          pin="not-the-pin-000")
    assert main(args) == ExitCode.FAILED
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ceremony: error:")]
    assert len(errors) == 1 and "PIN" in errors[0] and "Traceback" not in err
    assert not (ws / "ceremony.toml").exists() and not (ws / "ledger.sqlite").exists()
    assert not (ws / "pin.sealed").exists()


def test_production_refuses_a_card_kept_in_the_workspace(
    make_softhsm_token: Callable[[str], SoftHsmToken], tmp_path: Path,
    officers: dict[str, tuple[Path, Path]], capsys: pytest.CaptureFixture[str],
) -> None:
    ws, args = _init_args(make_softhsm_token("cardloc"), tmp_path, officers)
    assert main(args) == ExitCode.OK
    inside = ws / "alice.card"
    inside.write_bytes(officers["alice"][0].read_bytes())
    size_before = _ledger_size(ws)
    capsys.readouterr()
    code = main(["run", "genesis", "--workspace", str(ws), "--words", "any words", "--officer",
                 "alice", "--card",
                 f"alice={inside}", "--passphrase-file", f"alice={officers['alice'][1]}",
                 *_officer_args(officers, "bob")])
    assert code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "inside the workspace" in err and err.count("ceremony: error:") == 1
    assert _ledger_size(ws) == size_before


def _ledger_size(ws: Path) -> int:
    import sqlite3

    with sqlite3.connect(f"file:{ws / 'ledger.sqlite'}?mode=ro", uri=True) as conn:
        (count,) = conn.execute("SELECT count(*) FROM entries").fetchone()
    return int(count)


def test_officer_change_that_would_break_a_quorum_is_refused(
    make_softhsm_token: Callable[[str], SoftHsmToken], tmp_path: Path,
    officers: dict[str, tuple[Path, Path]], capsys: pytest.CaptureFixture[str],
) -> None:
    ws, args = _init_args(make_softhsm_token("quorumbreak"), tmp_path, officers,
                          "--quorum", "destructive=3/3")
    assert main(args) == ExitCode.OK
    before = _ledger_size(ws)
    capsys.readouterr()
    code = main(["officer", "revoke", "carol", "--workspace", str(ws), "--words", "x y",
                 *_officer_args(officers, "alice", "bob", "carol")])
    assert code == ExitCode.FAILED
    err = capsys.readouterr().err
    assert "leaves 2 officers" in err and err.count("ceremony: error:") == 1
    assert _ledger_size(ws) == before


def test_production_refuses_a_ledger_dated_ahead_of_its_clock(
    make_softhsm_token: Callable[[str], SoftHsmToken], tmp_path: Path,
    officers: dict[str, tuple[Path, Path]], capsys: pytest.CaptureFixture[str],
) -> None:
    """An insider appends a well-formed entry dated two days ahead after the last checkpoint
    (a tail no officer has signed yet): adopted as the clock's floor, it would count grace
    periods and destruction waits that did not pass. A production workspace refuses it."""
    from datetime import timedelta

    from console.clock import wall_clock
    from console.ledger import Ledger

    ws, args = _init_args(make_softhsm_token("ahead"), tmp_path, officers)
    assert main(args) == ExitCode.OK
    capsys.readouterr()
    assert main(["status", "--workspace", str(ws)]) == ExitCode.OK
    ledger = Ledger.open(ws / "ledger.sqlite", checkpoint_file=ws / ".checkpoint")
    try:
        ledger.append("note", {"text": "dated ahead"}, time=wall_clock() + timedelta(days=2),
                      actor="insider")
    finally:
        ledger.close()
    capsys.readouterr()
    assert main(["status", "--workspace", str(ws)]) != ExitCode.OK
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ceremony: error:")]
    assert len(errors) == 1 and "ahead of this machine's clock" in errors[0], err
    assert "Traceback" not in err

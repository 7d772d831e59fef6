"""Issue 15 by key presses on real SoftHSM2 demo tokens: deliberate execution, destructive
confirmation, idle card wipe, ctrl+q during a run, passphrase retries in the dialog, open and
interrupted plans first, screens that refresh themselves.

Each scenario runs `tests/tui/pilot_deliberate.py` in its own process on a clone of one demo
workspace (a demo token has its own SOFTHSM2_CONF; see conftest). The assertions here read what
the TUI showed and then the ledger itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from console.quorum.words import digest_words
from console.tui.dialogs.execute import typed_confirms
from tests.integration.ceremony_helpers import (
    CRASH_VARIABLE,
    after,
    cli,
    clone,
    last_time,
    ledger_entries,
    ok,
    stamp,
)
from tests.tui.conftest import REPO, make_demo, subprocess_env

pytestmark = [pytest.mark.hsm, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("deliberate") / "demo")


def drive(scenario: str, ws: Path, now: str) -> dict[str, Any]:
    out = ws.parent / f"{scenario}.json"
    run = subprocess.run([sys.executable, "-m", "tests.tui.pilot_deliberate", scenario, str(ws),
                          str(out), now], capture_output=True, text=True, timeout=300,
                         env=subprocess_env(), cwd=REPO)
    assert run.returncode == 0, run.stderr[-4000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def entries(ws: Path) -> list[dict[str, Any]]:
    """The ledger's entries read with sqlite3 and json, not through the console."""
    return ledger_entries(ws)


def test_rotation_asks_before_it_runs_retries_passphrases_and_refreshes_the_dashboard(
        demo: Path, tmp_path: Path) -> None:
    ws = clone(demo, tmp_path / "ws")
    now = stamp(last_time(ws) + timedelta(days=91))
    r = drive("rotation", ws, now)

    # A wrong passphrase: the dialog stays, with the card path as typed, and says try 2 of 3.
    wrong = r["after_wrong"]
    assert wrong["dialog"] and wrong["card"] == wrong["card_typed"] != ""
    assert "try 2 of 3" in wrong["status"]
    assert r["alice_closed"]
    # Three wrong ones: tries 2 and 3 asked in the dialog, then the error dialog.
    assert len(r["carol_statuses"]) == 2
    assert "try 2 of 3" in r["carol_statuses"][0] and "try 3 of 3" in r["carol_statuses"][1]
    assert r["carol_error"] and "not unlocked after 3 tries" in r["errors"][-1]
    assert r["approvals"] == ["alice", "bob"]

    # x shows what will happen; escape ran nothing; x, enter ran it.
    assert r["confirm_shown"] and not r["confirm_destructive"]
    assert "This will:" in r["confirm_text"] and "generate" in r["confirm_text"]
    assert "routine quorum 2 of 3" in r["confirm_text"]
    assert not any(t.startswith("ceremony.st") for t in r["after_cancel_types"])
    assert r["finished"] and r["run_errors"] == []

    # Without r, the dashboard and header show the ledger after the run.
    assert r["keys_after"] > r["keys_before"]
    assert f"ledger {r['ledger_size']:,} entries" in r["header"]
    assert "ceremony run" in r["ledger_changed"]

    log = entries(ws)
    failed = [(e["data"]["officer"], e["data"]["attempt"]) for e in log
              if e["type"] == "ceremony.unlock_failed"]
    assert failed == [("alice", 1), ("carol", 1), ("carol", 2), ("carol", 3)]
    assert sum(e["type"] == "ceremony.completed" for e in log) == 2 + 1  # genesis, demo, this


def test_destructive_plan_needs_the_words_typed(demo: Path, tmp_path: Path) -> None:
    import pyrage  # type: ignore[import-untyped]

    ws = clone(demo, tmp_path / "ws")
    planned_at = after(ws)
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    ok(ws, "plan", "signer-enrollment", "--set", "signer=svc-a", "--set",
       f"recipient={recipient}", "--now", planned_at)
    now = stamp(last_time(ws) + timedelta(minutes=2))
    r = drive("destructive", ws, now)

    assert "signer-enrollment" in r["dashboard_banner"]  # the open plan leads the dashboard
    assert r["plan_id"] and "signer-enrollment" in r["banner"]
    assert r["approvals"] == ["alice", "bob", "carol"]
    assert r["confirm_shown"] and r["confirm_destructive"]
    assert r["empty_refused"] and r["wrong_refused"]
    assert "not the keyset name" in r["refusal"]
    assert not any(t.startswith("ceremony.st") for t in r["types_while_asking"])
    assert r["finished"] and r["errors"] == []
    assert any(e["type"] == "signer.released" for e in entries(ws))


def test_idle_and_leaving_wipe_cards_and_ctrl_q_waits_for_the_run(
        demo: Path, tmp_path: Path) -> None:
    ws = clone(demo, tmp_path / "ws")
    now = stamp(last_time(ws) + timedelta(days=91))
    r = drive("idle", ws, now)

    assert r["cards_after_approval"] == ["alice", "bob"]
    assert r["cards_after_idle"] == []
    assert "cards wiped after 2 idle seconds" in r["approvals_text"]
    assert r["x_asks_cards"] and "Unlock a card to execute" in r["unlock_title"]
    assert sorted(r["unlocked"]) == ["alice", "bob"] and r["then_confirm"]
    assert r["cards_before_leaving"] == ["alice", "bob"]
    assert r["cards_after_leaving"] == []
    assert "on leaving the Ceremony screen" in r["leaving_text"]
    assert sorted(r["unlocked_again"]) == ["alice", "bob"]

    assert r["running"] and r["quit_asks"] and r["still_running_after_escape"]
    assert r["running_after_quit_later"]  # it waits for the run...
    assert r["exited_after_run"] and r["finished"]  # ...and quits once it is recorded
    assert r["errors"] == []
    assert [e["type"] for e in entries(ws)].count("ceremony.completed") == 3


def _interrupt(demo: Path, ws: Path) -> str:
    """A quarterly rotation the CLI started and a power cut stopped after step 2."""
    clone(demo, ws)
    when = stamp(last_time(ws) + timedelta(days=91))
    crashed = cli(ws, "run", "quarterly-rotation", "--now", when, "--officer", "alice",
                  "--officer", "bob", env={CRASH_VARIABLE: "done:2"})
    assert crashed.returncode != 0
    return stamp(last_time(ws) + timedelta(minutes=2))


def test_interrupted_ceremony_leads_the_dashboard_and_resumes(demo: Path,
                                                             tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    now = _interrupt(demo, ws)
    r = drive("resume", ws, now)

    assert "interrupted after step 2 of 5" in r["dashboard_banner"]
    assert "nothing needs doing" not in r["dashboard_warnings"]
    assert "interrupted" in r["dashboard_keyset"]
    assert r["mode"] == "ceremony" and r["plan_id"]
    assert "[u] resume" in r["banner"] and "[b] abort" in r["banner"]
    assert r["approve_refused"]
    assert "Unlock a card to resume" in r["dialog_title"]
    assert sorted(r["unlocked"]) == ["alice", "bob"]
    assert r["confirm_shown"] and "(done)" in r["confirm_text"]
    assert r["finished"] and r["errors"] == []
    assert "ceremony.resumed" in r["types"] and "ceremony.completed" in r["types"]
    assert r["dashboard_banner_after"] == ""


def test_interrupted_ceremony_is_aborted_by_an_approver(demo: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    now = _interrupt(demo, ws)
    r = drive("abort", ws, now)

    assert r["dialog_title"] == "Abort the ceremony"
    assert sorted(r["dialog_officers"]) == ["alice", "bob"]  # carol did not approve it
    assert r["unlocked"][:1] in (["alice"], ["bob"])
    assert r["errors"] == []
    assert any("aborted" in line for line in r["transcript"])
    aborted = [e for e in entries(ws) if e["type"] == "ceremony.aborted"]
    assert len(aborted) == 1 and aborted[0]["data"]["officer"] in ("alice", "bob")
    assert aborted[0]["ceremony"] == r["plan_id"]
    assert r["dashboard_banner_after"] == ""


def test_typed_confirmation_accepts_the_keyset_or_the_first_words() -> None:
    digest = bytes(range(32))
    words = digest_words(digest)
    assert typed_confirms("demo-api", ("demo-api",), digest)
    assert typed_confirms(f"{words[0]} {words[1]}", ("demo-api",), digest)
    assert typed_confirms(f" {words[0].upper()}  {words[1]} ", (), digest)
    assert not typed_confirms(words[0], (), digest)
    assert not typed_confirms("demo", ("demo-api",), digest)
    assert not typed_confirms("", (), digest)


def test_dialog_tries_match_the_session() -> None:
    from console.ceremony.session import UNLOCK_TRIES
    from console.tui.dialogs.approval import UNLOCK_TRIES as DIALOG_TRIES

    assert DIALOG_TRIES == UNLOCK_TRIES


def test_a_tui_left_open_shows_what_another_console_did(demo: Path, tmp_path: Path) -> None:
    """Two consoles: the CLI runs a ceremony while the TUI is open; the TUI's header and
    dashboard show the new state by themselves, and nothing is recorded twice."""
    ws = clone(demo, tmp_path / "ws")
    before = len(entries(ws))
    seen = drive("other_console", ws, after(ws))
    assert seen["cli_returncode"] == 0, seen["cli_stderr"]
    size = seen["size_after_cli"]
    assert size > before
    assert f"{size} entries" not in seen["header_before"]
    assert f"ledger {size} entries" in seen["header_after"], seen["header_after"]
    assert len(entries(ws)) == size

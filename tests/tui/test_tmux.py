"""The real thing in a real terminal: `ceremony --workspace DIR` inside tmux, read with
capture-pane, a screen key pressed, read again, quit with ctrl+q; and the same console in a
plain 80×24 pane with `TERM=dumb` and the C locale."""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tui.conftest import CEREMONY, REPO, have_tmux, subprocess_env

pytestmark = pytest.mark.skipif(not have_tmux(), reason="tmux is not installed")


def _tmux(*args: str) -> str:
    out = subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _wait_for(session: str, ready: Callable[[str], bool], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if ready(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"timed out; the screen was:\n{screen}")


@pytest.mark.hsm
def test_ceremony_in_tmux(demo_workspace: Path) -> None:
    session = f"tui-{uuid.uuid4().hex[:8]}"
    env = subprocess_env()
    pythonpath = shlex.quote(env["PYTHONPATH"])
    command = " ".join(["env", "-u", "SOFTHSM2_CONF", f"PYTHONPATH={pythonpath}",
                        shlex.quote(CEREMONY), "--workspace", shlex.quote(str(demo_workspace))])
    _tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", "-c", str(REPO), command)
    try:
        first = _wait_for(session, lambda s: "Keysets" in s and "demo-api" in s
                          and "HSM demo-token" in s)
        assert "Warnings" in first and "(rehearsal)" in first
        footer = [line for line in first.splitlines() if line.strip()][-1]
        assert "dcleoh screens" in footer and "? Help" in footer, footer
        _tmux("send-keys", "-t", session, "l")
        ledger = _wait_for(session, lambda s: "checkpoint.signed" in s and "seq" in s)
        assert "cosigned by alice, bob" in ledger
        _tmux("send-keys", "-t", session, "C-q")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            panes = subprocess.run(["tmux", "list-panes", "-t", session, "-F",
                                    "#{pane_dead} #{pane_current_command}"],
                                   capture_output=True, text=True)
            if panes.returncode != 0:  # the session ended with the app
                break
            time.sleep(0.2)
        else:
            raise AssertionError("ctrl+q did not quit the console")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.mark.hsm
@pytest.mark.parametrize("locale", [
    {"LC_ALL": "C", "LANG": "C"},
    # Python's UTF-8 mode off as well: Textual then writes to an ASCII stderr, which escapes
    # the box drawing (garbled, but it starts, shows the data and quits cleanly).
    {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"},
], ids=["C", "C-no-utf8-mode"])
def test_console_in_a_dumb_80x24_pane(demo_workspace: Path, locale: dict[str, str]) -> None:
    session = f"tui-{uuid.uuid4().hex[:8]}"
    env = subprocess_env()
    settings = {"TERM": "dumb", "PYTHONPATH": env["PYTHONPATH"], **locale}
    console = " ".join(["env", "-u", "SOFTHSM2_CONF", "-u", "NO_COLOR", "-u", "COLUMNS",
                        *(f"{k}={shlex.quote(v)}" for k, v in settings.items()),
                        shlex.quote(CEREMONY), "--workspace", shlex.quote(str(demo_workspace))])
    # The shell reports the console's exit status on the pane, which stays after it exits.
    command = f'{console}; echo "console exited with $?"; sleep 30'
    _tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", "-c", str(REPO), command)
    try:
        screen = _wait_for(session, lambda s: "Keysets" in s and "demo-api" in s)
        assert "Traceback" not in screen
        assert max(len(line) for line in screen.splitlines()) <= 80
        _tmux("send-keys", "-t", session, "C-q")
        last = _wait_for(session, lambda s: "console exited with" in s, timeout=10)
        assert "console exited with 0" in last, last
        assert "Traceback" not in last and "Error" not in last, last
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.mark.hsm
@pytest.mark.slow
def test_a_quarterly_rotation_at_80x24_in_tmux(fresh_demo: Path) -> None:
    """An officer's whole rotation by key presses in an 80×24 pane: plan, two approvals (the
    digest words read off the dialog, then the passphrase), execute, confirm, completed; the
    ledger then holds the ceremony's completion."""
    import json
    import re

    from tests.integration.ceremony_helpers import after, ledger_entries

    ws = fresh_demo
    session = f"tui-{uuid.uuid4().hex[:8]}"
    pythonpath = shlex.quote(subprocess_env()["PYTHONPATH"])
    command = " ".join(["env", "-u", "SOFTHSM2_CONF", f"PYTHONPATH={pythonpath}",
                        shlex.quote(CEREMONY), "--workspace", shlex.quote(str(ws)),
                        "--now", after(ws, 91)])
    _tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", "-c", str(REPO), command)
    try:
        _wait_for(session, lambda s: "Keysets" in s and "demo-api" in s)
        _tmux("send-keys", "-t", session, "c")
        _wait_for(session, lambda s: "Script" in s)
        _tmux("send-keys", "-t", session, "p")
        _wait_for(session, lambda s: "quarterly-rotation" in s and "approve" in s, timeout=30)
        for officer in ("alice", "bob"):
            _tmux("send-keys", "-t", session, "a")
            dialog = _wait_for(session, lambda s: "Read aloud" in s and "Passphrase" in s)
            words = re.search(r"Read aloud: (\w+) (\w+)", dialog)
            assert words is not None, dialog
            secret = (ws / "demo-cards" / f"{officer}.pass").read_text().strip()
            _tmux("send-keys", "-t", session, "-l", f"{words[1]} {words[2]}")
            typed = f"{words[1]} {words[2]}"
            # A burst "words⏎passphrase" would reach the Words field before Enter moves the
            # focus (Textual forwards queued keys first): type as a person does, after seeing.
            _wait_for(session, lambda s, t=typed: t in s.split("Words", 1)[-1])
            _tmux("send-keys", "-t", session, "Enter")
            time.sleep(0.5)
            _tmux("send-keys", "-t", session, "-l", secret)
            _tmux("send-keys", "-t", session, "Enter")
            _wait_for(session, lambda s: "Read aloud" not in s, timeout=30)
        _tmux("send-keys", "-t", session, "x")
        _wait_for(session, lambda s: "Execute plan" in s and "Cancel" in s, timeout=30)
        _tmux("send-keys", "-t", session, "Enter")
        deadline = time.monotonic() + 120  # the Run pane is below the fold at 80×24: ask the ledger
        while not any(e["type"] == "ceremony.completed" for e in ledger_entries(ws)[-3:]):
            assert time.monotonic() < deadline, _tmux("capture-pane", "-p", "-t", session)
            time.sleep(0.5)
        screen = _tmux("capture-pane", "-p", "-t", session)
        assert "Traceback" not in screen
        assert max(len(line) for line in screen.splitlines()) <= 80
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    completed = [e for e in ledger_entries(ws) if e["type"] == "ceremony.completed"]
    planned = [e for e in ledger_entries(ws) if e["type"] == "ceremony.planned"]
    assert planned[-1]["data"]["plan"]["script"]["name"] == "quarterly-rotation", \
        json.dumps(planned[-1])[:500]
    assert completed and completed[-1]["ceremony"] == planned[-1]["ceremony"]

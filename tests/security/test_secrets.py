"""Secrets in memory and failed unlocks (sealed-trust issue, item 9 and attack 10).

Before: with `ulimit -c unlimited`, a console waiting for the second passphrase dumped core
holding the first officer's passphrase and private keys. Now the process turns core dumps off
(RLIMIT_CORE 0, PR_SET_DUMPABLE 0) before it reads any passphrase; the test kills such a
console with SIGSEGV and looks for the core file, after checking that the same conditions do
produce a core file for an ordinary process (else it says why it cannot tell).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import PYTHON, REPO, _env
from tests.pty_session import PtySession
from tests.security.conftest import ApprovedPlan, Target
from tests.security.support import assert_refused, entries

pytestmark = pytest.mark.hsm


@pytest.fixture
def core_dumps_on() -> Iterator[None]:
    """Children started inside inherit an unlimited core size, as `ulimit -c unlimited`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    except (ValueError, OSError):
        pytest.skip("cannot raise RLIMIT_CORE here")
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


def _cores(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name == "core" or p.name.startswith("core.")]


def _dumps_core_here(folder: Path) -> bool:
    """Whether an ordinary process killed by SIGSEGV in `folder` leaves a core file there."""
    if resource.getrlimit(resource.RLIMIT_CORE)[0] == 0:
        return False
    pattern = Path("/proc/sys/kernel/core_pattern")
    if not pattern.exists() or pattern.read_text().startswith("|"):
        return False
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                                          cwd=folder)
    time.sleep(0.3)
    proc.send_signal(signal.SIGSEGV)
    proc.wait(timeout=10)
    time.sleep(0.3)
    found = _cores(folder)
    for core in found:
        core.unlink()
    return bool(found)


def _limits(pid: int) -> str:
    return next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
                if line.startswith("Max core file size"))


def test_a_console_holding_an_unlocked_card_leaves_no_core_file(
        approved: tuple[Target, ApprovedPlan], tmp_path: Path, core_dumps_on: None) -> None:
    target, plan = approved
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    control = _dumps_core_here(cwd)
    env = _env({"CEREMONY_WORKSPACE": str(target.ws), **target.env})
    secret = (target.ws / "demo-cards" / "alice.pass").read_text().strip()
    session = PtySession([PYTHON, "-m", "console", "execute", plan.plan_id,
                          "--officer", "alice", "--officer", "bob", "--now", plan.now, "--yes"],
                         env={**env, "PYTHONPATH": str(REPO)}, cwd=cwd)
    try:
        # Typed only once the prompt is there (typeahead would be echoed by the terminal).
        session.read_until(b"passphrase for alice's card:", timeout=60)
        session.send(secret.encode() + b"\r")
        session.read_until(b"passphrase for bob's card:", timeout=60)  # alice's is unlocked
        limits = _limits(session.proc.pid)
        assert limits.split()[4:6] == ["0", "0"], limits
        os.kill(session.proc.pid, signal.SIGSEGV)
        session.wait(timeout=30)
    finally:
        session.kill()
    time.sleep(0.3)
    assert _cores(cwd) == [], "the console dumped core while holding a card"
    assert _cores(target.ws) == []
    if not control:
        pytest.skip("no core file appears here even for an ordinary process (core_pattern "
                    "or limits), so only RLIMIT_CORE = 0 was checked")


def test_failed_unlocks_are_recorded_without_secret_material(
        approved: tuple[Target, ApprovedPlan], tmp_path: Path) -> None:
    target, plan = approved
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("purple-elephant-dances-at-midnight-77\n")
    bob_card = target.ws / "demo-cards" / "bob.card"
    attempts = [
        ("--passphrase-file", f"carol={wrong}"),  # carol's card, a wrong passphrase
        ("--card", f"carol={bob_card}", "--passphrase-file",  # another officer's card
         f"carol={target.ws / 'demo-cards' / 'bob.pass'}"),
    ]
    messages = set()
    for extra in attempts:
        line = assert_refused(target.ws, lambda e=extra: target.cli(  # type: ignore[misc]
            "approve", plan.plan_id, "--officer", "carol", "--now", plan.now, *e),
            contains="card", spy_log=target.spy_log)
        messages.add(line.replace(extra[-1].split("=", 1)[1], "FILE"))
    # The same message for every unlock failure: the error is no oracle.
    assert len(messages) == 1, messages
    failed = [e for e in entries(target.ws) if e["type"] == "ceremony.unlock_failed"]
    assert len(failed) == 2
    assert all(e["ceremony"] == plan.plan_id and "carol" in str(e["data"]) for e in failed)
    raw = (target.ws / "ledger.sqlite").read_bytes()
    for secret in ("purple-elephant", (target.ws / "demo-cards" / "bob.pass").read_text().strip()):
        assert secret.encode() not in raw
    # No approval was recorded for carol, and the auditor sees the failures.
    assert not [e for e in entries(target.ws)
                if e["type"] == "ceremony.approved" and e["ceremony"] == plan.plan_id
                and e["actor"] == "carol"]

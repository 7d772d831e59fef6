"""Every hint works (issue 15): each command a message suggests is run, in the state that
produced the message, and is accepted (or makes the progress it promises).

The commands are read from the messages themselves (`ceremony …` in backquotes, `run SCRIPT`),
so a reworded hint is tested as it now reads. `NAME` becomes the officers the state needs. Each
case runs the real CLI in a subprocess on a copy of a demo workspace (its own SoftHSM2 token).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import (
    after,
    assert_one_error,
    cli,
    clone,
    make_demo,
    ok,
    status,
)

pytestmark = pytest.mark.hsm

APPROVERS = ("alice", "bob")
EVERYONE = ("alice", "bob", "carol")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield make_demo(tmp_path_factory.mktemp("hints") / "demo")


@pytest.fixture
def ws(demo: Path, tmp_path: Path) -> Path:
    return clone(demo, tmp_path / "ws")


def suggested(message: str) -> list[str]:
    """The commands a message suggests, as written: `ceremony …` and `run SCRIPT`."""
    found = re.findall(r"`ceremony ([^`]+)`", message)
    found += [f"run {script}" for script in re.findall(r"\brun ([a-z][a-z-]+[a-z])\b", message)
              if script != "the"]
    assert found, f"no command in {message!r}"
    return found


def command(text: str, officers: tuple[str, ...]) -> list[str]:
    """A suggested command made runnable: NAME (and `…`) become `officers`; `run` gets them."""
    words = [w for w in shlex.split(text) if w not in ("…", "...")]
    out: list[str] = []
    for i, word in enumerate(words):
        if word == "NAME" and i and words[i - 1] == "--officer":
            out.append(officers[0])
            for name in officers[1:] if "--abort" not in words else ():
                out += ["--officer", name]
        else:
            out.append(word)
    if out[0] == "run" and "--officer" not in out:
        for name in officers:
            out += ["--officer", name]
    return out


def follow(ws: Path, message: str, now: str, officers: tuple[str, ...] = APPROVERS,
           which: int = 0) -> str:
    """Run the `which`-th command `message` suggests; it must succeed."""
    args = command(suggested(message)[which], officers)
    return ok(ws, *args, "--now", now)


def warnings(ws: Path, now: str, containing: str) -> list[str]:
    found = [w for w in status(ws, now)["warnings"] if containing in w]
    return found


def one_warning(ws: Path, now: str, containing: str) -> str:
    found = warnings(ws, now, containing)
    assert len(found) == 1, status(ws, now)["warnings"]
    return found[0]


def plan_id(ws: Path, script: str, now: str, *extra: str) -> str:
    planned = json.loads(ok(ws, "plan", script, "--now", now, "--json", *extra))
    return str(planned["plan_id"])


# --- status warnings -------------------------------------------------------------------------


def test_may_be_unpublished(ws: Path) -> None:
    now = after(ws, 2)
    message = one_warning(ws, now, "may be unpublished")
    assert "completed" in follow(ws, message, now)
    assert not warnings(ws, now, "may be unpublished")


def test_rotation_due(ws: Path) -> None:
    now = after(ws, 91)
    message = one_warning(ws, now, "rotation overdue")
    assert "completed" in follow(ws, message, now)
    assert not warnings(ws, now, "quarterly-rotation")


def test_bundle_expired(ws: Path) -> None:
    now = after(ws, 121)
    message = one_warning(ws, now, "expired")
    assert "export-only" in message
    assert "completed" in follow(ws, message, now)
    assert not warnings(ws, now, "expired")


def test_may_be_destroyed(ws: Path) -> None:
    now = after(ws, 2)
    ok(ws, "run", "quarterly-rotation", "--officer", "alice", "--officer", "bob", "--now", now)
    later = after(ws, 31)
    message = one_warning(ws, later, "may be destroyed")
    assert "completed" in follow(ws, message, later, EVERYONE)
    assert not warnings(ws, later, "may be destroyed")


def test_open_plan_approve_then_execute(ws: Path) -> None:
    now = after(ws, 91)
    pid = plan_id(ws, "quarterly-rotation", now)
    message = one_warning(ws, now, f"plan {pid}")
    assert f"approve {pid}" in message
    for officer in APPROVERS:
        follow(ws, one_warning(ws, now, f"plan {pid}"), now, (officer,))
    message = one_warning(ws, now, f"plan {pid}")
    assert "waits to run" in message
    assert "completed" in follow(ws, message, now)
    assert status(ws, now)["open_plans"] == []


def test_approved_plan_can_be_aborted_as_the_warning_says(ws: Path) -> None:
    now = after(ws, 91)
    pid = plan_id(ws, "quarterly-rotation", now)
    for officer in APPROVERS:
        ok(ws, "approve", pid, "--officer", officer, "--now", now)
    message = one_warning(ws, now, "waits to run")
    assert "aborted" in follow(ws, message, now, which=1)
    assert status(ws, now)["open_plans"] == []


@pytest.mark.parametrize("which", [0, 1], ids=["resume", "abort"])
def test_interrupted(ws: Path, which: int) -> None:
    now = after(ws, 91)
    crashed = cli(ws, "run", "quarterly-rotation", "--officer", "alice", "--officer", "bob",
                  "--now", now, env={"CEREMONY_UNSAFE_CRASH_AT": "effect:4"})
    assert crashed.returncode == -9
    message = one_warning(ws, now, "interrupted")
    out = follow(ws, message, now, which=which)
    assert ("completed" if which == 0 else "aborted") in out
    assert status(ws, now)["open_plans"] == []


def test_config_drift(ws: Path) -> None:
    now = after(ws)
    policy = ws / "policy.toml"
    policy.write_text(policy.read_text().replace('cache_lifetime = "10m"',
                                                 'cache_lifetime = "15m"'))
    message = warnings(ws, now, "configuration differs")[0]
    # The refusal a ceremony meets says the same.
    line = assert_one_error(cli(ws, "plan", "export-only", "--now", now), 1)
    assert "config-change" in line
    follow(ws, message, now)  # `ceremony plan config-change`: accepted, and then runs
    pid = status(ws, now)["open_plans"][0]["plan_id"]
    for officer in EVERYONE:
        ok(ws, "approve", pid, "--officer", officer, "--now", now)
    ok(ws, "execute", pid, *[a for o in EVERYONE for a in ("--officer", o)], "--now", now)
    assert status(ws, now)["config_drift"] == []


# --- refusals --------------------------------------------------------------------------------


def test_plan_still_open(ws: Path) -> None:
    now = after(ws, 91)
    pid = plan_id(ws, "quarterly-rotation", now)
    line = assert_one_error(cli(ws, "plan", "quarterly-rotation", "--now", now), 1,
                            contains=pid)
    assert "aborted" in follow(ws, line, now, ("alice",))
    plan_id(ws, "quarterly-rotation", now)


def test_no_keyset_due(ws: Path) -> None:
    now = after(ws)
    line = assert_one_error(cli(ws, "plan", "quarterly-rotation", "--now", now), 1,
                            contains="no keyset is due")
    assert "--keyset" in line
    follow(ws, line, now)  # `ceremony status`
    plan_id(ws, "quarterly-rotation", now, "--keyset", "demo-api")


def test_execute_of_an_interrupted_plan(ws: Path) -> None:
    now = after(ws, 91)
    pid = plan_id(ws, "quarterly-rotation", now)
    for officer in APPROVERS:
        ok(ws, "approve", pid, "--officer", officer, "--now", now)
    crashed = cli(ws, "execute", pid, "--officer", "alice", "--officer", "bob", "--now", now,
                  env={"CEREMONY_UNSAFE_CRASH_AT": "effect:4"})
    assert crashed.returncode == -9
    line = assert_one_error(cli(ws, "execute", pid, "--officer", "alice", "--officer", "bob",
                                "--now", now), 1, contains="already started")
    resume = [c for c in suggested(line) if c.startswith("resume") and "--abort" not in c]
    assert resume, line
    assert "completed" in ok(ws, *command(resume[0], APPROVERS), "--now", now)


def test_expired_plan(ws: Path) -> None:
    now = after(ws, 91)
    pid = plan_id(ws, "quarterly-rotation", now)
    expires = json.loads(ok(ws, "status", "--json", "--now", now))["open_plans"][0]["expires_at"]
    line = assert_one_error(cli(ws, "approve", pid, "--officer", "alice", "--now", expires), 1,
                            contains="expired")
    assert "make a new plan" in line
    plan_id(ws, "quarterly-rotation", expires)


def test_orphan_of_an_aborted_plan(ws: Path) -> None:
    now = after(ws, 91)
    crashed = cli(ws, "run", "quarterly-rotation", "--officer", "alice", "--officer", "bob",
                  "--now", now, env={"CEREMONY_UNSAFE_CRASH_AT": "effect:2"})
    assert crashed.returncode == -9
    ok(ws, "resume", "--abort", "--officer", "alice", "--now", now)
    found = cli(ws, "reconcile", "--now", now)
    assert found.returncode == 1
    line = next(line for line in found.stdout.splitlines() if "orphan" in line)
    assert "completed" in follow(ws, line, now, EVERYONE)
    assert cli(ws, "reconcile", "--now", now).returncode == 0


@pytest.mark.parametrize("which", [0, 1], ids=["resume", "abort"])
def test_orphan_of_an_interrupted_plan(ws: Path, which: int) -> None:
    now = after(ws, 91)
    crashed = cli(ws, "run", "quarterly-rotation", "--officer", "alice", "--officer", "bob",
                  "--now", now, env={"CEREMONY_UNSAFE_CRASH_AT": "effect:2"})
    assert crashed.returncode == -9
    found = cli(ws, "reconcile", "--now", now)
    assert found.returncode == 1
    line = next(line for line in found.stdout.splitlines() if "orphan" in line)
    assert ("completed" if which == 0 else "aborted") in follow(ws, line, now, which=which)
    if which == 0:  # adopted: the HSM and the ledger agree
        assert cli(ws, "reconcile", "--now", now).returncode == 0


def test_too_few_approvals_to_execute(ws: Path) -> None:
    now = after(ws, 91)
    pid = plan_id(ws, "quarterly-rotation", now)
    ok(ws, "approve", pid, "--officer", "alice", "--now", now)
    line = assert_one_error(cli(ws, "execute", pid, "--officer", "alice", "--officer", "bob",
                                "--now", now), 1, contains="approved by 1 of 2")
    assert f"bob signed plan {pid}" in follow(ws, line, now, ("bob",))

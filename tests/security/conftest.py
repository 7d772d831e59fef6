"""Workspaces for the attacks: a demo workspace whose PKCS#11 module is the logging pass-through.

The officers themselves put the pass-through in place (a `config-change` ceremony with the
destructive quorum), so the workspace is otherwise exactly as they left it; every attack then
runs on its own copy, and the pass-through's log tells whether any command reached `C_Login`.
Without a C compiler the copies use SoftHSM2 directly and the `C_Login` check is left out (the
token's files and PIN flags are still compared).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import after, cli, clone, make_demo, ok, set_config
from tests.security.support import SPY_LOG, build_spy, logins

pytestmark = pytest.mark.hsm

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass
class Target:
    """One attacked workspace copy and the environment every command runs with."""

    ws: Path
    spy_log: Path | None
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return cli(self.ws, *args, env={**self.env, **extra_env})

    def ok(self, *args: str) -> str:
        return ok(self.ws, *args, env=self.env)

    def logins(self) -> int:
        return logins(self.spy_log)


@pytest.fixture(scope="session")
def spied_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bool]:
    """The demo workspace, with the pass-through module recorded by the officers if a C
    compiler is present. Returns the folder and whether the spy is in place."""
    base = tmp_path_factory.mktemp("security")
    ws = make_demo(base / "demo")
    spy = build_spy(base / "spy" / "libpkcs11-spy.so", SOFTHSM)
    if spy is None:
        return ws, False
    set_config(ws, r'^module = "softhsm"$', f'module = "{spy}"')
    ok(ws, "run", "config-change", "--now", after(ws), "--officer", "alice", "--officer", "bob",
       "--officer", "carol")
    return ws, True


@dataclass(frozen=True)
class ApprovedPlan:
    """An export-only plan approved by alice and bob, not executed."""

    plan_id: str
    digest: str
    words: tuple[str, ...]
    now: str


@pytest.fixture(scope="session")
def approved_demo(spied_demo: tuple[Path, bool], tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[Path, ApprovedPlan]:
    source, _ = spied_demo
    ws = clone(source, tmp_path_factory.mktemp("security-approved") / "ws")
    now = after(ws)
    plan = json.loads(ok(ws, "plan", "export-only", "--now", now, "--json"))
    for officer in ("alice", "bob"):
        ok(ws, "approve", plan["plan_id"], "--officer", officer, "--now", now)
    return ws, ApprovedPlan(plan["plan_id"], plan["digest"], tuple(plan["words"]), now)


def _target(source: Path, spied: bool, tmp_path: Path) -> Target:
    ws = clone(source, tmp_path / "ws")
    log = tmp_path / "spy.log" if spied else None
    env = {SPY_LOG: str(log)} if log is not None else {}
    return Target(ws, log, env)


@pytest.fixture
def target(spied_demo: tuple[Path, bool], tmp_path: Path) -> Target:
    """A copy of the spied demo workspace, nothing open."""
    return _target(*spied_demo, tmp_path)


@pytest.fixture
def approved(approved_demo: tuple[Path, ApprovedPlan], spied_demo: tuple[Path, bool],
             tmp_path: Path) -> tuple[Target, ApprovedPlan]:
    """A copy of the spied demo workspace with an approved export-only plan."""
    source, plan = approved_demo
    return _target(source, spied_demo[1], tmp_path), plan

"""The network HSM goes away and comes back: `p11-kit server` restarted in the middle of a
quarterly rotation, and a server that hangs (SIGSTOP on its process group, so the child serving
the console's connection stops too).

* Restarted: the console reports one line (or, if it reconnected by itself, completes); once the
  server is back, `ceremony resume` completes and everything checks out (the token holds every
  key once and agrees with the ledger, the audit pack verifies).
* Hung: the console must not wait for ever. The watchdog on the PKCS#11 lock
  (`console.hsm._pkcs11.LOCK`) ends it with one line within 30 s; the test uses
  CEREMONY_HSM_TIMEOUT=5 to stay quick (`make soak` keeps the default, 25 s). After SIGCONT,
  `resume` completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import (
    PYTHON,
    REPO,
    _env,
    after,
    assert_one_error,
    clone,
    demo_officer_args,
    inspect,
    make_demo,
    ok,
    serve_over_p11kit,
    verify_audit,
)
from tests.softhsm import P11KitServer

pytestmark = [pytest.mark.hsm, pytest.mark.network_hsm, pytest.mark.slow]

OFFICERS = ("--officer", "alice", "--officer", "bob")
SOAK = os.environ.get("CEREMONY_SOAK") == "1"
HANG_LIMIT = None if SOAK else "5"


@dataclass
class Networked:
    ws: Path
    server: P11KitServer
    plan_id: str
    now: str

    @property
    def env(self) -> dict[str, str]:
        return self.server.env()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("net") / "demo")


@pytest.fixture
def networked(demo: Path, tmp_path: Path) -> Iterator[Networked]:
    ws = clone(demo, tmp_path / "ws")
    server = serve_over_p11kit(ws, tmp_path / "p11")
    try:
        env = server.env()
        now = after(ws, 91)
        plan = json.loads(ok(ws, "plan", "quarterly-rotation", "--now", now, "--json", env=env))
        for officer in ("alice", "bob"):
            ok(ws, "approve", plan["plan_id"], "--officer", officer, "--now", now, env=env)
        yield Networked(ws, server, plan["plan_id"], now)
    finally:
        server.stop()


def _start(net: Networked, *args: str, extra: dict[str, str] | None = None
           ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "console", *demo_officer_args(net.ws, args)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=REPO,
        env=_env({**net.env, "CEREMONY_WORKSPACE": str(net.ws), **(extra or {})}))


def _until(proc: subprocess.Popen[str], marker: str) -> list[str]:
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith(marker):
            return lines
    pytest.fail(f"the ceremony never reached {marker!r}:\n" + "".join(lines))


def _finish(proc: subprocess.Popen[str], lines: list[str],
            timeout: float) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(lines) + err)


def _resumed_and_whole(net: Networked, tmp_path: Path) -> None:
    resumed = ok(net.ws, "resume", *OFFICERS, "--now", net.now, env=net.env)
    assert "completed" in resumed
    seen = inspect(net.ws, env=net.env)
    assert seen["reconcile"]["clean"], seen["reconcile"]
    labels = [objects[0][1] for objects in seen["objects"].values()]
    assert len(labels) == len(set(labels)), "a key was generated twice"
    for objects in seen["objects"].values():
        assert sorted(c for c, _ in objects) == ["private key", "public key"]
    verify_audit(net.ws, tmp_path / "audit", env=net.env)


def test_server_restarted_mid_ceremony(networked: Networked, tmp_path: Path) -> None:
    net = networked
    proc = _start(net, "execute", net.plan_id, *OFFICERS, "--now", net.now)
    lines = _until(proc, "… 2/5 generate")
    net.server.kill_connections()
    net.server.start()  # back at once: the console's connection is gone all the same
    result = _finish(proc, lines, timeout=60)
    if result.returncode == 0:
        outcome = "the console reconnected by itself and completed"
        assert "Traceback" not in result.stderr
    else:
        line = assert_one_error(result, 1)
        outcome = f"one line: {line}"
        _resumed_and_whole(net, tmp_path)
    print(f"\nnetwork HSM restarted mid-ceremony: {outcome}; resume completed, checks pass")


def test_hung_server_is_detected(networked: Networked, tmp_path: Path) -> None:
    net = networked
    extra = {"CEREMONY_HSM_TIMEOUT": HANG_LIMIT} if HANG_LIMIT else {}
    proc = _start(net, "execute", net.plan_id, *OFFICERS, "--now", net.now, extra=extra)
    lines = _until(proc, "… 1/5 reconcile")
    assert net.server.proc is not None
    group = net.server.proc.pid
    os.killpg(group, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        result = _finish(proc, lines, timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("hangs 1: the console waited for the stopped HSM for over 60 s")
    finally:
        waited = time.monotonic() - stopped
        os.killpg(group, signal.SIGCONT)
    line = assert_one_error(result, 1, "did not answer")
    assert waited < 30, f"the hang was detected after {waited:.1f} s"
    _resumed_and_whole(net, tmp_path)
    print(f"\nnetwork HSM hung (SIGSTOP): detected after {waited:.1f} s "
          f"(CEREMONY_HSM_TIMEOUT={HANG_LIMIT or 'default 25'}), hangs 0: {line}")

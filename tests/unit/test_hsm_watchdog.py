"""The PKCS#11 lock's watchdog ends a process whose HSM call does not return.

No HSM is needed: a child interpreter holds `console.hsm._pkcs11.LOCK` and sleeps, as a thread
inside a hung C call would. The watchdog must write its one line and exit 1, also in a child
forked after the parent had started its own watchdog (a fork keeps only the forking thread),
and it must leave alone a process that takes the lock many times, each briefly, for longer
than the timeout (holds are told apart, not added up). The network-HSM campaign
(tests/reliability/test_network_hsm_faults.py) shows the same against a stopped
`p11-kit server`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

HUNG = textwrap.dedent(
    """
    import time
    from console.hsm._pkcs11 import LOCK
    with LOCK:
        time.sleep(30)  # a C call that never returns
    print("not stopped")
    """
)

HUNG_AFTER_FORK = textwrap.dedent(
    """
    import os, time
    from console.hsm._pkcs11 import LOCK
    with LOCK:
        pass  # the parent's watchdog runs from here on
    pid = os.fork()
    if pid == 0:
        with LOCK:
            time.sleep(30)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("child exit", os.waitstatus_to_exitcode(status))
    """
)

BUSY = textwrap.dedent(
    """
    import time
    from console.hsm._pkcs11 import LOCK
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        with LOCK:
            time.sleep(0.01)
    print("finished")
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CEREMONY_HSM_TIMEOUT": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_a_hung_call_ends_the_process_with_one_line() -> None:
    result = _run(HUNG)
    assert result.returncode == 1
    assert "not stopped" not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ceremony: error: the HSM did not answer")


def test_a_forked_child_has_its_own_watchdog() -> None:
    result = _run(HUNG_AFTER_FORK)
    assert result.returncode == 0, result.stderr
    assert "child exit 1" in result.stdout
    assert "the HSM did not answer" in result.stderr


def test_many_short_holds_are_not_one_long_one() -> None:
    result = _run(BUSY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "finished" and not result.stderr

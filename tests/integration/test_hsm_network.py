"""The network HSM going away: `p11-kit server` and its `p11-kit-remote` children are killed.

Killing only the server would not cut a live connection (each is served by its own forked
child), so `kill_connections` kills the whole process group. The caller must get a clear
HsmUnavailableError quickly (bounded by a thread join, and by pytest-timeout), never a hang.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from console.errors import ConsoleError, HsmUnavailableError
from console.hsm import Hsm
from tests.integration.conftest import HsmTarget

pytestmark = [pytest.mark.hsm, pytest.mark.network_hsm, pytest.mark.timeout(90)]

BOUND_S = 30.0


def _run_until_error(
    action: Callable[[], object], *, loop: bool
) -> tuple[threading.Thread, dict[str, object], threading.Event]:
    outcome: dict[str, object] = {}
    started = threading.Event()

    def worker() -> None:
        started.set()
        try:
            while True:
                action()
                if not loop:
                    outcome["finished"] = time.monotonic()
                    return
        except ConsoleError as e:
            outcome["error"] = e
            outcome["at"] = time.monotonic()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    started.wait(5)
    return thread, outcome, started


def test_server_killed_while_signing(
    net_target: HsmTarget, hsm_factory: Callable[..., Hsm]
) -> None:
    hsm = hsm_factory(net_target)
    key = hsm.generate_keypair("ES256", label="net-sign")
    thread, outcome, _ = _run_until_error(lambda: hsm.sign(key.cka_id, "ES256", b"jwt"), loop=True)
    time.sleep(0.3)  # signing in full swing
    assert net_target.server is not None
    killed_at = time.monotonic()
    net_target.server.kill_connections()
    thread.join(BOUND_S)
    assert not thread.is_alive(), "signing hung after the network HSM died"
    error = outcome["error"]
    assert isinstance(error, HsmUnavailableError)
    assert float(outcome["at"]) - killed_at < BOUND_S  # type: ignore[arg-type]
    text = str(error)
    assert text.startswith("HSM unavailable") and "ceremony reconcile" in text
    started = time.monotonic()
    with pytest.raises(HsmUnavailableError):
        hsm.inventory()  # still gone: a clear error again, not a hang
    assert time.monotonic() - started < BOUND_S


def test_server_killed_during_rsa4096_generation(
    net_target: HsmTarget, hsm_factory: Callable[..., Hsm]
) -> None:
    hsm = hsm_factory(net_target)
    thread, outcome, _ = _run_until_error(
        lambda: hsm.generate_keypair("RS256", label="net-big", rsa_bits=4096), loop=False
    )
    time.sleep(0.1)  # RSA-4096 generation takes 0.5 s to seconds here
    assert net_target.server is not None
    killed_at = time.monotonic()
    net_target.server.kill_connections()
    thread.join(BOUND_S)
    assert not thread.is_alive(), "key generation hung after the network HSM died"
    assert "finished" not in outcome, "generation finished before the kill; cannot judge"
    error = outcome["error"]
    assert isinstance(error, HsmUnavailableError)
    assert float(outcome["at"]) - killed_at < BOUND_S  # type: ignore[arg-type]
    assert "ceremony reconcile" in str(error)


def test_restarted_server_is_reached_again(
    net_target: HsmTarget, hsm_factory: Callable[..., Hsm]
) -> None:
    hsm = hsm_factory(net_target)
    key = hsm.generate_keypair("ES256", label="net-restart")
    assert net_target.server is not None
    net_target.server.kill_connections()
    with pytest.raises(HsmUnavailableError):
        hsm.sign(key.cka_id, "ES256", b"x")
    net_target.server.start()  # the operator restarts the network HSM
    sig = hsm.sign(key.cka_id, "ES256", b"x")  # reconnect, log in again, find the key by id
    assert len(sig) == 64

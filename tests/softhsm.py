"""Real SoftHSM2 tokens and a real `p11-kit server` for the tests (no mocks).

`make_token` initialises a fresh token in its own directory with `softhsm2-util`; `P11KitServer`
serves a SoftHSM2 token over a unix socket so that the client module `p11-kit-client.so` acts as
a network HSM. Both are used by the session fixtures in `tests/conftest.py`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
P11KIT_CLIENT_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/pkcs11/p11-kit-client.so",
)

TEST_SO_PIN = "test-so-pin-0000"
TEST_USER_PIN = "test-user-pin-1111"


def find_first(candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if Path(c).exists()), None)


@dataclass(frozen=True)
class SoftHsmToken:
    """A token made for tests: where its config lives, its label, and its PINs."""

    conf: Path
    module: str
    label: str
    user_pin: str = TEST_USER_PIN
    so_pin: str = TEST_SO_PIN

    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}


def write_softhsm_conf(directory: Path) -> Path:
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    return conf


def make_token(directory: Path, label: str, *, conf: Path | None = None) -> SoftHsmToken:
    """Initialise a new SoftHSM2 token `label` (config in `directory` unless `conf` is given)."""
    module = find_first(SOFTHSM_MODULE_CANDIDATES)
    if module is None or shutil.which("softhsm2-util") is None:
        raise RuntimeError("SoftHSM2 is not installed: run `make test`, which installs it")
    conf = conf or write_softhsm_conf(directory)
    subprocess.run(
        [
            "softhsm2-util", "--init-token", "--free", "--label", label,
            "--so-pin", TEST_SO_PIN, "--pin", TEST_USER_PIN,
        ],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
    )
    return SoftHsmToken(conf=conf, module=module, label=label)


class P11KitServer:
    """`p11-kit server` in front of a SoftHSM2 token: the network HSM of the tests.

    Killing the server alone does not cut live connections (each is served by a forked
    `p11-kit-remote` child); `kill_connections` kills the whole process group to cut them.
    """

    def __init__(self, token: SoftHsmToken, socket_dir: Path) -> None:
        self.token = token
        self.socket = socket_dir / "hsm.sock"
        self.client_module = find_first(P11KIT_CLIENT_CANDIDATES)
        if self.client_module is None or shutil.which("p11-kit") is None:
            raise RuntimeError("p11-kit is not installed: run `make test`, which installs it")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix:path={self.socket}"

    def start(self) -> None:
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        self.proc = subprocess.Popen(
            [
                "p11-kit", "server", "--foreground", "--sh",
                "--provider", self.token.module, "--name", str(self.socket),
                f"pkcs11:token={self.token.label}",
            ],
            env={**os.environ, "SOFTHSM2_CONF": str(self.token.conf)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("p11-kit server did not start")
            time.sleep(0.05)
        self._wait_until_serving(deadline + 20)

    def _wait_until_serving(self, deadline: float) -> None:
        """The socket can exist before the server answers with its token (seen on a loaded
        machine: a client connecting then saw no token). Wait until a client sees it."""
        tool = shutil.which("pkcs11-tool")
        if tool is None or self.client_module is None:
            return
        env = {**os.environ, "P11_KIT_SERVER_ADDRESS": self.address}
        while True:
            out = subprocess.run([tool, "--module", self.client_module, "--list-token-slots"],
                                 env=env, capture_output=True, text=True, timeout=20)
            if self.token.label in out.stdout:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"p11-kit server does not show token {self.token.label}")
            time.sleep(0.1)

    def kill_connections(self) -> None:
        """Kill the server and every `p11-kit-remote` child serving a live connection."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        # Children re-parented to init keep the group id; find stragglers by command line.
        out = subprocess.run(["ps", "-eo", "pid,pgid,args"], capture_output=True, text=True).stdout
        for line in out.splitlines()[1:]:
            m = re.match(r"\s*(\d+)\s+(\d+)\s+(.*)", line)
            if m and int(m.group(2)) == pgid:
                with suppress(ProcessLookupError):
                    os.kill(int(m.group(1)), signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        self.kill_connections()

    def env(self) -> dict[str, str]:
        return {"P11_KIT_SERVER_ADDRESS": self.address}

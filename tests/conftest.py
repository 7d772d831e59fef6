"""Session-wide fixtures: a real SoftHSM2 token directory, p11-kit server, and a clean environment.

SoftHSM2 reads `SOFTHSM2_CONF` once, when the module is loaded into the process, and python-pkcs11
caches loaded modules; so one configuration (one token directory) serves the whole test session,
and every test that needs its own token makes one with a unique label in it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.softhsm import P11KitServer, SoftHsmToken, make_token, write_softhsm_conf

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="ceremony-tests-"))
_SESSION_CONF = write_softhsm_conf(_SESSION_DIR / "softhsm")
# Before anything loads SoftHSM2 into this process.
os.environ["SOFTHSM2_CONF"] = str(_SESSION_CONF)
os.environ.pop("CEREMONY_WORKSPACE", None)
_labels = itertools.count(1)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Each pytest process (controller, xdist worker, a test's own pytest run) removes the
    tokens it made: their PINs are the tests' known ones, but a token left in /tmp is still a
    key store nobody owns."""
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault campaigns' figures (tests/reliability/conftest.py puts them on the reports,
    which xdist workers send back here)."""
    lines = [value for reports in terminalreporter.stats.values() for report in reports
             for key, value in getattr(report, "user_properties", ())
             if key == "fault campaign figures"]
    if lines:
        terminalreporter.write_sep("-", "fault campaign figures")
        for line in dict.fromkeys(lines):  # a test's properties ride on each of its reports
            terminalreporter.write_line(str(line))


def pytest_report_header(config: pytest.Config) -> list[str]:
    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "not found"

    return [
        f"softhsm2-util: {version(['softhsm2-util', '--version'])}",
        f"p11-kit: {version(['p11-kit', '--version'])}",
        f"SOFTHSM2_CONF: {_SESSION_CONF}",
    ]


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def make_softhsm_token() -> Callable[[str], SoftHsmToken]:
    """Factory: a fresh, initialised SoftHSM2 token with a unique label in the session's config."""

    def factory(prefix: str = "test") -> SoftHsmToken:
        label = f"{prefix}-{next(_labels)}"
        return make_token(_SESSION_DIR / "softhsm", label, conf=_SESSION_CONF)

    return factory


@pytest.fixture(scope="session")
def softhsm_token(make_softhsm_token: Callable[[str], SoftHsmToken]) -> SoftHsmToken:
    """One token shared by the session (tests must not depend on its exact contents)."""
    return make_softhsm_token("session")


@pytest.fixture
def p11kit_server(
    make_softhsm_token: Callable[[str], SoftHsmToken], tmp_path: Path
) -> Iterator[P11KitServer]:
    """A fresh token served by `p11-kit server` (the network HSM), stopped after the test."""
    server = P11KitServer(make_softhsm_token("net"), tmp_path / "p11")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _no_developer_workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own workspace out of every test."""
    monkeypatch.setenv("CEREMONY_WORKSPACE", str(tmp_path / "no-workspace-here"))

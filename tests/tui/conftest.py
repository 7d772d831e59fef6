"""TUI fixtures: the fixed snapshot workspace, and real demo workspaces made in subprocesses.

SoftHSM2 reads SOFTHSM2_CONF once per process, and tests/conftest.py fixes it for the session;
a demo workspace carries its own token and config. So demo workspaces are made by
`ceremony demo --headless` in a subprocess (which sets its own SOFTHSM2_CONF), and anything that
logs in to their token (the ceremony Pilot test) also runs in a subprocess. The pytest process
itself only reads ledgers and files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui.snapshot_app import copy_fixture

REPO = Path(__file__).resolve().parents[2]
CEREMONY = str(Path(sys.executable).with_name("ceremony"))


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SOFTHSM2_CONF", None)  # the child uses the demo workspace's own config
    env.pop("CEREMONY_WORKSPACE", None)
    env["PYTHONPATH"] = str(REPO)
    return env


def make_demo(root: Path) -> Path:
    """A fresh demo workspace (real SoftHSM2 token inside it), made in a subprocess."""
    out = subprocess.run([CEREMONY, "demo", "--workspace", str(root), "--headless"],
                         capture_output=True, text=True, timeout=120, env=subprocess_env(),
                         cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return root


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo workspace per session; tests that change it must use `fresh_demo` instead."""
    return make_demo(tmp_path_factory.mktemp("tui-demo") / "demo")


@pytest.fixture
def fresh_demo(tmp_path: Path) -> Path:
    return make_demo(tmp_path / "demo")


@pytest.fixture
def snapshot_workspace(tmp_path: Path) -> Path:
    return copy_fixture(tmp_path)


async def settle(pilot: Pilot[None]) -> None:
    """Wait until every worker has finished and its messages are handled; stop cursor blinks."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


@pytest.fixture
def wait_for_workers() -> Callable[[Pilot[None]], Awaitable[None]]:
    return settle


def have_tmux() -> bool:
    return shutil.which("tmux") is not None

"""Snapshots: every screen and dialog at 80x24, the main screens at 160x48, the dashboard at 120x36.

The app comes from tests/tui/snapshot_app.py (committed demo workspace, fixed clock). Accept
intended changes with `pytest tests/tui --snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import settle
from tests.tui.snapshot_app import snapshot_app

SCREENS = [
    pytest.param([], id="dashboard"),
    pytest.param(["c"], id="ceremony"),
    pytest.param(["l"], id="ledger"),
    pytest.param(["e"], id="exports"),
    pytest.param(["o"], id="officers"),
    pytest.param(["h"], id="hsm"),
    pytest.param(["question_mark"], id="help"),
    pytest.param(["l", "enter"], id="ledger-entry-proof"),
    pytest.param(["e", "k"], id="exports-signing-key-qr"),
]


async def _press_and_settle(pilot: Pilot[None], keys: list[str]) -> None:
    await settle(pilot)
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


@pytest.mark.parametrize("keys", SCREENS)
def test_screen_80x24(snap_compare: Callable[..., bool], snapshot_workspace: Path,
                      keys: list[str]) -> None:
    app = snapshot_app(snapshot_workspace)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _press_and_settle(pilot, keys)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_dashboard_120x36(snap_compare: Callable[..., bool], snapshot_workspace: Path) -> None:
    app = snapshot_app(snapshot_workspace)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _press_and_settle(pilot, [])

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


@pytest.mark.parametrize("keys", [pytest.param([], id="dashboard"),
                                  pytest.param(["c"], id="ceremony"),
                                  pytest.param(["l"], id="ledger")])
def test_screen_160x48(snap_compare: Callable[..., bool], snapshot_workspace: Path,
                       keys: list[str]) -> None:
    """The large terminal the officers' room uses: nothing stretched into emptiness or cut."""
    app = snapshot_app(snapshot_workspace)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _press_and_settle(pilot, keys)

    assert snap_compare(app, terminal_size=(160, 48), run_before=run_before)

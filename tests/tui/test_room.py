"""Issue 15 in the TUI, by keys: the QR dialog says how to close it, and the command palette
finds every screen's actions by name. Runs on the committed snapshot workspace (no HSM)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Label

from console.tui.dialogs.qr import QrDialog
from tests.tui.conftest import settle
from tests.tui.snapshot_app import snapshot_app


async def test_the_qr_dialog_says_how_to_close_it(snapshot_workspace: Path) -> None:
    app = snapshot_app(snapshot_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in ("e", "k"):
            await pilot.press(key)
            await settle(pilot)
        assert isinstance(app.screen, QrDialog)
        title = app.screen.query_one("#qr-title", Label)
        assert "esc, enter or q closes" in str(title.render())
        assert title.region.y >= 0 and title.region.bottom <= 24  # on screen at 80x24
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, QrDialog)

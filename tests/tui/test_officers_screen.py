"""The Officers screen says what the ledger says: enrolled officers are marked ✓ enrolled."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from console.tui.app import CeremonyApp
from console.tui.backend import Backend
from console.workspace import Workspace
from tests.tui.conftest import settle


async def test_enrolled_officers_are_marked_enrolled(demo_workspace: Path) -> None:
    ws = Workspace.open(demo_workspace)
    try:
        app = CeremonyApp(Backend(ws), check_health=False)
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(pilot)
            await pilot.press("o")
            await settle(pilot)
            table = app.screen.query_one("#officers", DataTable)
            rows = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1])
                    for i in range(table.row_count)}
    finally:
        ws.close()
    assert rows == {"alice": "✓ enrolled", "bob": "✓ enrolled", "carol": "✓ enrolled"}

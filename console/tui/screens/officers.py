"""Officers: who may approve, since when, their card fingerprint words, their last approval."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from console.ledger.display import escape_for_display
from console.tui.screens._base import SCREENS_CSS, ConsoleScreen

if TYPE_CHECKING:
    from console.ceremony.officers import OfficerRow


class OfficersScreen(ConsoleScreen):
    CSS_PATH = SCREENS_CSS

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="pane", id="officers-pane"):
            yield Label("Officers", classes="pane-title", id="officers-title")
            yield DataTable(id="officers", cursor_type="row")
        yield Static(Text("Enrolling or revoking an officer is a ceremony: choose officer-change "
                          "on the Ceremony screen (c).", style="dim"), id="officers-hint")

    def on_mount(self) -> None:
        self.query_one("#officers", DataTable).add_columns(
            "officer", "status", "enrolled (UTC)", "last approval", "fingerprint words")
        super().on_mount()

    def refresh_data(self) -> None:
        self.load("officers", self.backend.officers, "Reading officers from the ledger")

    def show_officers(self, rows: list[OfficerRow]) -> None:
        table = self.query_one("#officers", DataTable)
        table.clear()
        for row in rows:
            status = str(row.get("status", ""))
            table.add_row(
                Text(escape_for_display(str(row.get("name", "")))),
                status_mark(status),
                _short(row.get("enrolled_at")),
                _short(row.get("last_approval")),
                Text(escape_for_display(str(row.get("fingerprint", "")))),
            )
        m_n = self.backend.quorum_for("routine")
        self.query_one("#officers-title", Label).update(
            f"Officers · routine quorum {m_n[0]} of {m_n[1]}")


def status_mark(status: str) -> Text:
    """✓ enrolled (in force) · ! anything pending a checkpoint · ✗ revoked."""
    if status.endswith("(pending)"):
        return Text(f"! {status}", style="yellow")
    if status in ("enrolled", "active"):
        return Text(f"✓ {status}", style="green")
    return Text(f"✗ {status}", style="red")


def _short(value: str | None) -> str:
    return str(value)[:16].replace("T", " ") if value else "—"

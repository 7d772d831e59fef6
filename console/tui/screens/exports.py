"""Exports: bundles per keyset (verified offline against the pinned bundle-signing key), the
files of the selected bundle with where each goes, and the signing key's thumbprint as a QR."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from console.tui.backend import BundleRow
from console.tui.dialogs.qr import QrDialog
from console.tui.screens._base import SCREENS_CSS, ConsoleScreen

if TYPE_CHECKING:
    from console.jsontypes import JsonMapping


class ExportsScreen(ConsoleScreen):
    CSS_PATH = SCREENS_CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("w", "bundle_qr", "Digest QR"),
        Binding("k", "key_qr", "Signing key QR"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[BundleRow] = []
        self.signing_kid: str | None = None

    def compose_body(self) -> ComposeResult:
        yield Static(Text("reading exports…", style="dim"), id="signing-key")
        with Vertical(id="bundles-pane", classes="pane"):
            yield Label("Bundles", classes="pane-title")
            yield DataTable(id="bundles", cursor_type="row")
            yield Static("", id="bundle-changes")
        with Vertical(id="files-pane", classes="pane"):
            yield Label("Files of the selected bundle", classes="pane-title", id="files-title")
            yield DataTable(id="files", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#bundles", DataTable).add_columns(
            "keyset", "seq", "time (UTC)", "keys", "digest", "verified")
        self.query_one("#files", DataTable).add_columns("file", "bytes", "goes to")
        super().on_mount()

    def refresh_data(self) -> None:
        backend = self.backend

        def read() -> tuple[JsonMapping | None, list[BundleRow]]:
            return backend.signing_key(), backend.bundles()

        self.load("exports", read, "Reading and verifying bundles")

    def show_exports(self, value: tuple[JsonMapping | None, list[BundleRow]]) -> None:
        key, self.rows = value
        head = Text()  # wraps: the thumbprint is the value operators pin, never cut
        if key is None:
            self.signing_kid = None
            head.append("! no bundle-signing key exported yet — run genesis", style="yellow")
        else:
            self.signing_kid = str(key.get("kid", ""))
            head.append("Bundle-signing key ", style="bold")
            head.append(f"{key.get('alg', '')} thumbprint {self.signing_kid}")
            head.append("   [k] QR to pin it", style="dim")
        self.query_one("#signing-key", Static).update(head)
        table = self.query_one("#bundles", DataTable)
        table.clear()
        for row in self.rows:
            mark = "✓" if row.verified else ("…" if row.verified is None else "✗ " + row.problem)
            table.add_row(row.keyset, f"#{row.seq}", row.time.strftime("%Y-%m-%d %H:%M"),
                          str(len(row.kids)), row.sha256[:12] + "…", mark)
        self._show_files(0)

    @on(DataTable.RowHighlighted, "#bundles")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_files(event.cursor_row)

    def _show_files(self, index: int) -> None:
        files = self.query_one("#files", DataTable)
        files.clear()
        if not 0 <= index < len(self.rows):
            return
        row = self.rows[index]
        self.query_one("#bundle-changes", Static).update(changes_text(row))
        self.query_one("#files-title", Label).update(
            f"Files of {row.keyset} #{row.seq} · {row.path}")
        for f in row.files:
            files.add_row(f.name, f"{f.size:,}", f.destination)

    def _selected(self) -> BundleRow | None:
        index = self.query_one("#bundles", DataTable).cursor_row
        return self.rows[index] if 0 <= index < len(self.rows) else None

    def action_bundle_qr(self) -> None:
        row = self._selected()
        if row is not None:
            self.app.push_screen(QrDialog(f"{row.keyset} bundle #{row.seq} SHA-256", row.sha256))

    def action_key_qr(self) -> None:
        if self.signing_kid:
            self.app.push_screen(QrDialog("Bundle-signing key thumbprint", self.signing_kid))


def changes_text(row: BundleRow) -> Text:
    """What changed since the keyset's previous bundle: kids added and removed, in full (the
    values operators compare), wrapped."""
    text = Text()
    if row.previous_seq is None:
        text.append(f"#{row.seq} is the first bundle of {row.keyset}", style="bold")
    else:
        text.append(f"#{row.seq} since #{row.previous_seq}:", style="bold")
        if not row.added and not row.removed:
            text.append(" no key added or removed")
    for kid in row.added:
        text.append("\n  + added   ", style="green")
        text.append(kid)
    for kid in row.removed:
        text.append("\n  − removed ", style="red")
        text.append(kid)
    return text

"""The help screen: every key, what it does, and where the command palette is."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

KEYS: tuple[tuple[str, str], ...] = (
    ("d c l e o h", "Dashboard, Ceremony, Ledger, Exports, Officers, HSM"),
    ("?", "this help"),
    ("ctrl+p", "command palette: every screen and action by name"),
    ("ctrl+q", "quit"),
    ("r", "refresh the current screen"),
    ("Ceremony: p", "plan the chosen script for the chosen keyset"),
    ("Ceremony: a", "an officer approves (card file and passphrase)"),
    ("Ceremony: x", "execute once the quorum has approved"),
    ("Ceremony: w", "show the plan digest as a QR code"),
    ("Ledger: / f", "filter by type prefix, ceremony id or kid"),
    ("Ledger: enter", "entry detail with its inclusion proof"),
    ("Ledger: v", "verify the whole tree (progress bar)"),
    ("Exports: w", "QR of the selected bundle's digest"),
    ("Exports: k", "QR of the bundle-signing key thumbprint"),
)


class HelpDialog(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        table = Table(show_header=False, box=None, padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with VerticalScroll(classes="dialog -help"):
            yield Label("Keys", classes="dialog-title")
            yield Static(table)
            yield Static("Times are UTC. ✓ ok · ! needs action · ✗ failed. Colour only repeats "
                         "what the symbol says.", classes="caption")

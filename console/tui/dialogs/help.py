"""The help screen: every key, what it does, and where the command palette is."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from console.tui.screens._base import SCREENS_CSS

KEYS: tuple[tuple[str, str], ...] = (
    ("d c l e o h", "Dashboard, Ceremony, Ledger, Exports, Officers, HSM"),
    ("?", "this help"),
    ("ctrl+p", "command palette: every screen and action by name"),
    ("ctrl+q", "quit (during a run: asks, and can quit when it has finished)"),
    ("r", "refresh the current screen (screens also refresh after every ledger change)"),
    ("Dashboard: g", "open the open or interrupted ceremony on the Ceremony screen"),
    ("Ceremony: p", "plan the chosen script for the chosen keyset"),
    ("Ceremony: a", "an officer approves (card file and passphrase, 3 tries)"),
    ("Ceremony: x", "show what will run and confirm (destructive: type the keyset or words)"),
    ("Ceremony: u", "resume the interrupted ceremony (its approvers unlock their cards)"),
    ("Ceremony: b", "abort the open ceremony (an approving officer unlocks their card)"),
    ("Ceremony: w", "show the plan digest as a QR code"),
    ("Ledger: / f", "filter by type prefix, ceremony id or kid"),
    ("Ledger: enter", "entry detail with its inclusion proof"),
    ("Ledger: v", "verify the whole tree (progress bar)"),
    ("Exports: w", "QR of the selected bundle's digest"),
    ("Exports: k", "QR of the bundle-signing key thumbprint"),
)


class HelpDialog(ModalScreen[None]):
    CSS_PATH = SCREENS_CSS
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
                         "what the symbol says. Unlocked cards are wiped after a few idle "
                         "minutes and on leaving the Ceremony screen.", classes="caption")

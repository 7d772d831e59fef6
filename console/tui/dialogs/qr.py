"""A QR code on demand, with the text it carries underneath."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from console.tui.widgets.qr import QrCode


class QrDialog(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, title: str, payload: str, caption: str = "") -> None:
        super().__init__()
        self.title_text, self.payload, self.caption = title, payload, caption

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -qr"):
            yield Label(Text(self.title_text, style="bold"), classes="dialog-title")
            yield QrCode(self.payload, id="qr")
            yield Static(Text(self.caption or self.payload), classes="caption")

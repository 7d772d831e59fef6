"""A QR code on demand, with the text it carries underneath."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from console.tui.screens._base import SCREENS_CSS
from console.tui.widgets.qr import QrCode


class QrDialog(ModalScreen[None]):
    CSS_PATH = SCREENS_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, title: str, payload: str, caption: str = "") -> None:
        super().__init__()
        self.title_text, self.payload, self.caption = title, payload, caption

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog -qr"):
            # The way out is on the title line: at 80x24 a large code fills the dialog.
            yield Label(Text.assemble((self.title_text, "bold"), ("  esc, enter or q closes",
                                                                  "dim")),
                        classes="dialog-title", id="qr-title")
            yield QrCode(self.payload, id="qr")
            yield Static(Text(self.caption or self.payload), classes="caption")

"""The error dialog: the same one line the CLI prints, and nothing else."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from console.tui.screens._base import SCREENS_CSS


class ErrorDialog(ModalScreen[None]):
    CSS_PATH = SCREENS_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -error"):
            yield Label(Text(f"✗ {self.title_text}", style="bold"), classes="dialog-title")
            yield Static(Text(self.message), id="error-message")
            yield Button("Close", id="close", variant="error")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)

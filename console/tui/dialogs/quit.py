"""ctrl+q while a ceremony step runs: the run cannot be stopped half-way, so the console asks
whether to quit when it has finished, rather than leaving it to go on unseen."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from console.tui.screens._base import SCREENS_CSS


class QuitDialog(ModalScreen[bool]):
    """True: quit as soon as the run has finished (its end is shown first)."""

    CSS_PATH = SCREENS_CSS

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "stay", "Keep watching")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -quit"):
            yield Label(Text("A ceremony step is running", style="bold"),
                        classes="dialog-title")
            yield Static(Text(
                "Quitting now would leave the HSM work going on unseen. The console can quit "
                "as soon as the run has finished and its result is recorded; if it is stopped "
                "anyway, `ceremony status` shows where it got to and `ceremony resume` "
                "continues it."))
            with Horizontal(classes="buttons"):
                yield Button("Quit when it finishes", id="quit-later", variant="warning")
                yield Button("Keep watching", id="stay", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()

    @on(Button.Pressed, "#quit-later")
    def _later(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#stay")
    def action_stay(self) -> None:
        self.dismiss(False)

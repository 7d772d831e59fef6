"""An officer approves a plan: name, card file, passphrase (no echo), the digest words to check.

The dialog only collects input; the caller unlocks the card and signs in a worker. The passphrase
leaves the dialog in `ApprovalInput`, whose repr hides it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static


@dataclass(frozen=True, slots=True)
class ApprovalInput:
    officer: str
    card: Path
    passphrase: str = field(repr=False)


class ApprovalDialog(ModalScreen[ApprovalInput | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, officers: list[str], words: str, grouped: str,
                 default_cards: dict[str, Path], pending: list[str]) -> None:
        super().__init__()
        self.officers = officers
        self.words, self.grouped = words, grouped
        self.default_cards = default_cards
        self.pending = pending

    def compose(self) -> ComposeResult:
        first = self.pending[0] if self.pending else (self.officers[0] if self.officers else None)
        with Vertical(classes="dialog -approval"):
            yield Label(Text("Approve the plan", style="bold"), classes="dialog-title")
            yield Static(Text.assemble(("You sign digest ", ""), (self.grouped, "bold")),
                         id="approval-digest")
            yield Static(Text.assemble(("Read aloud: ", ""), (self.words, "bold")),
                         id="approval-words")
            yield Label("Officer")
            yield Select([(name, name) for name in self.officers], value=first or Select.NULL,
                         allow_blank=False, id="officer")
            yield Label("Card file")
            default = self.default_cards.get(first or "")
            yield Input(str(default) if default else "", placeholder="/media/usb/alice.card",
                        id="card")
            yield Label("Passphrase")
            yield Input(password=True, id="passphrase")
            with Horizontal(classes="buttons"):
                yield Button("Approve", id="approve", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#passphrase", Input).focus()

    @on(Select.Changed, "#officer")
    def _officer_changed(self, event: Select.Changed) -> None:
        card = self.default_cards.get(str(event.value))
        if card is not None:
            self.query_one("#card", Input).value = str(card)

    @on(Input.Submitted, "#passphrase")
    @on(Button.Pressed, "#approve")
    def _approve(self) -> None:
        officer = self.query_one("#officer", Select).value
        card = self.query_one("#card", Input).value.strip()
        passphrase = self.query_one("#passphrase", Input).value
        if not isinstance(officer, str) or not card or not passphrase:
            self.notify("name, card file and passphrase are all needed", severity="warning")
            return
        self.dismiss(ApprovalInput(officer, Path(card).expanduser(), passphrase))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

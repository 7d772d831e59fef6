"""HSM: what `ceremony doctor` reports (module, token, PIN state, mechanisms per algorithm), and
how the token's objects reconcile with the ledger."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from console.tui.screens._base import SCREENS_CSS, ConsoleScreen


class HsmScreen(ConsoleScreen):
    CSS_PATH = SCREENS_CSS

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="hsm-body"):
            yield Label("Doctor", classes="pane-title")
            yield Static(Text("probing the PKCS#11 module…", style="dim"), id="doctor")
            yield Label("Reconciliation (HSM inventory vs ledger)", classes="pane-title")
            yield Static(Text("reading the token…", style="dim"), id="reconcile")

    def refresh_data(self) -> None:
        self.load("doctor", self.backend.doctor_text, "Probing the HSM")
        self.load("reconcile", self.backend.reconcile_text, "Reconciling HSM and ledger")

    def show_doctor(self, text: str) -> None:
        self.query_one("#doctor", Static).update(Text(text))

    def show_reconcile(self, text: str) -> None:
        self.query_one("#reconcile", Static).update(Text(text))

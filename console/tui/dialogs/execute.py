"""Execution is a deliberate act: what will happen, the quorum, and a second key to go on.

A destructive ceremony (the destructive quorum class, key destruction, an officer or
configuration change) asks for the keyset name, or the first two digest words, to be typed.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console.errors import UsageError
from console.quorum.words import digest_words
from console.tui.screens._base import SCREENS_CSS

DESTRUCTIVE_ACTIONS = frozenset({"destroy", "destroy_orphan", "revoke_officer", "compromise",
                                 "record_config", "resplit_pin", "release_signer",
                                 "revoke_signer"})


def typed_confirms(typed: str, keysets: tuple[str, ...], digest: bytes) -> bool:
    """The keyset name (one of the plan's), or at least the first two digest words."""
    from console.ceremony.review import check_words

    if typed.strip() and typed.strip() in keysets:
        return True
    try:
        check_words(digest, typed)
    except UsageError:
        return False
    return True


class ExecuteDialog(ModalScreen[bool]):
    """Dismisses with True only on a deliberate Execute (and, if destructive, the typed name)."""

    CSS_PATH = SCREENS_CSS

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, *, title: str, steps: list[tuple[str, str]], quorum: str,
                 destructive: bool, keysets: tuple[str, ...], digest: bytes,
                 verb: str = "Execute") -> None:
        super().__init__()
        self.title_text, self.steps, self.quorum = title, steps, quorum
        self.destructive, self.keysets, self.digest, self.verb = (destructive, keysets, digest,
                                                                  verb)

    def compose(self) -> ComposeResult:
        body = Text()
        body.append("This will:\n", style="bold")
        for mark, line in self.steps:
            body.append(f"  {mark} ", style="bold red" if mark == "✗" else "bold")
            body.append(line + "\n")
        body.rstrip()
        with VerticalScroll(classes="dialog -execute"):
            yield Label(Text(self.title_text, style="bold"), classes="dialog-title")
            with VerticalScroll(id="execute-steps"):
                yield Static(body, id="execute-body")
            yield Static(Text(self.quorum, style="bold"), id="execute-quorum")
            if self.destructive:
                what = (f"the keyset name ({' or '.join(self.keysets)})" if self.keysets
                        else "the first two digest words")
                words = " ".join(digest_words(self.digest)[:2])
                hint = f" or the first two words ({words}…)" if self.keysets else f" ({words}…)"
                yield Static(Text(f"! destructive: type {what}{hint} to go on",
                                  style="bold yellow"))
                yield Input(id="confirm-text", placeholder=self.keysets[0] if self.keysets
                            else "word word", compact=True)
            yield Static("", id="execute-status")
            with Horizontal(classes="buttons"):
                yield Button(self.verb, id="execute", variant="error" if self.destructive
                             else "primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        if self.destructive:
            self.query_one("#confirm-text", Input).focus()
        else:
            self.query_one("#execute", Button).focus()

    @on(Input.Submitted, "#confirm-text")
    @on(Button.Pressed, "#execute")
    def _execute(self) -> None:
        if self.destructive:
            typed = self.query_one("#confirm-text", Input).value
            if not typed_confirms(typed, self.keysets, self.digest):
                self.query_one("#execute-status", Static).update(Text(
                    "✗ that is not the keyset name nor the plan's first digest words",
                    style="bold red"))
                return
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)

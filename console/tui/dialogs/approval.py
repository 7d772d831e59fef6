"""An officer unlocks their card: name, card file, passphrase (no echo), the digest words to check.

One dialog for every act that needs a card (approve, unlock again for an execution, resume,
abort). It runs the act itself, in a thread worker, through a `CardSource` that the session asks
for passphrases: a wrong passphrase keeps the dialog open with the card path as typed, says so,
and asks again, up to the session's three tries (each recorded in the ledger). Anything refused
before a passphrase was tried (a card file that cannot be read, an officer who may not act)
is shown in the dialog too, so the officer can correct it. The dialog closes with the act's
result, or with None when cancelled or after the last try failed (the error then opens the
usual error dialog).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from console.errors import CardError, ConsoleError, UsageError
from console.tui.messages import OperationFailed
from console.tui.screens._base import SCREENS_CSS

if TYPE_CHECKING:
    from console.ceremony.session import CardSource

UNLOCK_TRIES = 3
"""The session's tries (console.ceremony.session.UNLOCK_TRIES, not imported at start-up: the
session module loads the engine); tests/tui check that both agree."""

T = TypeVar("T")


class WordsInput(Input):
    """The field for the first digest words. Keys that reach it after its Enter belong to the
    passphrase: typed in one burst (a paste, a password manager, automation) they are queued
    here before the focus moves, and would show the passphrase in clear text. They are passed
    on to the passphrase field instead, until the officer comes back to this field."""

    handed_over = False

    async def action_submit(self) -> None:
        self.handed_over = True
        await super().action_submit()

    def _on_focus(self, event: events.Focus) -> None:
        self.handed_over = False
        super()._on_focus(event)

    async def _on_key(self, event: events.Key) -> None:
        if not self.handed_over:
            # Enter's binding (submit) runs only after the event bubbles to the app, behind the
            # keys already queued here: hand over now.
            self.handed_over = event.key == "enter"
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        self.screen.query_one("#passphrase", Input).post_message(
            events.Key(event.key, event.character))

CardAct = Callable[[str, "CardSource"], T]
"""What the dialog does once it has an officer and a card: (officer, cards) → result."""


class DialogCards:
    """The `CardSource` behind the dialog: the card path typed, the first passphrase typed,
    and each later one when the officer types it (the worker thread waits for it)."""

    def __init__(self, card: Path, first: str, ask_again: Callable[[int], None]) -> None:
        self.card = card
        self._first: str | None = first
        self._ask_again = ask_again
        self._answers: queue.Queue[str | None] = queue.Queue()
        self.attempts = 0
        self.waiting = False

    def card_path(self, officer: str) -> Path:
        return self.card

    def passphrase(self, officer: str, attempt: int) -> str:
        self.attempts = attempt
        if attempt == 1 and self._first is not None:
            first, self._first = self._first, None
            return first
        self.waiting = True
        self._ask_again(attempt)
        answer = self._answers.get()
        self.waiting = False
        if answer is None:
            raise CardError("unlocking was cancelled", "open the dialog again")
        return answer

    def answer(self, passphrase: str | None) -> None:
        """The next passphrase typed (None: cancelled), for the waiting worker."""
        self._answers.put(passphrase)


class ApprovalDialog(ModalScreen[T | None], Generic[T]):
    """See the module docstring. `words`/`grouped` show what the officer signs, if anything."""

    CSS_PATH = SCREENS_CSS

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    @dataclass
    class AskAgain(Message):
        attempt: int

    @dataclass
    class Done(Message):
        result: object

    @dataclass
    class Failed(Message):
        error: ConsoleError
        attempts: int

    def __init__(self, officers: list[str], words: str, grouped: str,
                 default_cards: dict[str, Path], pending: list[str], *,
                 act: CardAct[T], title: str = "Approve the plan", button: str = "Approve",
                 intro: Text | None = None, digest: bytes | None = None) -> None:
        super().__init__()
        self.officers = officers
        self.words, self.grouped = words, grouped
        self.default_cards = default_cards
        self.pending = pending
        self.act = act
        self.title_text, self.button_text, self.intro = title, button, intro
        self.digest = digest  # when set, the officer types the first digest words (as the CLI)
        self.cards: DialogCards | None = None
        self.tries_failed = 0

    def compose(self) -> ComposeResult:
        first = self.pending[0] if self.pending else (self.officers[0] if self.officers else None)
        with VerticalScroll(classes="dialog -approval"):
            yield Label(Text(self.title_text, style="bold"), classes="dialog-title")
            if self.intro is not None:
                yield Static(self.intro, id="approval-intro")
            if self.grouped:
                yield Static(Text.assemble(("You sign digest ", ""), (self.grouped, "bold")),
                             id="approval-digest")
            if self.words:
                yield Static(Text.assemble(("Read aloud: ", ""), (self.words, "bold")),
                             id="approval-words")
            with Horizontal(classes="field-row"):
                yield Label("Officer    ", classes="field-label")
                yield Select([(name, name) for name in self.officers],
                             value=first or Select.NULL, allow_blank=False, id="officer",
                             compact=True)
            with Horizontal(classes="field-row"):
                yield Label("Card file  ", classes="field-label")
                default = self.default_cards.get(first or "")
                yield Input(str(default) if default else "", placeholder="/media/usb/alice.card",
                            id="card", compact=True)
            if self.digest is not None:
                with Horizontal(classes="field-row"):
                    yield Label("Words      ", classes="field-label")
                    yield WordsInput(placeholder="the first two words, as read aloud",
                                     id="typed-words", compact=True)
            with Horizontal(classes="field-row"):
                yield Label("Passphrase ", classes="field-label")
                yield Input(password=True, id="passphrase", compact=True)
            yield Static("", id="approval-status")
            with Horizontal(classes="buttons"):
                yield Button(self.button_text, id="approve", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        first = "#typed-words" if self.digest is not None else "#passphrase"
        self.query_one(first, Input).focus()

    @on(Input.Submitted, "#typed-words")
    def _words_typed(self) -> None:
        self.query_one("#passphrase", Input).focus()

    @on(Select.Changed, "#officer")
    def _officer_changed(self, event: Select.Changed) -> None:
        card = self.default_cards.get(str(event.value))
        if card is not None:
            self.query_one("#card", Input).value = str(card)

    def _say(self, text: str, style: str = "") -> None:
        self.query_one("#approval-status", Static).update(Text(text, style=style))

    def _busy(self, busy: bool) -> None:
        for selector in ("#officer", "#card"):
            self.query_one(selector).disabled = busy
        self.query_one("#approve", Button).disabled = busy

    @on(Input.Submitted, "#passphrase")
    @on(Button.Pressed, "#approve")
    def _approve(self) -> None:
        field = self.query_one("#passphrase", Input)
        passphrase = field.value
        if self.cards is not None:  # a try failed and the session waits for the next one
            if not self.cards.waiting or not passphrase:
                return
            field.value = ""
            self._say("unlocking…", "dim")
            self.cards.answer(passphrase)
            return
        officer = self.query_one("#officer", Select).value
        card = self.query_one("#card", Input).value.strip()
        if not isinstance(officer, str) or not card or not passphrase:
            self._say("! name, card file and passphrase are all needed", "bold yellow")
            return
        if self.digest is not None:
            from console.ceremony.review import check_words

            try:
                check_words(self.digest, self.query_one("#typed-words", Input).value)
            except UsageError as e:
                self._say(f"! {e.message} — {e.hint}", "bold yellow")
                self.query_one("#typed-words", Input).focus()
                return
        field.value = ""
        self._busy(True)
        self._say("unlocking…", "dim")

        def ask_again(attempt: int) -> None:  # from the worker thread: post_message is safe
            self.post_message(self.AskAgain(attempt))

        cards = DialogCards(Path(card).expanduser(), passphrase, ask_again)
        self.cards = cards
        act = self.act

        def job() -> None:
            try:
                result = act(officer, cards)
            except ConsoleError as e:
                self.post_message(self.Failed(e, cards.attempts))
                return
            self.post_message(self.Done(result))

        self.run_worker(job, thread=True, exit_on_error=False, group="card",
                        description=f"Unlocking {officer}'s card")

    @on(AskAgain)
    def _ask_again(self, message: AskAgain) -> None:
        self.tries_failed = message.attempt - 1
        self._say(f"✗ the card was not unlocked (wrong passphrase, or not this officer's card) "
                  f"— try {message.attempt} of {UNLOCK_TRIES}", "bold red")
        field = self.query_one("#passphrase", Input)
        field.value = ""
        field.disabled = False
        self.query_one("#approve", Button).disabled = False
        field.focus()

    @on(Done)
    def _done(self, message: Done) -> None:
        self.cards = None
        self.dismiss(message.result)  # type: ignore[arg-type]

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self.cards = None
        if message.attempts >= UNLOCK_TRIES:
            self.tries_failed = message.attempts
            self.app.post_message(OperationFailed("Unlocking the card", message.error))
            self.dismiss(None)
            return
        # Refused before (or without) a wrong passphrase: the officer can correct and retry.
        self._busy(False)
        self._say(f"✗ {message.error.user_message()}", "bold red")
        self.query_one("#passphrase", Input).focus()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self._release()
        self.dismiss(None)

    def on_unmount(self) -> None:
        self._release()

    def _release(self) -> None:
        cards, self.cards = self.cards, None
        if cards is not None:
            cards.answer(None)  # a worker waiting for a passphrase stops


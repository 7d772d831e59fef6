"""The approval dialog's fields when the words, Enter and the passphrase arrive in one burst (a
paste, a password manager, automation): every key is queued on the words field before Enter moves
the focus, and the passphrase must still never show in clear text there."""

from __future__ import annotations

import hashlib
from pathlib import Path

from textual import events
from textual.app import App
from textual.widgets import Input

from console.quorum.words import digest_words
from console.tui.dialogs.approval import ApprovalDialog, DialogCards

DIGEST = hashlib.sha256(b"a plan").digest()
WORDS = " ".join(digest_words(DIGEST, count=2))
PASSPHRASE = "correct-Horse-battery-9"


class Host(App[None]):
    """The dialog alone; its act records what it was given instead of unlocking a card."""

    def __init__(self) -> None:
        super().__init__()
        self.given: list[tuple[str, str, str]] = []  # (officer, passphrase, words field)
        self.dialog: ApprovalDialog[str] | None = None

    def on_mount(self) -> None:
        def act(officer: str, cards: DialogCards) -> str:
            assert self.dialog is not None
            words = self.dialog.query_one("#typed-words", Input).value
            self.given.append((officer, cards.passphrase(officer, 1), words))
            return "approved"

        self.dialog = ApprovalDialog(["alice"], WORDS, "", {"alice": Path("/cards/alice.card")},
                                     ["alice"], act=act, digest=DIGEST)
        self.push_screen(self.dialog)


def _keys(text: str) -> list[events.Key]:
    return [events.Key("space", " ") if c == " " else events.Key(c, c) for c in text]


async def test_a_burst_puts_the_passphrase_in_its_own_field() -> None:
    app = Host()
    async with app.run_test() as pilot:
        await pilot.pause()
        # Posted at once: all of them wait in the queue before the first is handled.
        for key in [*_keys(WORDS), events.Key("enter", "\r"), *_keys(PASSPHRASE),
                    events.Key("enter", "\r")]:
            app.post_message(key)
        for _ in range(20):
            await pilot.pause()
            if app.given:
                break
    assert app.given == [("alice", PASSPHRASE, WORDS)]


async def test_coming_back_to_the_words_field_types_there_again() -> None:
    app = Host()
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press(*[k.key for k in _keys("wrong")], "enter")
        words = app.screen.query_one("#typed-words", Input)
        passphrase = app.screen.query_one("#passphrase", Input)
        assert app.focused is passphrase
        words.focus()
        await pilot.pause()
        await pilot.press("ctrl+u", *[k.key for k in _keys(WORDS)])
        assert words.value == WORDS
        assert passphrase.value == ""

"""What the session asks the officers for, the CLI's way: cards and passphrases (`Cards`, the
CLI's `CardSource`) and the plan's digest words (`confirm_words`, `confirm_abort`).

Passphrases come from `--passphrase-file NAME=FILE` or a no-echo prompt, never from argv; the
words from `--words` or a prompt, or (rehearsal only) not at all with `--yes`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from console import terminal
from console.cli.common import read_secret_file
from console.errors import CardError, UsageError

if TYPE_CHECKING:
    from console.ceremony.journal import PlanRecord
    from console.ceremony.review import PlanView
    from console.workspace import Workspace


def _pairs(values: list[str], option: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"{option} {value!r} is not NAME=FILE", f"write {option} alice=FILE")
        if name in out:
            raise UsageError(f"{option} given twice for {name}", "give each officer once")
        out[name] = Path(path)
    return out


class Cards:
    """The CLI's `CardSource`: --card / --passphrase-file, else the rehearsal demo's card and a
    no-echo prompt (rehearsals practise typing the passphrase)."""

    def __init__(self, args: argparse.Namespace, ws: Workspace) -> None:
        names: list[str] = list(args.officer)
        self.ws = ws
        self.cards = _pairs(args.card, "--card")
        self.secrets = _pairs(args.passphrase_file, "--passphrase-file")
        for name in list(self.cards) + list(self.secrets):
            if name not in names:
                raise UsageError(f"--card/--passphrase-file for {name}, who is not an --officer",
                                 f"add --officer {name}")

    def card_path(self, officer: str) -> Path:
        card = self.cards.get(officer)
        if card is None:
            demo = self.ws.demo_card(officer)
            card = demo[0] if demo is not None else None
        if card is None:
            raise UsageError(f"no card for officer {officer}", f"add --card {officer}=FILE")
        if officer not in self.secrets:
            # Asked before anything is planned or recorded: no terminal means no passphrase.
            terminal.require_tty(f"{officer}'s passphrase",
                                      instead=f"--passphrase-file {officer}=FILE")
        return card

    def passphrase(self, officer: str, attempt: int) -> str:
        secret_file = self.secrets.get(officer)
        if secret_file is not None:
            if attempt > 1:
                raise CardError(f"the passphrase in {secret_file} does not unlock {officer}'s "
                                "card", "check the file, or leave --passphrase-file out")
            return read_secret_file(secret_file)
        if attempt > 1:
            print("that passphrase did not unlock the card; try again", file=sys.stderr)
        print(f"unlocking {officer}'s card…", file=sys.stderr)
        return terminal.ask_secret(f"passphrase for {officer}'s card: ",
                                   instead=f"--passphrase-file {officer}=FILE")


def _ask_words(prompt: str) -> str:
    return terminal.ask_line(prompt, instead="--words '…' (after reading the words aloud)")


def _refuse_yes_in_production(args: argparse.Namespace, ws: Workspace) -> None:
    if args.yes and not ws.rehearsal:
        raise UsageError("--yes is for rehearsal workspaces only",
                         "read the digest words and give them with --words")


def _check_words(args: argparse.Namespace, digest: bytes, prompt: str) -> None:
    """The first digest words from --words, or typed at the prompt (none with --yes)."""
    from console.ceremony.review import check_words

    if args.words is not None:
        check_words(digest, args.words)
    elif not args.yes:
        check_words(digest, _ask_words(prompt))


def confirm_words(args: argparse.Namespace, ws: Workspace) -> Callable[[PlanView], None]:
    """Show the plan, then have the officer confirm its digest words (before any card)."""
    _refuse_yes_in_production(args, ws)
    if args.words is None and not args.yes:
        terminal.require_tty("the plan's digest words",
                                  instead="--words '…' (after reading the words aloud)")

    def confirm(view: PlanView) -> None:
        print(view.render(), file=sys.stderr)
        _check_words(args, view.digest,
                     "compare the words across the room, then type the first two: ")

    return confirm


def confirm_abort(args: argparse.Namespace, ws: Workspace) -> Callable[[PlanRecord], None]:
    _refuse_yes_in_production(args, ws)

    def confirm(record: PlanRecord) -> None:
        print(f"abort plan {record.plan_id} ({record.plan.script}, {record.state()}, "
              f"{record.last_done} of {len(record.actions)} steps done)", file=sys.stderr)
        _check_words(args, record.digest,
                     "type the first two digest words of the plan to abort it: ")

    return confirm


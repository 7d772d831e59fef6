"""Officers: the list, a new card, and enrolment or revocation (both run `officer-change`)."""

from __future__ import annotations

import argparse
import sys

from console import terminal
from console.cli.commands.ceremony import run
from console.cli.common import ExitCode, open_workspace, print_json, read_secret_file
from console.errors import ConsoleError, UsageError


def show(args: argparse.Namespace) -> int:
    from console.ceremony.officers import officer_rows, render_officers

    with open_workspace(args) as ws:
        rows = officer_rows(ws)
    if args.json:
        print_json(rows)
    else:
        print(render_officers(rows))
    return ExitCode.OK


def new_card(args: argparse.Namespace) -> int:
    from console.ceremony.officers import write_new_card
    from console.quorum.cards import check_passphrase

    if args.passphrase_file is not None:
        passphrase = read_secret_file(args.passphrase_file)
    else:
        for _ in range(3):
            passphrase = terminal.ask_secret(f"new passphrase for {args.name}'s card: ",
                                             instead="--passphrase-file FILE")
            try:
                check_passphrase(passphrase, name=args.name)
            except ConsoleError as error:
                print(f"{error.user_message()}; try another", file=sys.stderr)
                continue
            if terminal.ask_secret("again: ", instead="--passphrase-file FILE") == passphrase:
                break
            print("the two passphrases differ; start again", file=sys.stderr)
        else:
            raise UsageError("no passphrase was set", "run the command again")
    print(write_new_card(args.name, passphrase, args.out))
    return ExitCode.OK


def enroll(args: argparse.Namespace) -> int:
    args.script = "officer-change"
    args.keyset = []
    args.set = [f"enroll={path}" for path in args.new_card]
    return run(args)


def revoke(args: argparse.Namespace) -> int:
    args.script = "officer-change"
    args.keyset = []
    args.set = [f"revoke={name}" for name in args.name]
    return run(args)

"""Ceremony flows: plan, approve, execute, run, resume (or abort), and the transcript.

Each handler opens the workspace, asks the session service (`console.ceremony.session`) for the
flow, hands it the CLI's cards and word prompts, and prints what it returns. ctrl+c inside a
flow becomes the exact next command (`console.cli.interrupt`).
"""

from __future__ import annotations

import argparse

from console.ceremony.progress import LineProgress
from console.cli.cards import Cards, confirm_abort, confirm_words
from console.cli.common import ExitCode, open_workspace, print_json, progress, session_for
from console.cli.interrupt import interruptible
from console.errors import UsageError


def plan(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        session = session_for(args, ws)
        with interruptible(args, session):
            view = session.plan(args.script, keysets=args.keyset, parameters=args.set)
    if args.json:
        print_json(view.summary())
    else:
        print(view.render())
    return ExitCode.OK


def approve(args: argparse.Namespace) -> int:
    if len(args.officer) != 1:
        raise UsageError("approve takes exactly one --officer", "run it once per officer")
    with open_workspace(args) as ws:
        session = session_for(args, ws)
        with interruptible(args, session):
            print(session.approve(args.plan_id, args.officer[0], Cards(args, ws),
                                  confirm=confirm_words(args, ws)).message)
    return ExitCode.OK


def execute(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        session = session_for(args, ws)
        with interruptible(args, session):
            print(session.execute(args.plan_id, args.officer, Cards(args, ws),
                                  confirm=confirm_words(args, ws), progress=LineProgress(progress)))
    return ExitCode.OK


def run(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        session = session_for(args, ws)
        cards = Cards(args, ws)
        with interruptible(args, session):
            print(session.run(args.script, args.officer, cards, confirm=confirm_words(args, ws),
                              keysets=args.keyset, parameters=args.set,
                              progress=LineProgress(progress)))
    return ExitCode.OK


def resume(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        session = session_for(args, ws)
        if args.abort:
            if len(args.officer) != 1:
                raise UsageError(
                    f"an abort is signed by exactly one officer ({len(args.officer)} given)",
                    "give --officer NAME once: an officer who approved the plan, or any officer "
                    "in force when nobody did")
            outcome = session.abort(args.officer[0], Cards(args, ws),
                                    confirm=confirm_abort(args, ws))
            print(outcome.render())
            return ExitCode.OK
        with interruptible(args, session):
            print(session.resume(args.officer, Cards(args, ws),
                                 progress=LineProgress(progress)))
    return ExitCode.OK


def transcript(args: argparse.Namespace) -> int:
    from console.ceremony.transcript import write_transcript

    with open_workspace(args) as ws:
        for path in write_transcript(ws, args.plan_id):
            print(path)
    return ExitCode.OK

"""ctrl+c in a `ceremony` command: the exact next command to run, on its own line.

The session remembers what it recorded (`Session.planned`, `Session.started`); `after_interrupt`
turns that into `ceremony resume --officer …` with the options given, `ceremony approve …`, or
that nothing changed. Commands without a session get `next_step_for`'s general advice.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from console.errors import ConsoleError

if TYPE_CHECKING:
    from console.ceremony.journal import PlanRecord
    from console.ceremony.session import Session


class Interrupted(KeyboardInterrupt):
    """ctrl+c in a command that knows what it had done: `next_step` says what to run."""

    def __init__(self, next_step: str) -> None:
        super().__init__(next_step)
        self.next_step = next_step


def next_step_for(words: list[str]) -> str:
    """What to run after ctrl+c, for the command that was interrupted."""
    command = next((w for w in words if not w.startswith("-")), "")
    if command in ("execute", "run", "resume"):
        return ("if a step had started, `ceremony status` shows the ceremony as interrupted: "
                "continue with `ceremony resume --officer NAME …` or abort with "
                "`ceremony resume --abort --officer NAME`")
    return "nothing was changed after the last line printed; run the command again"


@contextmanager
def interruptible(args: argparse.Namespace, session: Session) -> Iterator[None]:
    """Turn ctrl+c into the exact next command, from what `session` recorded."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(after_interrupt(args, session)) from None


def after_interrupt(args: argparse.Namespace, session: Session) -> str:

    def record(plan_id: str) -> PlanRecord | None:
        try:
            return session.record(plan_id)
        except ConsoleError:
            return None

    started = record(session.started) if session.started is not None else None
    if started is not None and started.completed_at is not None:
        return (f"ceremony {started.plan_id} had completed; its transcript is written by:\n"
                f"ceremony transcript {started.plan_id}")
    if started is not None and not started.closed:
        officers = list(args.officer)
        return (f"ceremony {started.plan_id} ({started.plan.script}) started and did not "
                f"finish; continue it with:\n{_command(args, 'resume', officers)}\n"
                f"or abort it with `{_command(args, 'resume', officers[:1], abort=True)}`")
    planned = record(session.planned) if session.planned is not None else None
    if planned is not None and not planned.closed:
        return (f"no ceremony started; plan {planned.plan_id} ({planned.plan.script}) is "
                "recorded and waits for approvals:\n"
                f"ceremony approve {planned.plan_id} --officer NAME")
    if planned is not None:
        return (f"no ceremony started; plan {planned.plan_id} was closed unstarted; nothing "
                "else was changed")
    return "nothing was changed; run the command again when ready"


def _command(args: argparse.Namespace, command: str, officers: Sequence[str], *,
             abort: bool = False) -> str:
    """`ceremony COMMAND` for `officers`, with the options this command was given."""
    words = ["ceremony", command] + (["--abort"] if abort else [])
    for name in officers:
        words += ["--officer", name]
        for option, values in (("--card", args.card),
                               ("--passphrase-file", args.passphrase_file)):
            for value in values:
                if value.partition("=")[0] == name:
                    words += [option, value]
    for option in ("workspace", "now", "expect_checkpoint"):
        value = getattr(args, option, None)
        if value is not None:
            words += [f"--{option.replace('_', '-')}", str(value)]
    return shlex.join(words)


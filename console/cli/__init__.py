"""The `ceremony` command: parse, call the services, print. The contract is DESIGN.md §10.

stdout carries data (`--json` where output is data); stderr carries plans shown for review,
progress, prompts and the one error line `ceremony: error: <what> — <what to do>`. Exit codes
live in `ExitCode`, and the mapping from errors to exit codes is `exit_code_for`, in one place.
Ceremony flows are the session service's (`console.ceremony.session`); this package only gives
it cards and passphrases when it asks, and shows what it returns.

The rooms: `parser` (commands and options), `commands/` (the handlers, by concern), `cards`
(cards, passphrases and digest words for the session), `interrupt` (ctrl+c and the next
command), `common` (exit codes, opening the workspace, output).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from console import terminal
from console.cli.commands.workspace import open_tui
from console.cli.common import ExitCode
from console.cli.interrupt import Interrupted, next_step_for
from console.cli.parser import Handler, build_parser
from console.errors import ConsoleError, UsageError

__all__ = ["ExitCode", "build_parser", "exit_code_for", "main"]


def exit_code_for(error: BaseException) -> ExitCode:
    """The one mapping from errors to exit codes."""
    if isinstance(error, UsageError):
        return ExitCode.USAGE
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED


def main(argv: Sequence[str] | None = None) -> int:
    terminal.setup_output()
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(words)
        handler: Handler = getattr(args, "handler", open_tui)
        return terminal.finish(handler(args))
    except ConsoleError as error:
        if "--verbose" in words:
            raise
        print(f"ceremony: error: {error.user_message()}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt as interrupt:
        next_step = (interrupt.next_step if isinstance(interrupt, Interrupted)
                     else next_step_for(words))
        # The prompt's line (or a progress line) may be unfinished: start a line of our own.
        print(f"\nceremony: interrupted — {next_step}", file=sys.stderr)
        return ExitCode.INTERRUPTED

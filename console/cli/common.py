"""What every `ceremony` command uses: exit codes, opening the workspace the options name, the
`--now` a rehearsal asks for, the session, and the three ways of writing (JSON data on stdout,
progress on stderr, secrets read from files).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

from console import terminal
from console.errors import UsageError

if TYPE_CHECKING:
    from console.ceremony.session import Session
    from console.workspace import Workspace


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    INTERRUPTED = 130
    OUTPUT_CLOSED = terminal.OUTPUT_CLOSED  # 141: stdout's reader went away (terminal.py)


def open_workspace(args: argparse.Namespace) -> Workspace:
    from console.workspace import Workspace, read_expected_checkpoint

    return Workspace.open(getattr(args, "workspace", None),
                          expect_checkpoint=read_expected_checkpoint(
                              getattr(args, "expect_checkpoint", None)))


def requested_now(args: argparse.Namespace) -> datetime | None:
    from console.clock import parse_time

    text = getattr(args, "now", None)
    return None if text is None else parse_time(text, "--now")


def session_for(args: argparse.Namespace, ws: Workspace) -> Session:
    from console.ceremony.session import Session

    return Session(ws, now=ws.now(requested_now(args)))  # a bad --now refuses up front


def read_secret_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read passphrase file {path!r}", "check the path") from e
    except OSError as e:
        raise UsageError(f"cannot read passphrase file {path}: {e.strerror}", "check the path") \
            from e


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def missing_sub(args: argparse.Namespace) -> int:
    raise UsageError("this command needs an action", "see `ceremony <command> --help`")

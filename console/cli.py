"""The `ceremony` command: parse, call the services, print. The contract is DESIGN.md §10.

stdout carries data (`--json` where output is data); stderr carries progress and the one error
line `ceremony: error: <what> — <what to do>`. Exit codes live in `ExitCode`, and the mapping
from errors to exit codes is `exit_code_for`, in one place.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn

from console import __version__, terminal
from console.ceremony.progress import LineProgress
from console.errors import ConsoleError, UsageError


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    INTERRUPTED = 130
    OUTPUT_CLOSED = terminal.OUTPUT_CLOSED  # 141: stdout's reader went away (terminal.py)


def exit_code_for(error: BaseException) -> ExitCode:
    """The one mapping from errors to exit codes."""
    if isinstance(error, UsageError):
        return ExitCode.USAGE
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see `{self.prog} --help`")


def main(argv: Sequence[str] | None = None) -> int:
    terminal.setup_output()
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(words)
        handler: Callable[[argparse.Namespace], int] = getattr(args, "handler", _open_tui)
        return terminal.finish(handler(args))
    except ConsoleError as error:
        if "--verbose" in words:
            raise
        print(f"ceremony: error: {error.user_message()}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        print("ceremony: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--workspace", metavar="DIR", default=argparse.SUPPRESS,
        help="workspace folder (default: $CEREMONY_WORKSPACE or .)",
    )
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks for errors (for developers)")
    parser = _Parser(
        prog="ceremony", parents=[common],
        description="Quorum-approved key ceremonies for JWT signing keys on a PKCS#11 HSM.",
    )
    parser.add_argument("--version", action="version", version=f"ceremony {__version__}")
    parser.add_argument("--now", dest="tui_now", metavar="T",
                        help="rehearsal workspaces: open the console at this time (RFC 3339)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, handler: Callable[[argparse.Namespace], int], helptext: str,
                **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=helptext, description=helptext, **kw)
        p.set_defaults(handler=handler)
        return p

    p = command("demo", _demo, "make a rehearsal workspace on a SoftHSM2 token and run the demo")
    p.add_argument("--headless", action="store_true", help="run the demo and exit (no TUI)")

    p = command("init", _init, "create a new workspace (HSM, token, officers, quorum)")
    p.add_argument("--org", required=True, help="organisation name (in the ledger's origin)")
    p.add_argument("--module", required=True,
                   help="PKCS#11 module path, or 'softhsm' / 'p11-kit'")
    p.add_argument("--token-label", help="token label")
    p.add_argument("--token-serial", help="token serial")
    p.add_argument("--officer-card", action="append", default=[], metavar="FILE",
                   help="an officer's card file (public part is read; repeat)")
    p.add_argument("--quorum", action="append", default=[], metavar="CLASS=M/N",
                   help="quorum per class, e.g. routine=2/3 destructive=3/3 emergency=2/3")
    p.add_argument("--pin-file", type=Path,
                   help="file holding the token's current user PIN (else asked without echo)")
    p.add_argument("--rehearsal", action="store_true",
                   help="a rehearsal workspace (accepts --now)")
    p.add_argument("--policy", type=Path, help="policy.toml to copy into the workspace")

    p = command("status", _status, "keysets, keys, due dates and warnings")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--now", help=argparse.SUPPRESS)

    p = command("plan", _plan, "write a ceremony plan, print its id and digest")
    p.add_argument("script", help="script name (see ceremonies/) or path")
    _keyset_now(p)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a script parameter (e.g. enroll=dave.card, revoke=carol)")
    p.add_argument("--json", action="store_true")

    p = command("approve", _approve, "one officer signs a plan")
    p.add_argument("plan_id")
    _officers(p, single=True)
    p.add_argument("--now", help="rehearsal time (RFC 3339)")

    p = command("execute", _execute, "M officers unlock their cards; the plan runs")
    p.add_argument("plan_id")
    _officers(p)
    p.add_argument("--now", help="rehearsal time (RFC 3339)")

    p = command("run", _run, "plan, approve and execute in one")
    p.add_argument("script")
    _keyset_now(p)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    _officers(p)

    p = command("resume", _resume, "continue (or abort) an interrupted ceremony")
    _officers(p)
    p.add_argument("--abort", action="store_true", help="abort the interrupted ceremony cleanly")
    p.add_argument("--now", help="rehearsal time (RFC 3339)")

    p = command("reconcile", _reconcile, "HSM inventory against the ledger (read-only)")
    p.add_argument("--json", action="store_true")

    p = command("export", _export, "copy the latest signed bundle of a keyset and its targets")
    p.add_argument("--keyset", required=True)
    p.add_argument("--out", type=Path)

    audit = command("audit", _missing_sub, "audit packs")
    audit_sub = audit.add_subparsers(metavar="ACTION", parser_class=_Parser)
    p = audit_sub.add_parser("export", parents=[common], help="write an audit pack")
    p.add_argument("--out", type=Path)
    p.set_defaults(handler=_audit_export)

    verify = command("verify", _missing_sub, "offline verification of bundles and audit packs")
    verify_sub = verify.add_subparsers(metavar="WHAT", parser_class=_Parser)
    p = verify_sub.add_parser("bundle", parents=[common], help="verify a signed JWKS bundle")
    p.add_argument("file", type=Path)
    p.add_argument("--trust", type=Path, required=True, help="the pinned bundle-signing key JWK")
    p.add_argument("--previous", type=Path, help="the previous jwks.jwt")
    p.add_argument("--now", help="verify as of this time (RFC 3339)")
    p.set_defaults(handler=_verify_bundle)
    p = verify_sub.add_parser("audit", parents=[common], help="verify an audit pack")
    p.add_argument("dir", type=Path)
    p.add_argument("--expect-checkpoint", type=Path)
    p.set_defaults(handler=_verify_audit)

    officer = command("officer", _missing_sub, "officers: list, enroll, revoke")
    officer_sub = officer.add_subparsers(metavar="ACTION", parser_class=_Parser)
    p = officer_sub.add_parser("list", parents=[common], help="list officers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_officer_list)
    p = officer_sub.add_parser("new-card", parents=[common],
                               help="make a new officer card (asks for a passphrase)")
    p.add_argument("name")
    p.add_argument("--out", type=Path, required=True, help="where to write the card")
    p.add_argument("--passphrase-file", type=Path)
    p.set_defaults(handler=_officer_new_card)
    p = officer_sub.add_parser("enroll", parents=[common],
                               help="enrol officers (runs officer-change)")
    p.add_argument("--new-card", action="append", required=True, type=Path, metavar="FILE")
    _officers(p)
    p.add_argument("--now")
    p.set_defaults(handler=_officer_enroll)
    p = officer_sub.add_parser("revoke", parents=[common],
                               help="revoke officers (runs officer-change)")
    p.add_argument("name", nargs="+")
    _officers(p)
    p.add_argument("--now")
    p.set_defaults(handler=_officer_revoke)

    p = command("doctor", _doctor, "PKCS#11 modules, tokens, mechanisms, and what is missing")
    p.add_argument("--module", action="append", default=[], metavar="PATH")
    p.add_argument("--json", action="store_true")

    p = command("transcript", _transcript, "write the transcript of a ceremony again")
    p.add_argument("plan_id")
    return parser


def _keyset_now(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keyset", action="append", default=[], metavar="K",
                   help="keyset (repeat; default: every due keyset)")
    p.add_argument("--now", help="rehearsal time (RFC 3339); refused in production")


def _officers(p: argparse.ArgumentParser, *, single: bool = False) -> None:
    p.add_argument("--officer", action="append", default=[], metavar="NAME",
                   required=single, help="officer name (repeat)")
    p.add_argument("--card", action="append", default=[], metavar="NAME=FILE",
                   help="officer card file")
    p.add_argument("--passphrase-file", action="append", default=[], metavar="NAME=FILE",
                   help="file holding the officer's passphrase (else asked without echo)")


# --- helpers -------------------------------------------------------------------------------


def _workspace_arg(args: argparse.Namespace) -> str | None:
    return getattr(args, "workspace", None)


def _open(args: argparse.Namespace, **kw: Any) -> Any:
    from console.workspace import Workspace

    return Workspace.open(_workspace_arg(args), **kw)


def _requested_now(args: argparse.Namespace) -> datetime | None:
    from console.clock import parse_time

    text = getattr(args, "now", None)
    return None if text is None else parse_time(text, "--now")


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


def _unlock_officers(args: argparse.Namespace, ws: Any) -> list[Any]:
    """Read and unlock the cards of the officers named with --officer, in order.

    Passphrases come from --passphrase-file or a no-echo prompt, never from argv.
    """
    from console.ceremony.officers import unlock_officer_card

    names: list[str] = list(args.officer)
    if len(set(names)) != len(names):
        raise UsageError("an officer is named twice", "name each officer once")
    cards = _pairs(args.card, "--card")
    secrets = _pairs(args.passphrase_file, "--passphrase-file")
    for name in list(cards) + list(secrets):
        if name not in names:
            raise UsageError(f"--card/--passphrase-file for {name}, who is not an --officer",
                             f"add --officer {name}")
    unlocked = []
    for name in names:
        card = cards.get(name)
        secret_file = secrets.get(name)
        demo = ws.demo_card(name)
        if card is None and demo is not None:
            card = demo[0]
            secret_file = secret_file or demo[1]
        if card is None:
            raise UsageError(f"no card for officer {name}", f"add --card {name}=FILE")
        if not ws.rehearsal and card.resolve().is_relative_to(ws.root):
            raise UsageError(
                f"{name}'s card is inside the workspace ({card})",
                "an officer's card lives on their own medium, never in the workspace",
            )
        if secret_file is not None:
            passphrase = _read_secret_file(secret_file)
        else:
            passphrase = terminal.ask_secret(f"passphrase for {name}'s card: ",
                                             instead=f"--passphrase-file {name}=FILE")
        print(f"unlocking {name}'s card…", file=sys.stderr)
        unlocked.append(unlock_officer_card(name, card, passphrase))
    return unlocked


def _read_secret_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read passphrase file {path!r}", "check the path") from e
    except OSError as e:
        raise UsageError(f"cannot read passphrase file {path}: {e.strerror}", "check the path") \
            from e


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _missing_sub(args: argparse.Namespace) -> int:
    raise UsageError("this command needs an action", "see `ceremony <command> --help`")


# --- handlers ------------------------------------------------------------------------------


def _open_tui(args: argparse.Namespace) -> int:
    terminal.require_terminal("the console (TUI)", instead="use `ceremony status` and the others")
    from console.clock import parse_time
    from console.tui.app import run_app

    ws = _open(args)
    text = getattr(args, "tui_now", None)
    requested = None if text is None else parse_time(text, "--now")
    ws.now(requested)  # refuses --now outside rehearsal, or earlier than the ledger, up front
    run_app(ws, clock=lambda: ws.now(requested))
    return ExitCode.OK


def _demo(args: argparse.Namespace) -> int:
    from console.ceremony.demo import run_demo
    from console.workspace import locate

    if not args.headless:
        terminal.require_terminal("`ceremony demo` without --headless", instead="add --headless")
    # The demo never lands in the current folder by accident: default ./demo.
    root = locate(_workspace_arg(args) or os.environ.get("CEREMONY_WORKSPACE") or "demo")
    run_demo(root, progress=_progress)
    if args.headless:
        print(f"demo workspace ready in {root}")
        return ExitCode.OK
    from console.tui.app import run_app
    from console.workspace import Workspace

    run_app(Workspace.open(root))
    return ExitCode.OK


def _init(args: argparse.Namespace) -> int:
    from console.ceremony.init import init_workspace
    from console.workspace import locate

    if args.pin_file is not None:
        pin = _read_secret_file(args.pin_file)
    else:
        pin = terminal.ask_secret("current user PIN of the token: ", instead="--pin-file FILE")
    root = locate(_workspace_arg(args))
    init_workspace(
        root, org=args.org, module=args.module, token_label=args.token_label,
        token_serial=args.token_serial, officer_cards=[Path(p) for p in args.officer_card],
        quorum=args.quorum, current_pin=pin.encode(), rehearsal=args.rehearsal,
        policy_file=args.policy, progress=_progress,
    )
    print(f"workspace created in {root}; next: `ceremony run genesis --officer ...`")
    return ExitCode.OK


def _status(args: argparse.Namespace) -> int:
    from console.ceremony.status import render_status, workspace_status

    with _open(args) as ws:
        report = workspace_status(ws, ws.now(_requested_now(args)))
    if args.json:
        _print_json(report)
    else:
        print(render_status(report))
    return ExitCode.OK


def _plan(args: argparse.Namespace) -> int:
    from console.ceremony.service import plan_ceremony, render_plan

    with _open(args) as ws, ws.exclusive():
        planned = plan_ceremony(ws, args.script, keysets=args.keyset,
                                now=ws.now(_requested_now(args)), parameters=args.set)
    if args.json:
        _print_json(planned.summary())
    else:
        print(render_plan(planned))
    return ExitCode.OK


def _approve(args: argparse.Namespace) -> int:
    from console.ceremony.service import approve_plan

    with _open(args) as ws, ws.exclusive():
        if len(args.officer) != 1:
            raise UsageError("approve takes exactly one --officer", "run it once per officer")
        now = ws.now(_requested_now(args))  # a bad --now is refused before any prompt
        (officer,) = _unlock_officers(args, ws)
        status = approve_plan(ws, args.plan_id, officer, now=now)
    print(status)
    return ExitCode.OK


def _execute(args: argparse.Namespace) -> int:
    from console.ceremony.service import execute_plan

    with _open(args) as ws, ws.exclusive():
        now = ws.now(_requested_now(args))
        officers = _unlock_officers(args, ws)
        result = execute_plan(ws, args.plan_id, officers, now=now,
                              progress=LineProgress(_progress))
    print(result)
    return ExitCode.OK


def _run(args: argparse.Namespace) -> int:
    from console.ceremony.service import (
        abort_unstarted_plan,
        approve_plan,
        execute_plan,
        plan_ceremony,
        render_plan,
    )

    with _open(args) as ws, ws.exclusive():
        if not args.officer:
            raise UsageError("run needs the approving officers", "add --officer NAME (repeat)")
        now = ws.now(_requested_now(args))
        officers = _unlock_officers(args, ws)
        planned = plan_ceremony(ws, args.script, keysets=args.keyset, now=now,
                                parameters=args.set)
        _progress(render_plan(planned))
        try:
            for officer in officers:
                _progress(approve_plan(ws, planned.plan_id, officer, now=now))
            result = execute_plan(ws, planned.plan_id, officers, now=now,
                                  progress=LineProgress(_progress))
        except ConsoleError as error:
            # A plan that `run` made and could not start must not block the next one.
            abort_unstarted_plan(ws, planned.plan_id, now=now, reason=error.user_message())
            raise
    print(result)
    return ExitCode.OK


def _resume(args: argparse.Namespace) -> int:
    from console.ceremony.service import abort_open_plan, resume_plan

    with _open(args) as ws, ws.exclusive():
        now = ws.now(_requested_now(args))
        if args.abort:
            print(abort_open_plan(ws, now=now))
            return ExitCode.OK
        officers = _unlock_officers(args, ws)
        result = resume_plan(ws, officers, now=now, progress=LineProgress(_progress))
    print(result)
    return ExitCode.OK


def _reconcile(args: argparse.Namespace) -> int:
    from console.ceremony.reconcile import reconcile_workspace, render_reconciliation

    with _open(args) as ws:
        report = reconcile_workspace(ws)
    if args.json:
        _print_json(report.to_json())
    else:
        print(render_reconciliation(report))
    return ExitCode.OK if report.clean else ExitCode.FAILED


def _export(args: argparse.Namespace) -> int:
    from console.ceremony.service import copy_latest_export

    with _open(args) as ws:
        path = copy_latest_export(ws, args.keyset, args.out)
    print(path)
    return ExitCode.OK


def _audit_export(args: argparse.Namespace) -> int:
    from console.ceremony.service import export_audit

    with _open(args) as ws:
        path = export_audit(ws, args.out)
    print(path)
    return ExitCode.OK


def _verify_bundle(args: argparse.Namespace) -> int:
    from console.verify import verify_bundle_files

    summary = verify_bundle_files(args.file, trust=args.trust, previous=args.previous,
                                  now=_requested_now(args))
    print(summary)
    return ExitCode.OK


def _verify_audit(args: argparse.Namespace) -> int:
    from console.verify import verify_audit_dir

    print(verify_audit_dir(args.dir, expect_checkpoint=args.expect_checkpoint))
    return ExitCode.OK


def _officer_list(args: argparse.Namespace) -> int:
    from console.ceremony.officers import officer_rows, render_officers

    with _open(args) as ws:
        rows = officer_rows(ws)
    if args.json:
        _print_json(rows)
    else:
        print(render_officers(rows))
    return ExitCode.OK


def _officer_new_card(args: argparse.Namespace) -> int:
    from console.ceremony.officers import write_new_card

    if args.passphrase_file is not None:
        passphrase = _read_secret_file(args.passphrase_file)
    else:
        passphrase = terminal.ask_secret(f"new passphrase for {args.name}'s card: ",
                                         instead="--passphrase-file FILE")
        if terminal.ask_secret("again: ", instead="--passphrase-file FILE") != passphrase:
            raise UsageError("the two passphrases differ", "type the same passphrase twice")
    print(write_new_card(args.name, passphrase, args.out))
    return ExitCode.OK


def _officer_enroll(args: argparse.Namespace) -> int:
    args.script = "officer-change"
    args.keyset = []
    args.set = [f"enroll={path}" for path in args.new_card]
    return _run(args)


def _officer_revoke(args: argparse.Namespace) -> int:
    args.script = "officer-change"
    args.keyset = []
    args.set = [f"revoke={name}" for name in args.name]
    return _run(args)


def _doctor(args: argparse.Namespace) -> int:
    import dataclasses

    from console.clock import wall_clock
    from console.hsm.doctor import diagnose, render_text
    from console.workspace import CEREMONY_TOML, locate

    root = locate(_workspace_arg(args))
    if (root / CEREMONY_TOML).is_file():
        # A workspace with its own SoftHSM2 token: look at that token.
        ws = _open(args)
        ws.prepare_module_environment()
        ws.close()
    report = diagnose(args.module or None, now=wall_clock())
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2, default=str, ensure_ascii=False))
    else:
        print(render_text(report))
    return ExitCode.OK if report.healthy else ExitCode.FAILED


def _transcript(args: argparse.Namespace) -> int:
    from console.ceremony.service import write_transcript_again

    with _open(args) as ws:
        for path in write_transcript_again(ws, args.plan_id):
            print(path)
    return ExitCode.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

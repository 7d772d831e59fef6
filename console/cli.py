"""The `ceremony` command: parse, call the services, print. The contract is DESIGN.md §10.

stdout carries data (`--json` where output is data); stderr carries plans shown for review,
progress, prompts and the one error line `ceremony: error: <what> — <what to do>`. Exit codes
live in `ExitCode`, and the mapping from errors to exit codes is `exit_code_for`, in one place.
Ceremony flows are the session service's (`console.ceremony.session`); this module only gives
it cards and passphrases when it asks, and shows what it returns.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from console import __version__, terminal
from console.ceremony.progress import LineProgress
from console.errors import CardError, ConsoleError, UsageError

if TYPE_CHECKING:
    from console.ceremony.journal import PlanRecord
    from console.ceremony.review import PlanView
    from console.ceremony.session import Session
    from console.workspace import Workspace


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
    except KeyboardInterrupt as interrupt:
        next_step = (interrupt.next_step if isinstance(interrupt, _Interrupted)
                     else _next_step(words))
        # The prompt's line (or a progress line) may be unfinished: start a line of our own.
        print(f"\nceremony: interrupted — {next_step}", file=sys.stderr)
        return ExitCode.INTERRUPTED


class _Interrupted(KeyboardInterrupt):
    """ctrl+c in a command that knows what it had done: `next_step` says what to run."""

    def __init__(self, next_step: str) -> None:
        super().__init__(next_step)
        self.next_step = next_step


def _next_step(words: list[str]) -> str:
    """What to run after ctrl+c, for the command that was interrupted."""
    command = next((w for w in words if not w.startswith("-")), "")
    if command in ("execute", "run", "resume"):
        return ("if a step had started, `ceremony status` shows the ceremony as interrupted: "
                "continue with `ceremony resume --officer NAME …` or abort with "
                "`ceremony resume --abort --officer NAME`")
    return "nothing was changed after the last line printed; run the command again"


@contextmanager
def _interruptible(args: argparse.Namespace, session: Session) -> Iterator[None]:
    """Turn ctrl+c into the exact next command, from what `session` recorded."""
    try:
        yield
    except KeyboardInterrupt:
        raise _Interrupted(_after_interrupt(args, session)) from None


def _after_interrupt(args: argparse.Namespace, session: Session) -> str:

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


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--workspace", metavar="DIR", default=argparse.SUPPRESS,
        help="workspace folder (default: $CEREMONY_WORKSPACE or .)",
    )
    common.add_argument("--now", metavar="T", default=argparse.SUPPRESS,
                        help="rehearsal workspaces only: act at this time (RFC 3339)")
    common.add_argument("--expect-checkpoint", metavar="FILE", default=argparse.SUPPRESS,
                        help="a checkpoint an officer kept: refuse a ledger that does not "
                             "extend it (also $CEREMONY_EXPECT_CHECKPOINT)")
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks for errors (for developers)")
    parser = _Parser(
        prog="ceremony", parents=[common],
        description="Quorum-approved key ceremonies for JWT signing keys on a PKCS#11 HSM.",
    )
    parser.add_argument("--version", action="version", version=f"ceremony {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, handler: Callable[[argparse.Namespace], int], helptext: str,
                parent: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, parents=[common], help=helptext,
                                                       description=helptext)
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
                   help="a rehearsal workspace (accepts --now), fixed for its life")
    p.add_argument("--policy", type=Path, help="policy.toml to copy into the workspace")

    p = command("status", _status, "keysets, keys, due dates, open ceremonies and warnings")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("plan", _plan, "write a ceremony plan, print its id, digest and words")
    p.add_argument("script", help="script name (see ceremonies/)")
    _keysets(p)
    p.add_argument("--json", action="store_true")

    p = command("approve", _approve, "one officer reviews the plan and signs it")
    p.add_argument("plan_id")
    _officers(p, single=True)
    _confirmation(p)

    p = command("execute", _execute, "the approving officers unlock their cards; the plan runs")
    p.add_argument("plan_id")
    _officers(p)
    _confirmation(p)

    p = command("run", _run, "plan, review, approve and execute in one")
    p.add_argument("script")
    _keysets(p)
    _officers(p)
    _confirmation(p)

    p = command("resume", _resume, "continue (or abort) an interrupted or open ceremony")
    _officers(p)
    p.add_argument("--abort", action="store_true",
                   help="abort it instead (one approving officer; kept and undone are listed)")
    _confirmation(p)

    p = command("reconcile", _reconcile, "HSM inventory against the ledger (read-only)")
    p.add_argument("--json", action="store_true")

    p = command("export", _export, "copy the latest signed bundle of a keyset and its targets")
    p.add_argument("--keyset", required=True)
    p.add_argument("--out", type=Path)

    audit = command("audit", _missing_sub, "audit packs")
    audit_sub = audit.add_subparsers(metavar="ACTION", parser_class=_Parser)
    p = command("export", _audit_export, "write an audit pack", audit_sub)
    p.add_argument("--out", type=Path)

    verify = command("verify", _missing_sub, "offline verification of bundles and audit packs")
    verify_sub = verify.add_subparsers(metavar="WHAT", parser_class=_Parser)
    p = command("bundle", _verify_bundle, "verify a signed JWKS bundle and its folder",
                verify_sub)
    p.add_argument("file", type=Path)
    p.add_argument("--trust", type=Path, required=True, help="the pinned bundle-signing key JWK")
    p.add_argument("--previous", type=Path, help="the previous jwks.jwt")
    p.add_argument("--issuer", help="the issuer the bundle must name")
    p.add_argument("--keyset", help="the keyset the bundle must be for")
    p = command("audit", _verify_audit, "verify an audit pack", verify_sub)
    p.add_argument("dir", type=Path)

    officer = command("officer", _missing_sub, "officers: list, new-card, enroll, revoke")
    officer_sub = officer.add_subparsers(metavar="ACTION", parser_class=_Parser)
    p = command("list", _officer_list, "list officers", officer_sub)
    p.add_argument("--json", action="store_true")
    p = command("new-card", _officer_new_card, "make a new officer card (asks a passphrase)",
                officer_sub)
    p.add_argument("name")
    p.add_argument("--out", type=Path, required=True, help="where to write the card")
    p.add_argument("--passphrase-file", type=Path)
    p = command("enroll", _officer_enroll, "enrol officers (runs officer-change)", officer_sub)
    p.add_argument("--new-card", action="append", required=True, type=Path, metavar="FILE")
    _officers(p)
    _confirmation(p)
    p = command("revoke", _officer_revoke, "revoke officers (runs officer-change)", officer_sub)
    p.add_argument("name", nargs="+")
    _officers(p)
    _confirmation(p)

    p = command("doctor", _doctor, "PKCS#11 modules, tokens, mechanisms, and what is missing")
    p.add_argument("--module", action="append", default=[], metavar="PATH")
    p.add_argument("--json", action="store_true")

    p = command("transcript", _transcript, "write the transcript of a ceremony again")
    p.add_argument("plan_id")

    p = command("sign-token", _sign_token,
                "reference token signer: sign a JWT on the HSM with the key signer.json names")
    p.add_argument("--signer", type=Path, required=True, metavar="FILE",
                   help="the latest export's signer.json")
    p.add_argument("--pin-file", type=Path, required=True, metavar="FILE",
                   help="file holding the token PIN (decrypted from the service's pin.age; "
                        "mode 600)")
    p.add_argument("--claims", metavar="JSON",
                   help="the token's claims as a JSON object; iss, iat and exp (iat + 5 min) "
                        "are added when missing")
    p.add_argument("--module", metavar="PATH",
                   help="this host's PKCS#11 module (path, 'softhsm' or 'p11-kit'); default: "
                        "the workspace's module and token")
    return parser


def _keysets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keyset", action="append", default=[], metavar="K",
                   help="keyset (repeat; default: every due keyset)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a script parameter (e.g. enroll=dave.card, revoke=carol)")


def _officers(p: argparse.ArgumentParser, *, single: bool = False) -> None:
    p.add_argument("--officer", action="append", default=[], metavar="NAME",
                   required=single, help="officer name (repeat)")
    p.add_argument("--card", action="append", default=[], metavar="NAME=FILE",
                   help="officer card file")
    p.add_argument("--passphrase-file", action="append", default=[], metavar="NAME=FILE",
                   help="file holding the officer's passphrase (else asked without echo)")


def _confirmation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--words", metavar="'W1 W2 …'",
                   help="the plan's digest words as read aloud (at least the first two)")
    p.add_argument("--yes", action="store_true",
                   help="rehearsal workspaces only: do not ask for the words")


# --- helpers -------------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> Workspace:
    from console.workspace import Workspace, read_expected_checkpoint

    return Workspace.open(getattr(args, "workspace", None),
                          expect_checkpoint=read_expected_checkpoint(
                              getattr(args, "expect_checkpoint", None)))


def _requested_now(args: argparse.Namespace) -> datetime | None:
    from console.clock import parse_time

    text = getattr(args, "now", None)
    return None if text is None else parse_time(text, "--now")


def _session(args: argparse.Namespace, ws: Workspace) -> Session:
    from console.ceremony.session import Session

    return Session(ws, now=ws.now(_requested_now(args)))  # a bad --now refuses up front


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


class _Cards:
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
            return _read_secret_file(secret_file)
        if attempt > 1:
            print("that passphrase did not unlock the card; try again", file=sys.stderr)
        print(f"unlocking {officer}'s card…", file=sys.stderr)
        return terminal.ask_secret(f"passphrase for {officer}'s card: ",
                                   instead=f"--passphrase-file {officer}=FILE")


def _ask_words(prompt: str) -> str:
    return terminal.ask_line(prompt, instead="--words '…' (after reading the words aloud)")


def _read_secret_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read passphrase file {path!r}", "check the path") from e
    except OSError as e:
        raise UsageError(f"cannot read passphrase file {path}: {e.strerror}", "check the path") \
            from e


def _refuse_yes_in_production(args: argparse.Namespace, ws: Workspace) -> None:
    if args.yes and not ws.rehearsal:
        raise UsageError("--yes is for rehearsal workspaces only",
                         "read the digest words and give them with --words")


def _confirm(args: argparse.Namespace, ws: Workspace) -> Callable[[PlanView], None]:
    """Show the plan, then have the officer confirm its digest words (before any card)."""
    from console.ceremony.review import check_words

    _refuse_yes_in_production(args, ws)
    if args.words is None and not args.yes:
        terminal.require_tty("the plan's digest words",
                                  instead="--words '…' (after reading the words aloud)")

    def confirm(view: PlanView) -> None:
        print(view.render(), file=sys.stderr)
        if args.words is not None:
            check_words(view.digest, args.words)
        elif not args.yes:
            check_words(view.digest, _ask_words(
                "compare the words across the room, then type the first two: "))

    return confirm


def _confirm_abort(args: argparse.Namespace, ws: Workspace) -> Callable[[PlanRecord], None]:
    from console.ceremony.review import check_words

    _refuse_yes_in_production(args, ws)

    def confirm(record: PlanRecord) -> None:
        print(f"abort plan {record.plan_id} ({record.plan.script}, {record.state()}, "
              f"{record.last_done} of {len(record.actions)} steps done)", file=sys.stderr)
        if args.words is not None:
            check_words(record.digest, args.words)
        elif not args.yes:
            check_words(record.digest, _ask_words(
                "type the first two digest words of the plan to abort it: "))

    return confirm


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _missing_sub(args: argparse.Namespace) -> int:
    raise UsageError("this command needs an action", "see `ceremony <command> --help`")


# --- handlers ------------------------------------------------------------------------------


def _open_tui(args: argparse.Namespace) -> int:
    terminal.require_terminal("the console (TUI)", instead="use `ceremony status` and the others")
    from console.tui.app import run_app

    requested = _requested_now(args)
    opened: list[Any] = []

    def open_workspace() -> Any:
        # In the app's first worker, after the first paint: the ledger's checks take time.
        ws = _open(args)
        ws.now(requested)  # refuses --now outside rehearsal, or earlier than the ledger
        opened.append(ws)
        return ws

    run_app(open_workspace, clock=lambda: opened[0].now(requested))
    return ExitCode.OK


def _demo(args: argparse.Namespace) -> int:
    from console.ceremony.demo import run_demo
    from console.workspace import locate

    if not args.headless:
        terminal.require_terminal("`ceremony demo` without --headless", instead="add --headless")
    # The demo never lands in the current folder by accident: default ./demo.
    root = locate(getattr(args, "workspace", None)
                  or os.environ.get("CEREMONY_WORKSPACE") or "demo")
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
    root = locate(getattr(args, "workspace", None))
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
    with _open(args) as ws:
        session = _session(args, ws)
        with _interruptible(args, session):
            view = session.plan(args.script, keysets=args.keyset, parameters=args.set)
    if args.json:
        _print_json(view.summary())
    else:
        print(view.render())
    return ExitCode.OK


def _approve(args: argparse.Namespace) -> int:
    if len(args.officer) != 1:
        raise UsageError("approve takes exactly one --officer", "run it once per officer")
    with _open(args) as ws:
        session = _session(args, ws)
        with _interruptible(args, session):
            print(session.approve(args.plan_id, args.officer[0], _Cards(args, ws),
                                  confirm=_confirm(args, ws)).message)
    return ExitCode.OK


def _execute(args: argparse.Namespace) -> int:
    with _open(args) as ws:
        session = _session(args, ws)
        with _interruptible(args, session):
            print(session.execute(args.plan_id, args.officer, _Cards(args, ws),
                                  confirm=_confirm(args, ws), progress=LineProgress(_progress)))
    return ExitCode.OK


def _run(args: argparse.Namespace) -> int:
    with _open(args) as ws:
        session = _session(args, ws)
        cards = _Cards(args, ws)
        with _interruptible(args, session):
            print(session.run(args.script, args.officer, cards, confirm=_confirm(args, ws),
                              keysets=args.keyset, parameters=args.set,
                              progress=LineProgress(_progress)))
    return ExitCode.OK


def _resume(args: argparse.Namespace) -> int:
    with _open(args) as ws:
        session = _session(args, ws)
        if args.abort:
            if len(args.officer) != 1:
                raise UsageError(
                    f"an abort is signed by exactly one officer ({len(args.officer)} given)",
                    "give --officer NAME once: an officer who approved the plan, or any officer "
                    "in force when nobody did")
            outcome = session.abort(args.officer[0], _Cards(args, ws),
                                    confirm=_confirm_abort(args, ws))
            print(outcome.render())
            return ExitCode.OK
        with _interruptible(args, session):
            print(session.resume(args.officer, _Cards(args, ws),
                                 progress=LineProgress(_progress)))
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
    from console.ceremony.exporting import copy_latest_export

    with _open(args) as ws:
        path = copy_latest_export(ws, args.keyset, args.out)
    print(path)
    return ExitCode.OK


def _audit_export(args: argparse.Namespace) -> int:
    from console.ceremony.exporting import export_audit

    with _open(args) as ws:
        path = export_audit(ws, args.out)
    print(path)
    return ExitCode.OK


def _verify_bundle(args: argparse.Namespace) -> int:
    from console.errors import FolderMismatchError
    from console.verify import verify_bundle_files

    try:
        summary = verify_bundle_files(args.file, trust=args.trust, previous=args.previous,
                                      now=_requested_now(args), issuer=args.issuer,
                                      keyset=args.keyset)
    except FolderMismatchError as e:
        # The error line names the first file; the operator gets every one, one per line.
        if len(e.problems) > 1:
            print("\n".join(f"✗ {line}" for line in e.problem_lines()))
        raise
    print(summary)
    return ExitCode.OK


def _verify_audit(args: argparse.Namespace) -> int:
    from console.verify import verify_audit_dir

    expect = getattr(args, "expect_checkpoint", None)
    print(verify_audit_dir(args.dir, expect_checkpoint=Path(expect) if expect else None))
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
    from console.quorum.cards import check_passphrase

    if args.passphrase_file is not None:
        passphrase = _read_secret_file(args.passphrase_file)
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
    from console.sealing import CEREMONY_TOML
    from console.workspace import locate

    root = locate(getattr(args, "workspace", None))
    modules = list(args.module)
    if (root / CEREMONY_TOML).is_file():
        # A workspace's own module and token, and only when they are what the ledger records.
        with _open(args) as ws:
            ws.require_sealed()
            ws.prepare_module_environment()
            modules = modules or [ws.module_path()]
    report = diagnose(modules or None, now=wall_clock())
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2, default=str, ensure_ascii=False))
    else:
        print(render_text(report))
    return ExitCode.OK if report.healthy else ExitCode.FAILED


def _transcript(args: argparse.Namespace) -> int:
    from console.ceremony.transcript import write_transcript

    with _open(args) as ws:
        for path in write_transcript(ws, args.plan_id):
            print(path)
    return ExitCode.OK


def _sign_token(args: argparse.Namespace) -> int:
    """Everything that can be refused is refused before the PIN is read or the token opened."""
    from console.clock import wall_clock
    from console.sealing import CEREMONY_TOML
    from console.signing import (
        SignerFile,
        check_request,
        parse_claims,
        read_pin_file,
        refuse_now_outside_workspace,
        resolve_module,
        sign_token_in_workspace,
        sign_token_on,
    )
    from console.workspace import locate

    signer = SignerFile.read(args.signer)
    claims = parse_claims(args.claims) if args.claims is not None else {}
    if args.module is not None:  # a signing service's host: its module, the wall clock
        refuse_now_outside_workspace(_requested_now(args))
        now = wall_clock()
        check_request(signer, claims, now=now)
        module = resolve_module(args.module)
        token = sign_token_on(module, signer, read_pin_file(args.pin_file), claims, now=now)
    else:
        root = locate(getattr(args, "workspace", None))
        if not (root / CEREMONY_TOML).is_file():
            raise UsageError(f"no workspace in {root}, and no --module",
                             "on a signing service's host give its PKCS#11 module with "
                             "--module PATH")
        with _open(args) as ws:
            now = ws.now(_requested_now(args))
            check_request(signer, claims, now=now)
            token = sign_token_in_workspace(ws, signer, read_pin_file(args.pin_file), claims,
                                            now=now)
    print(token)
    return ExitCode.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The workspace as a whole: open the TUI, make the demo, create a workspace, and the read-only
reports (status, reconcile, doctor)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from console import terminal
from console.cli.common import (
    ExitCode,
    open_workspace,
    print_json,
    progress,
    read_secret_file,
    requested_now,
)

if TYPE_CHECKING:
    from console.workspace import Workspace


def open_tui(args: argparse.Namespace) -> int:
    terminal.require_terminal("the console (TUI)", instead="use `ceremony status` and the others")
    from console.tui.backend import Backend  # no Textual: see prefetch below

    requested = requested_now(args)
    opened: list[Workspace] = []

    def open_later() -> Workspace:
        # In the app's first worker, after the first paint: the ledger's checks take time.
        ws = open_workspace(args)
        ws.now(requested)  # refuses --now outside rehearsal, or earlier than the ledger
        opened.append(ws)
        return ws

    # Made before Textual is imported: a child process reads the dashboard's data meanwhile.
    backend = Backend.opening(open_later, clock=lambda: opened[0].now(requested), prefetch=True)
    from console.tui.app import run_app

    run_app(backend)
    return ExitCode.OK


def demo(args: argparse.Namespace) -> int:
    from console.ceremony.demo import run_demo
    from console.workspace import locate

    if not args.headless:
        terminal.require_terminal("`ceremony demo` without --headless", instead="add --headless")
    # The demo never lands in the current folder by accident: default ./demo.
    root = locate(getattr(args, "workspace", None)
                  or os.environ.get("CEREMONY_WORKSPACE") or "demo")
    run_demo(root, progress=progress)
    if args.headless:
        print(f"demo workspace ready in {root}")
        return ExitCode.OK
    from console.tui.app import run_app
    from console.workspace import Workspace

    run_app(Workspace.open(root))
    return ExitCode.OK


def init(args: argparse.Namespace) -> int:
    from console.ceremony.init import init_workspace
    from console.workspace import locate

    if args.pin_file is not None:
        pin = read_secret_file(args.pin_file)
    else:
        pin = terminal.ask_secret("current user PIN of the token: ", instead="--pin-file FILE")
    root = locate(getattr(args, "workspace", None))
    init_workspace(
        root, org=args.org, module=args.module, token_label=args.token_label,
        token_serial=args.token_serial, officer_cards=[Path(p) for p in args.officer_card],
        quorum=args.quorum, current_pin=pin.encode(), rehearsal=args.rehearsal,
        policy_file=args.policy, progress=progress,
    )
    print(f"workspace created in {root}; next: `ceremony run genesis --officer ...`")
    return ExitCode.OK


def status(args: argparse.Namespace) -> int:
    from console.ceremony.status import authorization_warning, render_status, workspace_status

    with open_workspace(args) as ws:
        report = workspace_status(ws, ws.now(requested_now(args)))
        report["warnings"][:0] = authorization_warning(ws)
    if args.json:
        print_json(report)
    else:
        print(render_status(report))
    return ExitCode.OK


def reconcile(args: argparse.Namespace) -> int:
    from console.ceremony.reconcile import reconcile_workspace, render_reconciliation

    with open_workspace(args) as ws:
        report = reconcile_workspace(ws)
    if args.json:
        print_json(report.to_json())
    else:
        print(render_reconciliation(report))
    return ExitCode.OK if report.clean else ExitCode.FAILED


def doctor(args: argparse.Namespace) -> int:
    import dataclasses

    from console.clock import wall_clock
    from console.hsm.doctor import diagnose, render_text
    from console.sealing import CEREMONY_TOML
    from console.workspace import locate

    root = locate(getattr(args, "workspace", None))
    modules = list(args.module)
    if (root / CEREMONY_TOML).is_file():
        # A workspace's own module and token, and only when they are what the ledger records.
        with open_workspace(args) as ws:
            ws.require_sealed()
            ws.prepare_module_environment()
            modules = modules or [ws.module_path()]
    report = diagnose(modules or None, now=wall_clock())
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2, default=str, ensure_ascii=False))
    else:
        print(render_text(report))
    return ExitCode.OK if report.healthy else ExitCode.FAILED

"""Exports and offline verification: copy the latest bundle, write an audit pack, verify a
bundle folder or an audit pack (the auditor's path, `console.verify`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from console.cli.common import ExitCode, open_workspace, requested_now


def export(args: argparse.Namespace) -> int:
    from console.ceremony.exporting import copy_latest_export

    with open_workspace(args) as ws:
        path = copy_latest_export(ws, args.keyset, args.out)
    print(path)
    return ExitCode.OK


def audit_export(args: argparse.Namespace) -> int:
    from console.ceremony.exporting import export_audit

    with open_workspace(args) as ws:
        path = export_audit(ws, args.out)
    print(path)
    return ExitCode.OK


def verify_bundle(args: argparse.Namespace) -> int:
    from console.errors import FolderMismatchError
    from console.verify import verify_bundle_files

    try:
        summary = verify_bundle_files(args.file, trust=args.trust, previous=args.previous,
                                      now=requested_now(args), issuer=args.issuer,
                                      keyset=args.keyset)
    except FolderMismatchError as e:
        # The error line names the first file; the operator gets every one, one per line.
        if len(e.problems) > 1:
            print("\n".join(f"✗ {line}" for line in e.problem_lines()))
        raise
    print(summary)
    return ExitCode.OK


def verify_audit(args: argparse.Namespace) -> int:
    from console.verify import verify_audit_dir

    expect = getattr(args, "expect_checkpoint", None)
    print(verify_audit_dir(args.dir, expect_checkpoint=Path(expect) if expect else None))
    return ExitCode.OK

"""`ceremony sign-token`: the reference token signer (`console.signing`)."""

from __future__ import annotations

import argparse

from console.cli.common import ExitCode, open_workspace, requested_now
from console.errors import UsageError


def sign_token(args: argparse.Namespace) -> int:
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
        refuse_now_outside_workspace(requested_now(args))
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
        with open_workspace(args) as ws:
            now = ws.now(requested_now(args))
            check_request(signer, claims, now=now)
            token = sign_token_in_workspace(ws, signer, read_pin_file(args.pin_file), claims,
                                            now=now)
    print(token)
    return ExitCode.OK

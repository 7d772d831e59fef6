"""The `ceremony` command line: every command, its options and its help (DESIGN.md §10).

Each command's handler lives in `console.cli.commands`, one module per concern. `Parser`
reports usage errors as a `UsageError`, so they end as one error line and exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn, Protocol

from console import __version__
from console.cli.commands import ceremony, exports, officers, signing, workspace
from console.cli.common import missing_sub
from console.errors import UsageError

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see `{self.prog} --help`")


class _Subcommands(Protocol):
    """What `command` uses of argparse's subparsers action (its class is private)."""

    def add_parser(self, name: str, *, help: str | None = ..., description: str | None = ...,
                   parents: Iterable[Parser] = ...) -> Parser: ...


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
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
    parser = Parser(
        prog="ceremony", parents=[common],
        description="Quorum-approved key ceremonies for JWT signing keys on a PKCS#11 HSM.",
    )
    parser.add_argument("--version", action="version", version=f"ceremony {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)

    def command(name: str, handler: Handler, helptext: str,
                parent: _Subcommands = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, parents=[common], help=helptext,
                                                       description=helptext)
        p.set_defaults(handler=handler)
        return p

    p = command("demo", workspace.demo,
                "make a rehearsal workspace on a SoftHSM2 token and run the demo")
    p.add_argument("--headless", action="store_true", help="run the demo and exit (no TUI)")

    p = command("init", workspace.init, "create a new workspace (HSM, token, officers, quorum)")
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

    p = command("status", workspace.status,
                "keysets, keys, due dates, open ceremonies and warnings")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("plan", ceremony.plan, "write a ceremony plan, print its id, digest and words")
    p.add_argument("script", help="script name (see ceremonies/)")
    _keysets(p)
    p.add_argument("--json", action="store_true")

    p = command("approve", ceremony.approve, "one officer reviews the plan and signs it")
    p.add_argument("plan_id")
    _officers(p, single=True)
    _confirmation(p)

    p = command("execute", ceremony.execute,
                "the approving officers unlock their cards; the plan runs")
    p.add_argument("plan_id")
    _officers(p)
    _confirmation(p)

    p = command("run", ceremony.run, "plan, review, approve and execute in one")
    p.add_argument("script")
    _keysets(p)
    _officers(p)
    _confirmation(p)

    p = command("resume", ceremony.resume, "continue (or abort) an interrupted or open ceremony")
    _officers(p)
    p.add_argument("--abort", action="store_true",
                   help="abort it instead (one approving officer; kept and undone are listed)")
    _confirmation(p)

    p = command("reconcile", workspace.reconcile, "HSM inventory against the ledger (read-only)")
    p.add_argument("--json", action="store_true")

    p = command("export", exports.export,
                "copy the latest signed bundle of a keyset and its targets")
    p.add_argument("--keyset", required=True)
    p.add_argument("--out", type=Path)

    audit = command("audit", missing_sub, "audit packs")
    audit_sub = audit.add_subparsers(metavar="ACTION", parser_class=Parser)
    p = command("export", exports.audit_export, "write an audit pack", audit_sub)
    p.add_argument("--out", type=Path)

    verify = command("verify", missing_sub, "offline verification of bundles and audit packs")
    verify_sub = verify.add_subparsers(metavar="WHAT", parser_class=Parser)
    p = command("bundle", exports.verify_bundle, "verify a signed JWKS bundle and its folder",
                verify_sub)
    p.add_argument("file", type=Path)
    p.add_argument("--trust", type=Path, required=True, help="the pinned bundle-signing key JWK")
    p.add_argument("--previous", type=Path, help="the previous jwks.jwt")
    p.add_argument("--issuer", help="the issuer the bundle must name")
    p.add_argument("--keyset", help="the keyset the bundle must be for")
    p = command("audit", exports.verify_audit, "verify an audit pack", verify_sub)
    p.add_argument("dir", type=Path)

    officer = command("officer", missing_sub, "officers: list, new-card, enroll, revoke")
    officer_sub = officer.add_subparsers(metavar="ACTION", parser_class=Parser)
    p = command("list", officers.show, "list officers", officer_sub)
    p.add_argument("--json", action="store_true")
    p = command("new-card", officers.new_card, "make a new officer card (asks a passphrase)",
                officer_sub)
    p.add_argument("name")
    p.add_argument("--out", type=Path, required=True, help="where to write the card")
    p.add_argument("--passphrase-file", type=Path)
    p = command("enroll", officers.enroll, "enrol officers (runs officer-change)", officer_sub)
    p.add_argument("--new-card", action="append", required=True, type=Path, metavar="FILE")
    _officers(p)
    _confirmation(p)
    p = command("revoke", officers.revoke, "revoke officers (runs officer-change)", officer_sub)
    p.add_argument("name", nargs="+")
    _officers(p)
    _confirmation(p)

    p = command("doctor", workspace.doctor,
                "PKCS#11 modules, tokens, mechanisms, and what is missing")
    p.add_argument("--module", action="append", default=[], metavar="PATH")
    p.add_argument("--json", action="store_true")

    p = command("transcript", ceremony.transcript, "write the transcript of a ceremony again")
    p.add_argument("plan_id")

    p = command("sign-token", signing.sign_token,
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


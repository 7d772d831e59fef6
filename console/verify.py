"""Offline verification of what the console hands out: signed JWKS bundles and audit packs.

This is the auditor's and the gateway operator's entry point. It imports no HSM code, no UI
code and no SQLite: only the pure verifiers in `console.exports.verify_bundle` and
`console.ledger.pack` (each standard-based, so outsiders can re-implement them: JWS, RFC 7517,
RFC 9162, C2SP signed-note, RFC 8785). Verification raises; it never returns a bool.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from console.clock import format_time, wall_clock
from console.errors import VerificationError
from console.exports.verify_bundle import (
    MAX_FOLDER_FILES,
    VerifiedBundle,
    bundle_digest,
    require_folder,
    verify_bundle,
    verify_jws,
)
from console.files import file_kind, read_regular_file
from console.ledger.pack import AuditReport, verify_audit_pack

__all__ = [
    "AuditReport",
    "FolderScan",
    "VerifiedBundle",
    "bundle_digest",
    "read_regular_file",
    "scan_folder",
    "verify_audit_dir",
    "verify_audit_pack",
    "verify_bundle",
    "verify_bundle_files",
    "verify_bundle_folder",
    "verify_jws",
]


@dataclass(frozen=True, slots=True)
class FolderScan:
    """A bundle folder as found: each regular file's SHA-256, and what cannot be read
    (symbolic links, FIFOs, devices, sockets: name → why), by relative name."""

    hashes: dict[str, str]
    unusable: dict[str, str]


def scan_folder(folder: Path) -> FolderScan:
    """Hash every regular file under `folder` (recursively) without following any link.

    Raises:
        VerificationError: the folder itself is missing, a link, or holds too many entries.
    """
    try:
        top = os.lstat(folder)
    except OSError as e:
        raise VerificationError(f"cannot read folder {folder}: {e.strerror}",
                                "give the jwks.jwt inside its bundle folder") from e
    if not stat.S_ISDIR(top.st_mode):
        raise VerificationError(f"{folder} is not a folder ({file_kind(top.st_mode)[3:]})",
                                "give the jwks.jwt inside its bundle folder")
    hashes: dict[str, str] = {}
    unusable: dict[str, str] = {}
    pending = [""]
    while pending:
        prefix = pending.pop()
        try:
            with os.scandir(folder / prefix if prefix else folder) as entries:
                for entry in entries:
                    name = f"{prefix}{entry.name}"
                    if len(hashes) + len(unusable) > MAX_FOLDER_FILES:
                        raise VerificationError(
                            f"{folder} holds more than {MAX_FOLDER_FILES} files",
                            "give the jwks.jwt inside its bundle folder")
                    mode = entry.stat(follow_symlinks=False).st_mode
                    if stat.S_ISDIR(mode):
                        pending.append(f"{name}/")
                    elif stat.S_ISREG(mode):
                        try:
                            data = read_regular_file(folder / name)
                        except VerificationError as e:
                            unusable[name] = e.message.removeprefix(f"{folder / name} ")
                            continue
                        hashes[name] = hashlib.sha256(data).hexdigest()
                    else:
                        unusable[name] = file_kind(mode)
        except OSError as e:
            # A folder nested past PATH_MAX (or unreadable) is named like a special file, not
            # raised as a traceback: no signed name is longer than 512 characters anyway.
            unusable[prefix.rstrip("/") or "."] = f"cannot be read ({e.strerror or e})"
    return FolderScan(hashes, unusable)


def verify_bundle_folder(verified: VerifiedBundle, folder: Path) -> FolderScan:
    """The folder holds exactly the files the bundle signs (plus itself and its manifest).

    Raises:
        VerificationError: naming the first extra, missing, changed or unusable file, and all
            of them when several.
    """
    scan = scan_folder(folder)
    require_folder(verified, scan.hashes, scan.unusable)
    return scan


def _read(path: Path, what: str) -> bytes:
    """A file the operator names (a link to it is fine: the folder check names a linked
    `jwks.jwt`), read bounded and only if it is a regular file: a bundle folder or a previous
    bundle handed over with a FIFO in place of `jwks.jwt` must be refused, not hang the
    verifier."""
    try:
        return read_regular_file(path, follow_links=True)
    except VerificationError as e:
        raise VerificationError(f"{what}: {e.message}", e.hint) from e


def verify_bundle_files(bundle: Path, *, trust: Path, previous: Path | None = None,
                        now: datetime | None = None, issuer: str | None = None,
                        keyset: str | None = None) -> str:
    """Verify `jwks.jwt` against the pinned bundle-signing key (and its predecessor), then its
    folder against the signed file list; with `issuer`/`keyset`, refuse a bundle naming another
    `iss`/`sub`. With `previous`, the summary lists the kids added and removed, one per line.

    Raises:
        VerificationError: naming the failed check.
    """
    token = _read(bundle, "bundle")
    try:
        trusted = json.loads(_read(trust, "trusted key"))
    except ValueError as e:
        raise VerificationError(f"{trust} is not a JWK (JSON)", "give the pinned "
                                "bundle-signing-key.jwk") from e
    if not isinstance(trusted, dict):
        raise VerificationError(f"{trust} is not a JWK object", "give bundle-signing-key.jwk")
    before = _read(previous, "previous bundle") if previous is not None else None
    when = now or wall_clock()
    verified = verify_bundle(token, trust=trusted, previous=before, now=when, issuer=issuer,
                             keyset=keyset)
    verify_bundle_folder(verified, bundle.parent)
    lines = [
        f"✓ bundle #{verified.seq} of {verified.keyset} ({verified.issuer}) verifies as of "
        f"{format_time(when)}: {len(verified.keys)} keys, signed by {verified.signer_kid}, "
        f"valid until {format_time(verified.expires_at)}, sha256 {verified.sha256}",
        f"  folder: {len(verified.files or ()) + 2} files, each as signed",
    ]
    unpinned = {name: value for name, given, value in (
        ("keyset", keyset, verified.keyset), ("issuer", issuer, verified.issuer)) if given is None}
    if unpinned:
        # One key signs every keyset's bundles: another keyset's genuine folder verifies too.
        flags = " ".join(f"--{name} {value}" for name, value in unpinned.items())
        lines.append(f"  ! {' and '.join(unpinned)} taken from the bundle itself: give them "
                     f"from your own gateway's configuration ({flags} if that is what it uses)")
    if verified.previous_kids is not None:
        algs = {k["kid"]: k["alg"] for k in verified.keys}
        lines += [f"  added   {kid} ({algs[kid]})" for kid in verified.added]
        lines += [f"  removed {kid}" for kid in verified.removed]
        if not verified.added and not verified.removed:
            lines.append("  no key added or removed")
    return "\n".join(lines)


def verify_audit_dir(directory: Path, *, expect_checkpoint: Path | None = None) -> str:
    """Verify an audit pack folder (and its consistency with a checkpoint an officer kept).

    Raises:
        LedgerTamperedError / VerificationError: naming the first bad line.
    """
    expected = (_read(expect_checkpoint, "checkpoint").decode("utf-8", "replace")
                if expect_checkpoint is not None else None)
    report = verify_audit_pack(directory, expect_checkpoint=expected)
    lines = [
        f"✓ audit pack of {report.origin} verifies: {report.size} entries cosigned by "
        f"{', '.join(sorted(report.signers))}, root {base64.b64encode(report.root).decode()}",
        f"  officers: {', '.join(report.officers)}; earlier checkpoints consistent: "
        f"{', '.join(map(str, report.earlier_checkpoints)) or 'none'}",
    ]
    authz = report.authorization
    classes = ", ".join(f"{n} {cls}" for cls, n in authz.by_class.items() if n) or "none"
    lines.append(f"  {authz.ceremonies} ceremonies: each plan approved by its quorum ({classes}), "
                 f"every state change inside an approved ceremony; {authz.planned} plan digests "
                 "checked")
    lines += [f"  ! emergency ceremony {u.plan_id} ({u.script}, {u.state}, started at seq "
              f"{u.started_seq}) is not ratified by a routine ceremony"
              + (" yet: the next routine ceremony ratifies it" if u.state == "completed" else "")
              for u in authz.unratified]
    if report.expected_checkpoint_size is not None:
        lines.append(f"  consistent with the expected checkpoint at size "
                     f"{report.expected_checkpoint_size}")
    if report.pending:
        lines.append(f"  {report.pending} later entries are pending (not yet cosigned)")
    return "\n".join(lines)

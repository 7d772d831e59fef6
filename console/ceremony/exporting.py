"""Exports the faces ask for outside a ceremony: the latest signed bundle of a keyset, copied
where an operator wants it, and an audit pack of the ledger.

Both are read-only for the ledger: nothing here signs or records anything.

`copy_latest_export` trusts nothing in the source folder that the bundle does not sign: it
verifies the bundle with the bundle-signing key the ledger records (signature, claims, the seq
and digest the ledger recorded), checks the folder against the signed file list, and copies
only the files that list names (plus `jwks.jwt` and its manifest), each re-read without
following links and re-hashed as it is copied. Symbolic links and anything but regular files
are refused, in the source and on the way to `--out`: every folder below `--out` is opened
with O_NOFOLLOW and written through its descriptor, so a link planted there cannot redirect a
write.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from console.errors import DISK_HINT, ExportError, VerificationError

if TYPE_CHECKING:
    from console.exports.verify_bundle import VerifiedBundle
    from console.ledger import Entry
    from console.workspace import Workspace

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def _latest_bundle(ws: Workspace, keyset: str) -> tuple[Entry, str | None]:
    latest = None
    previous_digest: str | None = None
    for entry in ws.ledger.entries_of_type("bundle.exported"):
        if entry.data.get("keyset") == keyset:
            if latest is not None:
                previous_digest = str(latest.data["sha256"])
            latest = entry
    if latest is None:
        raise ExportError(f"no bundle of {keyset} has been exported yet",
                          "run a ceremony (genesis, quarterly-rotation or export-only)")
    return latest, previous_digest


def _bundle_signing_jwk(ws: Workspace, kid: object) -> dict[str, str]:
    """The public JWK of the bundle-signing key `kid`, as the ledger recorded it."""
    from console.ceremony.planner import BUNDLE_KEYSET
    from console.lifecycle import replay

    keysets = replay(ws.ledger.entries_of_type("key.generated", "key.state_changed")).keysets
    state = keysets.get(BUNDLE_KEYSET)
    for key in state.keys if state is not None else ():
        if key.kid == kid:
            return {str(k): str(v) for k, v in key.jwk.items()}
    raise ExportError(f"the latest bundle is signed by {str(kid)[:16]!r}, which is not a "
                      "bundle-signing key the ledger records",
                      "the export folder was altered: re-export with export-only")


def verify_latest_export(ws: Workspace, keyset: str) -> tuple[Path, VerifiedBundle]:
    """The latest bundle folder of `keyset`, verified: the bundle against the bundle-signing
    key the ledger records and the ledger's record of it, and the folder against its signed
    list.

    Raises:
        ExportError: no bundle yet, or anything altered (naming the first file, and every
            altered file when several).
    """
    from console.exports.verify_bundle import verify_bundle
    from console.verify import read_regular_file, verify_bundle_folder

    policy = ws.policy.keyset(keyset)
    latest, previous_digest = _latest_bundle(ws, keyset)
    source = ws.root / str(latest.data["path"])
    hint = "the export folder was altered: re-export with export-only, or restore it"
    try:
        if os.path.islink(source):
            raise VerificationError(f"{source} is a symbolic link", hint)
        token = read_regular_file(source / "jwks.jwt")
        if hashlib.sha256(token).hexdigest() != latest.data["sha256"]:
            raise VerificationError(f"{source}/jwks.jwt does not match the ledger's digest", hint)
        trust = _bundle_signing_jwk(ws, _unverified_kid(token))
        verified = verify_bundle(token, trust=trust, now=ws.now(), keyset=keyset,
                                 issuer=policy.issuer)
        if verified.seq != latest.data["seq"] or verified.prev != previous_digest:
            raise VerificationError(f"{source}/jwks.jwt is not bundle #{latest.data['seq']} as "
                                    "the ledger recorded it", hint)
        verify_bundle_folder(verified, source)
    except VerificationError as e:
        raise ExportError(f"export of {keyset} refused: {e.message}", e.hint or hint) from e
    return source, verified


def _unverified_kid(token: bytes) -> object:
    """The header's kid, only to look the key up in the ledger: `verify_bundle` then checks
    the whole header strictly against that key."""
    import json

    from console import b64

    try:
        header = json.loads(b64.decode(token.split(b".", 1)[0].decode("ascii")))
    except (ValueError, UnicodeDecodeError) as e:
        raise VerificationError("jwks.jwt is not a compact JWS", "") from e
    return header.get("kid") if isinstance(header, dict) else None


def copy_latest_export(ws: Workspace, keyset: str, out: Path | None) -> Path:
    """The latest signed bundle of `keyset`, verified (in the workspace, or copied to `out`).

    Raises:
        ExportError: no bundle yet, an altered folder, a link or special file on either side,
            or `out/<keyset>/<seq>` exists. Nothing is written then.
    """
    source, verified = verify_latest_export(ws, keyset)
    if out is None:
        return Path(source)
    names = [*(name for name, _ in verified.files or ()), "jwks.jwt", "MANIFEST.sha256"]
    from console.exports.verify_bundle import expected_files

    expected = expected_files(verified)
    return _copy(source, Path(out), keyset, verified.seq, names, expected,
                 _bundle_signing_jwk(ws, verified.signer_kid))


def _open_dir(name: str | Path, dir_fd: int | None, shown: Path) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ExportError(f"{shown} is a symbolic link or not a folder",
                              "exports are never written through a link: give a real folder "
                              "for --out") from e
        raise ExportError(f"cannot open {shown}: {e.strerror}", _hint(e)) from e


def _open_out(out: Path) -> int:
    """`out` open as a folder, created as needed. The folders that already exist above it are
    the operator's own path (links there are theirs to have); `out` itself and every folder
    created here are opened with O_NOFOLLOW, one below the other, so a link swapped in while
    they are made cannot redirect the export."""
    missing: list[str] = []
    base = Path(os.path.abspath(out))
    while not os.path.lexists(base):
        if base.parent == base:  # pragma: no cover - "/" always exists
            break
        missing.append(base.name)
        base = base.parent
    if not missing:
        return _open_dir(base, None, out)
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise ExportError(f"cannot open {base}: {e.strerror}", _hint(e)) from e
    shown = base
    for name in reversed(missing):
        shown = shown / name
        try:
            child = _mkdir_open(name, fd, shown)
        finally:
            os.close(fd)
        fd = child
    return fd


def _mkdir_open(name: str, dir_fd: int, shown: Path) -> int:
    try:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    except FileExistsError:
        pass
    except OSError as e:
        raise ExportError(f"cannot create {shown}: {e.strerror}", _hint(e)) from e
    return _open_dir(name, dir_fd, shown)


_DISK_ERRNOS = (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS)


def _hint(error: OSError) -> str:
    return DISK_HINT if error.errno in _DISK_ERRNOS else "check --out"


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _copy(source: Path, out: Path, keyset: str, seq: int, names: list[str],
          expected: dict[str, str], signing_key: dict[str, str]) -> Path:
    from console.verify import read_regular_file

    target = out / keyset / str(seq)
    if out.is_symlink():
        raise ExportError(f"--out {out} is a symbolic link",
                          "exports are never written through a link: give a real folder")
    out_fd = _open_out(out)
    keyset_fd = staging_fd = -1
    staging = f".partial-{seq}-{secrets.token_hex(6)}"
    renamed = False
    try:
        keyset_fd = _mkdir_open(keyset, out_fd, out / keyset)
        if _exists(str(seq), keyset_fd):
            raise ExportError(f"{target} already exists",
                              "an export never overwrites: pick another --out")
        os.mkdir(staging, 0o755, dir_fd=keyset_fd)
        staging_fd = _open_dir(staging, keyset_fd, out / keyset / staging)
        for name in sorted(names):
            # Re-read without following links and re-hash: what is copied is what was signed.
            try:
                data = read_regular_file(source / name)
            except VerificationError as e:
                raise ExportError(f"export refused: {e.message}", e.hint) from e
            if hashlib.sha256(data).hexdigest() != expected[name]:
                raise ExportError(f"export refused: {source / name} changed while it was copied",
                                  "run the export again")
            _write_under(staging_fd, name, data, out / keyset / staging)
        os.fsync(staging_fd)  # the copied names are durable before the rename shows them
        if _exists(str(seq), keyset_fd):
            raise ExportError(f"{target} already exists",
                              "an export never overwrites: pick another --out")
        os.rename(staging, str(seq), src_dir_fd=keyset_fd, dst_dir_fd=keyset_fd)
        renamed = True
        os.fsync(keyset_fd)  # and the rename itself survives a power cut
        _copy_signing_key(signing_key, out_fd, out)
    except OSError as e:
        if renamed:
            # Every file was synced before the rename: the copy is whole, only its last
            # touches (the folder's sync, the pinned key beside it) were refused.
            raise ExportError(f"{target} is complete, but the disk refused what follows "
                              f"({e.strerror or e})", f"{DISK_HINT}; check the copy with "
                              "`ceremony verify bundle`, or export again to a new --out") from e
        raise ExportError(f"cannot write {target}: {e.strerror or e}",
                          f"{DISK_HINT}; nothing was copied") from e
    finally:
        if not renamed and keyset_fd >= 0:
            shutil.rmtree(staging, dir_fd=keyset_fd, ignore_errors=True)
        for fd in (staging_fd, keyset_fd, out_fd):
            if fd >= 0:
                os.close(fd)
    return target


def _write_under(root_fd: int, name: str, data: bytes, shown: Path) -> None:
    """Write `name` (a/b/c) below the folder open as `root_fd`, each folder opened O_NOFOLLOW."""
    parts = name.split("/")
    fds: list[int] = []
    try:
        parent = root_fd
        for part in parts[:-1]:
            parent = _mkdir_open(part, parent, shown / part)
            fds.append(parent)
        fd = os.open(parts[-1], _NEW_FILE, 0o644, dir_fd=parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # whole on disk before the folder's rename shows it
        for sub in fds:
            os.fsync(sub)  # its name in a subfolder (keys/…) too: the staging sync covers only
            # the staging folder's own entries
    finally:
        for fd in fds:
            os.close(fd)


def _copy_signing_key(jwk: dict[str, str], out_fd: int, out: Path) -> None:
    """Put the key that verified the bundle, as the ledger records it, two levels above the
    copy, where its README's command looks for it, unless `out` already has one (the operator's
    own pin is never replaced). Never the workspace's `exports/bundle-signing-key.jwk` as it is
    on disk: a file swapped there would be handed to operators as the key to trust."""
    from console.ceremony.planner import BUNDLE_SIGNING_KEY_FILE
    from console.exports.writer import signing_key_bytes

    if _exists(BUNDLE_SIGNING_KEY_FILE, out_fd):
        return
    _write_under(out_fd, BUNDLE_SIGNING_KEY_FILE, signing_key_bytes(jwk), out)


def export_audit(ws: Workspace, out: Path | None) -> Path:
    """Write an audit pack of the ledger (default `exports/audit/<size>`)."""
    from console.ledger import export_audit_pack

    target = out or ws.exports_dir / "audit" / f"{ws.ledger.size}"
    return Path(export_audit_pack(ws.ledger, target))


__all__ = ["copy_latest_export", "export_audit", "verify_latest_export"]

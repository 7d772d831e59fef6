"""Writing exports: atomic files, atomic bundle folders, manifests, and never overwriting.

A bundle folder `exports/<keyset>/<seq>/` is assembled under a hidden temporary name in the same
parent and renamed into place as a whole, so a reader sees either no folder or a complete one;
a crash while assembling leaves only a `.partial-*` folder, never mistaken for a bundle. A crash
after the rename and before the ledger records the bundle leaves a complete folder the ledger
does not know yet: `resume` records it, an abort moves it aside (`.aborted-<seq>-…`). Single
files are written to a temporary name, fsynced, and linked to their final name (link fails if
the name exists, so even a race cannot overwrite an output).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

from console.errors import DISK_HINT, ExportError
from console.exports.bundle import BundleSigner, make_bundle
from console.exports.durable import fsync_all
from console.exports.jwks import sanitize_public_jwk
from console.exports.targets import ConsumerLike, Target, TargetInput, render_targets
from console.exports.verify_bundle import (
    BUNDLE_FILE,
    MANIFEST_FILE,
    bundle_digest,
)
from console.exports.verify_bundle import manifest as manifest_of_hashes
from console.jsontypes import JsonMapping

__all__ = [
    "BUNDLE_FILE",
    "MANIFEST_FILE",
    "ExportResult",
    "export_bundle",
    "manifest",
    "signing_key_bytes",
    "write_bundle",
    "write_signing_key",
]

# Base64url kids may start with "-"; "." and ".." are refused by requiring a non-dot first.
_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class ExportResult:
    """A bundle folder that now exists: where, the SHA-256 of its `jwks.jwt`, and its files."""

    path: Path
    sha256: str
    files: tuple[str, ...]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # a new name in a folder survives a power cut only once the folder is synced
    finally:
        os.close(fd)


def _write_new_file(path: Path, data: bytes) -> None:
    """Write `data` to `path`, which must not exist: temp file, fsync, link, unlink temp."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # whole on disk before it gets its final name
        try:
            os.link(tmp, path)
        except FileExistsError as e:
            raise ExportError(
                f"{path} already exists", "exports are never overwritten: choose another path"
            ) from e
        _fsync_dir(path.parent)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror}", DISK_HINT) from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _disk(path: Path, action: Callable[..., object], *args: object, **kwargs: object) -> None:
    """`action(*args, **kwargs)`, a file-system call on `path`, reporting a refusal (full disk,
    I/O error) by the path's name."""
    try:
        action(*args, **kwargs)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}", DISK_HINT) from e


def _write_staged_file(path: Path, data: bytes) -> None:
    """Write a file inside a private staging folder: nobody sees it before the folder is
    renamed into place, so no temp name is needed; `_sync_staged` makes it durable with the
    others, before the rename."""
    try:
        with open(path, "xb") as f:
            f.write(data)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror}", DISK_HINT) from e


def _sync_staged(staging: Path, paths: Sequence[Path],
                 meanwhile: Callable[[], object] | None = None) -> None:
    """fsync the staged files and the folders holding them, together (`durable.fsync_all`,
    running `meanwhile` as the disk works): the rename that shows the folder must not become
    durable before its contents are."""
    folders = sorted({p.parent for p in paths} | {staging}, reverse=True)
    handles: list[int] = []
    try:
        for path in [*paths, *folders]:
            try:
                # fsync through a read-only descriptor flushes the file's data all the same.
                handles.append(os.open(path, os.O_RDONLY))
            except OSError as e:
                raise ExportError(f"cannot write {path}: {e.strerror or e}", DISK_HINT) from e
        _disk(staging, fsync_all, handles, meanwhile)
    finally:
        for fd in handles:
            with contextlib.suppress(OSError):
                os.close(fd)


def _check_name(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or not rel.parts or any(not _NAME.fullmatch(p) for p in rel.parts):
        raise ExportError(f"bad file name {name!r} in an export", "names are plain relative paths")
    return rel


def manifest(files: Mapping[str, bytes]) -> bytes:
    """`sha256sum` text format (`<hex>  <name>`), sorted by name, so `sha256sum -c` checks it;
    the verifier recomputes exactly these bytes (`verify_bundle.manifest`)."""
    return manifest_of_hashes({n: hashlib.sha256(d).hexdigest() for n, d in files.items()})


def write_bundle(out_root: Path, keyset: str, seq: int, files: Mapping[str, bytes], *,
                 while_syncing: Callable[[str], object] | None = None) -> ExportResult:
    """Create `out_root/keyset/seq/` holding `files` plus `MANIFEST.sha256`, atomically.
    `while_syncing(digest)`, if given, runs while the staged files go to disk (the caller's
    CPU work for this bundle, on a processor that would otherwise wait).

    Raises:
        ExportError: the folder already exists (nothing is touched), a name is unsafe, or
            the disk refuses; a half-built folder is removed and never becomes visible.
    """
    _check_name(keyset)
    if type(seq) is not int or seq < 1:
        raise ExportError(f"bundle seq {seq!r} is not an integer ≥ 1", "sequences start at 1")
    if BUNDLE_FILE not in files:
        raise ExportError(f"a bundle folder needs {BUNDLE_FILE}", "sign the bundle first")
    if MANIFEST_FILE in files:
        raise ExportError(f"{MANIFEST_FILE} is computed, not given", "drop it from files")
    names = {name: _check_name(name) for name in files}
    parent = Path(out_root) / keyset
    final = parent / str(seq)
    if final.exists():
        raise ExportError(
            f"{final} already exists",
            "exports are never overwritten: a new bundle gets the next sequence number",
        )
    if parent.is_symlink():
        # The console makes this folder itself: a link there was planted, and would send the
        # bundle wherever it points while the ledger records it here.
        raise ExportError(f"{parent} is a symbolic link, not the keyset's folder",
                          "replace it with a plain folder (move the link aside and look at it)")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create {parent}: {e.strerror}", DISK_HINT) from e
    staging = parent / f".partial-{seq}-{secrets.token_hex(6)}"
    renamed = False
    try:
        _disk(staging, staging.mkdir)
        staged: list[Path] = []
        made = {staging}
        for name in sorted(files):
            target = staging / names[name]
            if target.parent not in made:
                _disk(target.parent, target.parent.mkdir, parents=True, exist_ok=True)
                made.add(target.parent)
            _write_staged_file(target, files[name])
            staged.append(target)
        _write_staged_file(staging / MANIFEST_FILE, manifest(files))
        staged.append(staging / MANIFEST_FILE)
        digest = bundle_digest(files[BUNDLE_FILE])
        _sync_staged(staging, staged,
                     None if while_syncing is None else lambda: while_syncing(digest))
        try:
            # rename() refuses a non-empty target; exists() above catches the ordinary case.
            os.rename(staging, final)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise ExportError(
                    f"{final} already exists",
                    "another export took this sequence number; nothing was overwritten",
                ) from e
            raise ExportError(f"cannot rename the finished bundle to {final}: {e.strerror}",
                              f"{DISK_HINT}; nothing was exported") from e
        renamed = True
        # The folder is in place and whole; if the disk cannot make the rename durable, say
        # so (the ledger has not recorded it: `ceremony resume` verifies and adopts it).
        _disk(parent, _fsync_dir, parent)
    finally:
        if not renamed:
            shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        path=final,
        sha256=digest,
        files=(*sorted(files), MANIFEST_FILE),
    )


def export_bundle(
    out_root: Path,
    signer: BundleSigner,
    *,
    issuer: str,
    keyset: str,
    keys: Sequence[JsonMapping],
    seq: int,
    prev: str | None,
    now: datetime,
    lifetime: timedelta,
    consumers: Sequence[str | ConsumerLike | Target],
    active_kid: str | None = None,
    pkcs11_uri: str | None = None,
    clock_skew_seconds: int = 60,
    while_syncing: Callable[[str], object] | None = None,
) -> ExportResult:
    """Lint every target, sign the bundle over the SHA-256 of every file it comes with, then
    write the whole folder at once (`write_bundle`, which runs `while_syncing`).

    Order matters: all refusals (keys, targets, existing folder) happen before the signer is
    called, so a refused export costs no HSM signature and leaves no file. The bundle's
    `files` claim lists every file rendered here, so `verify bundle` authenticates the folder
    whole; `MANIFEST.sha256` is derived from it. (The QR code of the bundle digest is drawn in
    the ceremony transcript, not here: a file derived from `jwks.jwt` cannot be signed by it,
    and the offline verifier must not need a QR encoder to check it.)

    Raises:
        ExportError / TargetLintError: naming the refused key, target limit or existing path.
    """
    final = Path(out_root) / keyset / str(seq)
    if final.exists():
        raise ExportError(
            f"{final} already exists",
            "exports are never overwritten: a new bundle gets the next sequence number",
        )
    inp = TargetInput.build(
        keyset=keyset,
        issuer=issuer,
        keys=keys,
        active_kid=active_kid,
        pkcs11_uri=pkcs11_uri,
        clock_skew_seconds=clock_skew_seconds,
        seq=seq,
        issued_at=now,
    )
    files = render_targets(inp, consumers)
    for name in files:
        _check_name(name)
    token = make_bundle(
        signer,
        issuer=issuer,
        keyset=keyset,
        keys=list(inp.keys),
        seq=seq,
        prev=prev,
        now=now,
        lifetime=lifetime,
        files={name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    )
    files[BUNDLE_FILE] = token
    return write_bundle(Path(out_root), keyset, seq, files, while_syncing=while_syncing)


def write_signing_key(path: Path, jwk: JsonMapping) -> str:
    """Write the bundle-signing public JWK (e.g. `exports/bundle-signing-key.jwk`); return its kid.

    Raises:
        ExportError: the JWK is not a clean public key, or the file already exists.
    """
    data = signing_key_bytes(jwk)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create {path.parent}: {e.strerror}", DISK_HINT) from e
    _write_new_file(path, data)
    return sanitize_public_jwk(jwk)["kid"]


def signing_key_bytes(jwk: JsonMapping) -> bytes:
    """The bytes of a bundle-signing key file: the clean public JWK, indented, one newline.

    Raises:
        ExportError: the JWK is not a clean public key.
    """
    return (json.dumps(sanitize_public_jwk(jwk), indent=2) + "\n").encode("ascii")

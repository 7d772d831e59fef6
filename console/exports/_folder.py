"""A bundle's folder: the names its signed `files` list may hold, the manifest, and how a folder
on disk differs from what the bundle signs.

The `files` claim is `{relative name: lowercase hex SHA-256}` of every file of the folder but
the ones derived from `jwks.jwt` itself (`DERIVED_FILES`). The caller does the IO: it hashes the
folder's regular files and hands the names and digests in; nothing here reads a file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from console.errors import FolderMismatchError, VerificationError
from console.exports._jws import REFUSED_HINT, refused

if TYPE_CHECKING:
    from console.exports.verify_bundle import VerifiedBundle

BUNDLE_FILE = "jwks.jwt"
MANIFEST_FILE = "MANIFEST.sha256"
DERIVED_FILES = frozenset({BUNDLE_FILE, MANIFEST_FILE})
"""The files of a bundle folder that the `files` claim cannot list: the bundle itself and the
manifest made from it."""
MAX_FOLDER_FILES = 10_000

HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Base64url kids may start with "-"; "." and ".." are refused by requiring a non-dot first.
_NAME_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$")
_NAMED_IN_LINE = 8


def check_file_name(name: object) -> str:
    """A bundle folder's file name: a relative POSIX path of plain parts (no '..', no leading
    dot or slash, no backslash), never one of the derived files.

    Raises:
        ValueError: naming what is wrong.
    """
    if not isinstance(name, str) or not 0 < len(name) <= 512:
        raise ValueError("a file name is not a string of 1–512 characters")
    parts = name.split("/")
    if any(not _NAME_PART.fullmatch(part) for part in parts):
        raise ValueError(f"{name[:80]!r} is not a plain relative path")
    if name in DERIVED_FILES:
        raise ValueError(f"{name} is derived from the bundle and cannot be in its list")
    return name


def manifest(hashes: Mapping[str, str]) -> bytes:
    """`sha256sum` text (`<hex>  <name>`), sorted by name, so `sha256sum -c` checks it."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(hashes.items())).encode()


def expected_files(verified: VerifiedBundle) -> dict[str, str]:
    """Every file the bundle's folder must hold and its SHA-256: the signed list, `jwks.jwt`,
    and `MANIFEST.sha256` as `manifest()` makes it from those two."""
    listed = {**dict(verified.files or ()), BUNDLE_FILE: verified.sha256}
    return {**listed, MANIFEST_FILE: hashlib.sha256(manifest(listed)).hexdigest()}


def folder_differences(verified: VerifiedBundle, found: Mapping[str, str],
                       unusable: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Each difference between a folder and what the bundle signs, as (file name, phrase):
    first the `unusable` entries (name → why: a symbolic link, not a regular file), which are
    never read, then extra, missing or changed files, each group by name, and a wrong
    `MANIFEST.sha256` last (it is usually the consequence of the others, so the first
    difference named is the one that matters). Empty when the folder is exact.

    `found` maps each regular file's relative name to its hex SHA-256.
    """
    expected = expected_files(verified)
    problems: dict[str, str] = {}
    for name, why in (unusable or {}).items():
        problems[name] = f"{name} {why}"
    for name, digest in found.items():
        if name in problems:
            continue
        if name not in expected:
            problems[name] = f"{name} is not in the signed list"
        elif digest != expected[name]:
            problems[name] = (f"{MANIFEST_FILE} is not the manifest of the signed list"
                              if name == MANIFEST_FILE else f"{name} differs from the signed list")
    for name in expected:
        if name not in found and name not in problems:
            problems[name] = f"{name} is missing"
    def rank(name: str) -> tuple[int, str]:
        return (0 if name in (unusable or {}) else 2 if name == MANIFEST_FILE else 1, name)

    return [(name, problems[name]) for name in sorted(problems, key=rank)]


def require_folder(verified: VerifiedBundle, found: Mapping[str, str],
                   unusable: Mapping[str, str] | None = None) -> None:
    """Raises FolderMismatchError: the message names the first difference and the other
    files (up to `_NAMED_IN_LINE` of them, so the line stays one line), `problems` all of them."""
    if verified.files is None:
        raise VerificationError(
            f"folder: bundle #{verified.seq} signs no file list (it was made before bundles "
            "signed their folder), so its files cannot be checked",
            "ask the key officers for a fresh export (the export-only ceremony)")
    differences = folder_differences(verified, found, unusable)
    if differences:
        others = [name for name, _ in differences[1:]]
        shown = ", ".join(others[:_NAMED_IN_LINE]) + (", …" if len(others) > _NAMED_IN_LINE
                                                       else "")
        more = f" (and {len(others)} more: {shown})" if others else ""
        raise FolderMismatchError(f"folder: {differences[0][1]}{more}", REFUSED_HINT,
                                  tuple(phrase for _, phrase in differences))


def files_claim(value: object) -> tuple[tuple[str, str], ...]:
    """The bundle's `files` claim, read: (name, digest) pairs sorted by name.

    Raises:
        VerificationError: the claim is not an object of plain names to lowercase hex SHA-256.
    """
    if not isinstance(value, dict):
        raise refused("files", "files is not an object of name → SHA-256")
    if len(value) > MAX_FOLDER_FILES:
        raise refused("files", f"more than {MAX_FOLDER_FILES} files")
    out: list[tuple[str, str]] = []
    for name, digest in value.items():
        try:
            check_file_name(name)
        except ValueError as e:
            raise refused("files", str(e)) from e
        if not isinstance(digest, str) or not HEX64.fullmatch(digest):
            raise refused("files", f"{name}: not a lowercase hex SHA-256")
        out.append((name, digest))
    return tuple(sorted(out))

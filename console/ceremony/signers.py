"""Signing services: the token PIN released to a named service, encrypted to its `age` recipient.

PKCS#11 gives a token one user role, so a service that signs tokens needs the user PIN. A
`signer-enrollment` ceremony (destructive quorum) writes it to
`exports/signers/<NAME>/pin.age`, encrypted to the service's X25519 `age` recipient (`age1…`):
the standard `age -d -i identity.txt pin.age` on the service's host decrypts it. The ledger
records the name, the recipient and the file's SHA-256. `signer-revocation` changes the PIN under
the quorum, so every copy released before dies; the remaining services get the new PIN.

HSMs with a native sign-only role are the stronger choice (README, operator guide): a YubiHSM 2
authentication key whose capabilities allow only `sign-ecdsa`/`sign-pkcs`/`sign-pss`/`sign-eddsa`,
a Luna Crypto User, an AWS CloudHSM crypto user with the key shared to it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from console.errors import ExportError, PlanError

SIGNERS_DIR = "signers"
PIN_FILE = "pin.age"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")


def check_signer(name: str, recipient: str | None = None) -> None:
    """Raises PlanError when a signer name or an age recipient is malformed."""
    if not _NAME.fullmatch(name):
        raise PlanError(f"signer name {name[:40]!r} is not allowed",
                        "use 1-40 lowercase letters, digits, '.', '_' or '-'")
    if recipient is not None:
        if not _RECIPIENT.fullmatch(recipient):
            raise PlanError(f"{recipient[:20]!r}… is not an age X25519 recipient",
                            "give the service's public key as printed by `age-keygen -y`: age1…")
        import pyrage

        try:
            pyrage.x25519.Recipient.from_str(recipient)
        except pyrage.RecipientError as e:
            raise PlanError(f"{recipient[:20]}… is not a valid age recipient",
                            "copy the recipient exactly as age-keygen printed it") from e


def release_pin(exports: Path, signer: str, recipient: str, pin: bytes) -> tuple[Path, str]:
    """Encrypt `pin` to `recipient` and write it to exports/signers/<signer>/pin.age (replacing
    an earlier release of an older PIN); return the path and the file's SHA-256.

    Raises:
        PlanError: a malformed name or recipient. ExportError: the file cannot be written.
    """
    import pyrage

    check_signer(signer, recipient)
    if not pin:  # an unopened PIN gate must never release an empty file
        raise PlanError("there is no PIN to release", "report this bug")
    data = pyrage.encrypt(pin, [pyrage.x25519.Recipient.from_str(recipient)])
    folder = exports / SIGNERS_DIR / signer
    target = folder / PIN_FILE
    tmp = folder / f".{PIN_FILE}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if folder.is_symlink() or (target.exists() and not target.is_file()):
            raise ExportError(f"{folder} is not a plain folder", "remove what is there")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # whole on disk before it replaces the old release
        os.replace(tmp, target)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename is durable before the ledger records the release
        finally:
            os.close(dir_fd)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write {target}: {e.strerror or e}",
                          "free space or fix permissions, then "
                          "`ceremony resume --officer NAME …`") from e
    return target, hashlib.sha256(data).hexdigest()


def remove_release(exports: Path, signer: str) -> None:
    """Delete a revoked service's encrypted PIN (it opens nothing once the PIN changes)."""
    check_signer(signer)
    target = exports / SIGNERS_DIR / signer / PIN_FILE
    try:
        target.unlink(missing_ok=True)
        if target.parent.is_dir() and not any(target.parent.iterdir()):
            target.parent.rmdir()
    except OSError as e:
        raise ExportError(f"cannot remove {target}: {e.strerror or e}", "remove it by hand") from e


__all__ = ["PIN_FILE", "SIGNERS_DIR", "check_signer", "release_pin", "remove_release"]

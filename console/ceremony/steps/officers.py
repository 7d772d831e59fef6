"""Officer, PIN, configuration, signer and note steps, and the closing checkpoint.

These steps change only the ledger, except the PIN re-split (the new sealed PIN file is durable
before C_SetPIN, so a crash at any point leaves a PIN that some sealed file opens) and the
release of the PIN to a signing service (a file written before its record). The closing
checkpoint is signed by the approving officers in force, with the completion, in one
transaction; the PIN re-split's record is cosigned at once, so the new sealed file is trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from console.b64 import decode as b64url_decode
from console.ceremony.actions import (
    Checkpoint,
    EnrollOfficer,
    Note,
    RecordConfig,
    ReleaseSigner,
    ResplitPin,
    RevokeOfficer,
    RevokeSigner,
)
from console.ceremony.signers import release_pin, remove_release
from console.errors import DISK_HINT, PinIncorrectError, PlanError
from console.files import create_fresh
from console.jsontypes import JsonMapping
from console.quorum.pin_gate import new_pin, open_pin, read_sealed_pin, seal_pin

if TYPE_CHECKING:
    from console.ceremony.engine import CeremonyRun


def checkpoint(run: CeremonyRun, action: Checkpoint) -> str:
    last = action.n == run.record.actions[-1].n
    items = [run.done(action, signers=[c.name for c in run.checkpoint_signers()])]
    if last:
        items += run.completion()
        run.completed = True
    if not run.checkpoint_signers():
        run.append_many(items)
        return ("no checkpoint: the officers present are fewer than the routine quorum; "
                "the next routine ceremony's checkpoint covers these entries")
    run.append_many(items, checkpoint=True)
    names = ", ".join(c.name for c in run.checkpoint_signers())
    return f"checkpoint at size {run.ws.ledger.size - 1} cosigned by {names}"


def enroll_officer(run: CeremonyRun, action: EnrollOfficer) -> str:
    run.append_many([
        run.done(action, officer=action.officer),
        ("officer.enrolled", {"name": action.officer, "ed25519": action.ed25519,
                              "x25519": action.x25519}),
    ])
    return f"{action.officer} enrolled (in force from this ceremony's checkpoint)"


def revoke_officer(run: CeremonyRun, action: RevokeOfficer) -> str:
    run.append_many([
        run.done(action, officer=action.officer),
        ("officer.revoked", {"name": action.officer,
                             "reason": f"officer-change {run.record.plan_id}"}),
    ])
    return f"{action.officer} revoked (from this ceremony's checkpoint on)"


def resplit_pin(run: CeremonyRun, action: ResplitPin) -> str:
    """Change the PIN and split it anew; the new sealed file is durable before C_SetPIN,
    so a crash at any point leaves a PIN that some sealed file opens."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    recipients = [(r.officer, X25519PublicKey.from_public_bytes(b64url_decode(r.x25519)))
                  for r in action.recipients]
    fresh = bytearray(new_pin())
    sealed = seal_pin(bytes(fresh), recipients, action.threshold, now=run.clock(),
                      token=run.ws.config.hsm.token_label)
    pending = run.ws.sealed_pin_path.with_suffix(".next")
    _write_durably(pending, sealed)
    info = read_sealed_pin(sealed)
    run.intent(action, sealed_id=info.id, sha256=hashlib.sha256(sealed).hexdigest())
    run.hsm.set_pin(bytes(run.pin), bytes(fresh))
    _replace_pin(run, fresh)
    return _finish_resplit(run, action, pending, sealed)


def _replace_pin(run: CeremonyRun, fresh: bytearray) -> None:
    for i in range(len(run.pin)):
        run.pin[i] = 0
    run.pin[:] = fresh
    for i in range(len(fresh)):
        fresh[i] = 0


def _finish_resplit(run: CeremonyRun, action: ResplitPin, pending: Path, sealed: bytes) -> str:
    if pending.exists():
        try:
            os.replace(pending, run.ws.sealed_pin_path)
            _fsync_dir(run.ws.sealed_pin_path.parent)
        except OSError as e:
            raise PlanError(
                f"cannot move {pending} to {run.ws.sealed_pin_path}: {e.strerror or e}",
                f"{DISK_HINT}: the token's PIN is already the one {pending.name} seals")\
                from e
    info = read_sealed_pin(sealed)
    record = {**info.ledger_data(), "sha256": hashlib.sha256(sealed).hexdigest()}
    # The new sealed file is trusted at once: the officers present cosign its record.
    run.append_many([run.done(action, sealed_id=info.id), ("pin.resplit", record)],
                    checkpoint=True)
    return f"PIN changed and split {info.threshold} of {len(info.officers)}"


def recover_resplit_pin(run: CeremonyRun, action: ResplitPin, intent: JsonMapping) -> str:
    pending = run.ws.sealed_pin_path.with_suffix(".next")
    sealed = (pending if pending.exists() else run.ws.sealed_pin_path).read_bytes()
    if hashlib.sha256(sealed).hexdigest() != intent.get("sha256"):
        raise PlanError("the sealed PIN file does not match the interrupted re-split",
                        "restore pin.sealed and pin.next from your backup")
    holders = set(read_sealed_pin(sealed).officers)
    # An officer this plan revokes holds no share of the new file.
    fresh = bytearray(open_pin(sealed, [c for c in run.officers if c.name in holders]))
    if pending.exists():
        # PinIncorrect: the old PIN no longer works, so C_SetPIN happened before the crash.
        with contextlib.suppress(PinIncorrectError):
            run.hsm.set_pin(bytes(run.pin), bytes(fresh))
    _replace_pin(run, fresh)
    return _finish_resplit(run, action, pending, sealed)


def record_config(run: CeremonyRun, action: RecordConfig) -> str:
    run.append_many([run.done(action, changes=list(action.changes)),
                     ("config.recorded", dict(action.record))])
    return f"configuration recorded ({len(action.changes)} change(s))"


def release_signer(run: CeremonyRun, action: ReleaseSigner) -> str:
    path, digest = release_pin(run.ws.exports_dir, action.signer, action.recipient,
                               bytes(run.pin))
    run.append_many([
        run.done(action, signer=action.signer, sha256=digest),
        ("signer.released", {"signer": action.signer, "recipient": action.recipient,
                             "path": os.path.relpath(path, run.ws.root), "sha256": digest}),
    ])
    return f"PIN released to {action.signer}: {os.path.relpath(path, run.ws.root)}"


def revoke_signer(run: CeremonyRun, action: RevokeSigner) -> str:
    remove_release(run.ws.exports_dir, action.signer)
    run.append_many([run.done(action, signer=action.signer),
                     ("signer.revoked", {"signer": action.signer})])
    return f"{action.signer} revoked; its copy of the PIN dies with the PIN change"


def note(run: CeremonyRun, action: Note) -> str:
    run.append_many([run.done(action, text=action.text)])
    return "noted"


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        # The name is predictable and the folder is the insider's: never write through a link.
        with os.fdopen(create_fresh(tmp, 0o666), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the new sealed PIN is whole on disk before C_SetPIN
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise PlanError(f"cannot write {path}: {e.strerror or e}",
                        f"{DISK_HINT}; the PIN was not changed") from e


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # a rename is durable only once its directory is
    finally:
        os.close(fd)

"""Writing an audit pack from an open ledger (the format is described in `console.ledger.pack`).

The pack is written into a temporary sibling folder, every file fsynced, and renamed into place;
an existing folder is never overwritten.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from console.errors import DISK_HINT, ExportError, LedgerError
from console.ledger.checkpoint import parse_checkpoint_body, parse_note
from console.ledger.pack_format import (
    CHECKPOINT,
    ENTRIES,
    MANIFEST,
    OFFICERS,
    PENDING,
    PROOFS,
    format_consistency_proof,
    officers_document,
    proof_file_name,
)
from console.ledger.store import CHECKPOINT_TYPE, Ledger

__all__ = ["export_audit_pack"]


def export_audit_pack(ledger: Ledger, out_dir: Path) -> Path:
    """Write the audit pack of `ledger` to the new folder `out_dir`; return its path.

    Raises:
        ExportError: `out_dir` exists, the ledger has no recorded checkpoint, or a file cannot
            be written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise ExportError(
            f"{out_dir} already exists", "an export never overwrites; pick a new folder"
        )
    checkpoints = ledger.checkpoint_entries()
    if not checkpoints:
        raise ExportError(
            "the ledger has no signed checkpoint yet", "close a ceremony with a checkpoint first"
        )
    latest = checkpoints[-1]
    note = str(latest.data["note"])
    size = parse_checkpoint_body(parse_note(note)[0]).size
    total = ledger.size
    officers = ledger.trust.officers  # in force after the latest checkpoint: entries [0, size)
    root = ledger.root(size)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    digests: dict[str, str] = {}
    try:
        (tmp / PROOFS).mkdir(parents=True)
        for name, start, stop in ((ENTRIES, 0, size), (PENDING, size, total)):
            h = hashlib.sha256()
            with open(tmp / name, "wb") as f:
                for entry in ledger.entries(start, stop):
                    line = entry.raw + b"\n"
                    f.write(line)
                    h.update(line)
                _sync(f.fileno())
            digests[name] = h.hexdigest()
        files = {CHECKPOINT: note.encode(), OFFICERS: officers_document(ledger.origin, officers)}
        for cp in checkpoints[:-1]:
            old = int(cp.data["size"])
            if old >= 1:
                text = format_consistency_proof(
                    old, size, ledger.root(old), root, ledger.consistency_proof(old, size)
                )
                files[f"{PROOFS}/{proof_file_name(old, size)}"] = text.encode()
        for name, data in files.items():
            _write(tmp / name, data)
            digests[name] = hashlib.sha256(data).hexdigest()
        manifest = "".join(f"{digests[n]}  {n}\n" for n in sorted(digests))
        _write(tmp / MANIFEST, manifest.encode())
        _sync_dir(tmp / PROOFS)
        _sync_dir(tmp)
        if out_dir.exists():
            raise ExportError(f"{out_dir} already exists", "an export never overwrites")
        os.rename(tmp, out_dir)
        _sync_dir(out_dir.parent)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if out_dir.exists():
            raise ExportError(f"audit pack {out_dir} is complete, but the disk refused to "
                              f"sync its folder ({e.strerror or e})",
                              f"{DISK_HINT}; `ceremony verify audit` checks the pack") from e
        raise ExportError(f"cannot write audit pack {out_dir}: {e.strerror or e}"
                          + (f" ({e.filename})" if e.filename else ""),
                          f"{DISK_HINT}; nothing was written") from e
    except LedgerError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(f"cannot write audit pack {out_dir}: {e.message}", e.hint) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    assert latest.type == CHECKPOINT_TYPE
    return out_dir


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        _sync(f.fileno())


def _sync(fd: int) -> None:
    os.fsync(fd)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

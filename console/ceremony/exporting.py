"""Exports the faces ask for outside a ceremony: the latest signed bundle of a keyset, copied
where an operator wants it, and an audit pack of the ledger.

Both are read-only for the ledger: nothing here signs or records anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from console.errors import ExportError

if TYPE_CHECKING:
    from console.workspace import Workspace


def copy_latest_export(ws: Workspace, keyset: str, out: Path | None) -> Path:
    """The latest signed bundle of `keyset` (in the workspace, or copied to `out`).

    Raises:
        ExportError: no bundle yet, or `out` exists.
    """
    ws.policy.keyset(keyset)
    latest = None
    for entry in ws.ledger.entries_of_type("bundle.exported"):
        if entry.data.get("keyset") == keyset:
            latest = entry
    if latest is None:
        raise ExportError(f"no bundle of {keyset} has been exported yet",
                          "run a ceremony (genesis, quarterly-rotation or export-only)")
    source = ws.root / str(latest.data["path"])
    token = (source / "jwks.jwt").read_bytes()
    if hashlib.sha256(token).hexdigest() != latest.data["sha256"]:
        raise ExportError(f"{source}/jwks.jwt does not match the ledger's digest",
                          "the export folder was altered: re-export with export-only")
    if out is None:
        return Path(source)
    target = out / keyset / str(latest.data["seq"])
    if target.exists():
        raise ExportError(f"{target} already exists", "an export never overwrites: pick --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".partial-{target.name}-{os.getpid()}")
    shutil.copytree(source, partial)
    os.replace(partial, target)
    return target


def export_audit(ws: Workspace, out: Path | None) -> Path:
    """Write an audit pack of the ledger (default `exports/audit/<size>`)."""
    from console.ledger import export_audit_pack

    target = out or ws.exports_dir / "audit" / f"{ws.ledger.size}"
    return Path(export_audit_pack(ws.ledger, target))


__all__ = ["copy_latest_export", "export_audit"]

"""An insider replaces `exports/bundle-signing-key.jwk` with their own key: the TUI's Exports
screen must still show (for pinning) and check bundles against the key the ledger records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk

from console.tui.backend import Backend
from console.workspace import Workspace
from tests.tui.snapshot_app import FIXTURE


def test_a_swapped_key_file_is_neither_shown_nor_trusted(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root, symlinks=True)
    path = root / "exports" / "bundle-signing-key.jwk"
    recorded = json.loads(path.read_text())["kid"]
    intruder = jwk.JWK.from_pyca(ec.generate_private_key(ec.SECP256R1()).public_key())
    forged = json.loads(intruder.export_public())
    forged |= {"kid": intruder.thumbprint(), "alg": "ES256", "use": "sig"}
    path.write_text(json.dumps(forged))

    backend = Backend(Workspace.open(root))
    shown = backend.signing_key()
    assert shown is not None
    assert shown["kid"] == recorded != forged["kid"]
    rows = backend.bundles()
    assert rows and all(row.verified for row in rows), [row.problem for row in rows]

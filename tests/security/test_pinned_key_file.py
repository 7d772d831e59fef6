"""An insider replaces `exports/bundle-signing-key.jwk` with their own key: the TUI's Exports
screen must still show (for pinning) and check bundles against the key the ledger records, and
publishing the bundle key must not keep a planted file (the CLI's side: test_export_files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk

from console.ceremony.actions import PublishBundleKey
from console.ceremony.journal import KEY_ENTRY_TYPES
from console.ceremony.planner import BUNDLE_KEYSET
from console.ceremony.steps.exports import _write_bundle_signing_key
from console.lifecycle import Key, KeyState, replay
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


def _intruder_jwk(kid: str | None = None) -> dict[str, str]:
    intruder = jwk.JWK.from_pyca(ec.generate_private_key(ec.SECP256R1()).public_key())
    forged: dict[str, str] = json.loads(intruder.export_public())
    return forged | {"kid": kid or intruder.thumbprint(), "alg": "ES256", "use": "sig"}


class _Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def _publishing_run(tmp_path: Path) -> tuple[SimpleNamespace, Key, Path]:
    """What the publish step reads of a run: the fixture ledger's keysets, an exports folder."""
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root, symlinks=True)
    ws = Workspace.open(root)
    try:
        keysets = dict(replay(ws.ledger.entries_of_type(*KEY_ENTRY_TYPES)).keysets)
    finally:
        ws.close()
    key = next(k for k in keysets[BUNDLE_KEYSET].keys if k.state is KeyState.ACTIVE)
    exports = tmp_path / "exports"
    exports.mkdir()
    run = SimpleNamespace(ws=SimpleNamespace(exports_dir=exports), keysets=keysets,
                          progress=_Said())
    return run, key, exports / "bundle-signing-key.jwk"


@pytest.mark.parametrize("plant", ["foreign key", "recorded kid, foreign x/y", "link", "garbage"])
def test_publishing_moves_a_planted_key_file_aside(tmp_path: Path, plant: str) -> None:
    run, key, path = _publishing_run(tmp_path)
    if plant == "foreign key":
        path.write_text(json.dumps(_intruder_jwk()))
    elif plant == "recorded kid, foreign x/y":  # the old check compared the kid alone
        path.write_text(json.dumps(_intruder_jwk(kid=key.kid)))
    elif plant == "link":
        elsewhere = tmp_path / "elsewhere.jwk"
        elsewhere.write_text(json.dumps(dict(key.jwk)))
        path.symlink_to(elsewhere)
    else:
        path.write_text("{not json")
    publish = PublishBundleKey(1, "publish", label=key.label)
    _write_bundle_signing_key(run, publish, key)  # type: ignore[arg-type]

    assert not path.is_symlink()
    written = json.loads(path.read_text())
    assert jwk.JWK(**written).thumbprint() == key.kid == written["kid"]
    aside = [p.name for p in path.parent.iterdir() if p != path]
    assert len(aside) == 1 and aside[0].startswith("bundle-signing-key.unrecognised-"), aside
    assert any("moved aside" in line for line in run.progress.lines)


def test_publishing_keeps_the_right_file_and_files_an_earlier_key_under_its_kid(
        tmp_path: Path) -> None:
    run, key, path = _publishing_run(tmp_path)
    publish = PublishBundleKey(1, "publish", label=key.label)
    _write_bundle_signing_key(run, publish, key)  # type: ignore[arg-type]
    inode = path.stat().st_ino
    _write_bundle_signing_key(run, publish, key)  # type: ignore[arg-type]
    assert path.stat().st_ino == inode and [p.name for p in path.parent.iterdir()] == [path.name]

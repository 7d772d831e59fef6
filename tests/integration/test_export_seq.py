"""A bundle seq is used once: an export killed after its folder was renamed into place, then
aborted, leaves a complete signed bundle that may already have been copied out; the next export
takes the next seq, and its chain (`prev`) names the last bundle the ledger recorded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from jwcrypto import jwk, jws

from tests.integration.ceremony_helpers import (
    CRASH_VARIABLE,
    after,
    cli,
    export_dirs,
    make_demo,
    ok,
    verify_bundles,
)

OFFICERS = ("--officer", "alice", "--officer", "bob")


def _claims(folder: Path, trust: Path) -> dict[str, object]:
    """The bundle's claims, after jwcrypto checked its signature with the pinned key."""
    token = jws.JWS()
    token.deserialize((folder / "jwks.jwt").read_text().strip())
    token.verify(jwk.JWK.from_json(trust.read_text()))
    claims: dict[str, object] = json.loads(token.payload)
    return claims


def test_an_aborted_exports_seq_is_never_used_again(tmp_path: Path) -> None:
    ws = make_demo(tmp_path / "demo")
    trust = ws / "exports" / "bundle-signing-key.jwk"
    recorded = export_dirs(ws)[-1]
    now = after(ws, 91)
    crashed = cli(ws, "run", "quarterly-rotation", *OFFICERS, "--now", now,
                  env={CRASH_VARIABLE: "effect:4"})
    assert crashed.returncode == -9, crashed.stderr
    written = export_dirs(ws)[-1]
    assert int(written.name) == int(recorded.name) + 1, "the export step did not write a folder"
    ok(ws, "resume", "--abort", "--officer", "alice", "--now", now)
    aside = [p.name for p in (ws / "exports" / "demo-api").iterdir()
             if p.name.startswith(f".aborted-{written.name}-")]
    assert len(aside) == 1, sorted(p.name for p in (ws / "exports" / "demo-api").iterdir())
    assert export_dirs(ws)[-1] == recorded

    ok(ws, "run", "export-only", *OFFICERS, "--now", after(ws))
    new = export_dirs(ws)[-1]
    assert int(new.name) == int(written.name) + 1
    claims = _claims(new, trust)
    assert claims["seq"] == int(new.name)
    previous = (recorded / "jwks.jwt").read_bytes()
    assert claims["prev"] == hashlib.sha256(previous).hexdigest()
    verify_bundles(ws)  # `verify bundle --previous` accepts the skipped seq

"""Helpers for the signing-service tests: signer.json in the v1 contract, `age`, the demo's PIN.

`contract_signer` returns an export's signer.json when it already carries exactly the members of
the contract `ceremony sign-token` reads (`console.signing.SIGNER_MEMBERS`). Exports written
before `console/exports/targets/signer.py` writes them (it then carried `v`, `keyset`, `kid`,
`alg`, `pkcs11_uri` only) are completed from the same export: `iss` and `valid_from` from the
signed bundle `jwks.jwt` (its `iss` and `iat`), `mechanism`/`host_hash` from `console.jose`'s
first mechanism for the algorithm, which is what the exports write. Once every export carries
the contract, this returns the file's own bytes and the completion is never used.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from console import b64, jose
from console.signing import SIGNER_MEMBERS


def _bundle_claims(export: Path) -> dict[str, Any]:
    payload = (export / "jwks.jwt").read_text().strip().split(".")[1]
    claims: dict[str, Any] = json.loads(b64.decode(payload))
    return claims


def contract_signer(export: Path) -> bytes:
    """The export's signer.json in the v1 contract (see the module docstring)."""
    raw = (export / "signer.json").read_bytes()
    found = json.loads(raw)
    if set(found) == set(SIGNER_MEMBERS):
        return raw
    claims = _bundle_claims(export)
    spec = jose.algorithm(found["alg"])
    how = spec.sign_mechanisms[0]
    body = {
        "v": 1, "iss": claims["iss"], "alg": found["alg"], "kid": found["kid"],
        "pkcs11_uri": found["pkcs11_uri"], "mechanism": how.ckm,
        "host_hash": spec.hash_name if how.host_hashes else None,
        "valid_from": datetime.fromtimestamp(int(claims["iat"]), UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def write_contract_signer(export: Path, target: Path) -> Path:
    target.write_bytes(contract_signer(export))
    return target


def demo_pin(ws: Path, officers: tuple[str, ...] = ("alice", "bob")) -> bytes:
    """The token PIN of a demo workspace, opened with the demo officers' cards (no HSM)."""
    from console.quorum.cards import unlock_card
    from console.quorum.pin_gate import open_pin

    cards = [unlock_card((ws / "demo-cards" / f"{n}.card").read_bytes(),
                         (ws / "demo-cards" / f"{n}.pass").read_text().rstrip("\r\n"))
             for n in officers]
    return open_pin((ws / "pin.sealed").read_bytes(), cards)


def write_secret(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


# --- age -----------------------------------------------------------------------------------


def require_age() -> None:
    for tool in ("age", "age-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: apt-get install age)")


def age_keygen(identity: Path) -> str:
    """`age-keygen -o IDENTITY`; the recipient (`age1…`) as `age-keygen -y` prints it."""
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True,
                   timeout=30)
    out = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True,
                         text=True, timeout=30)
    return out.stdout.strip()


def age_decrypt(identity: Path, encrypted: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`age -d -i IDENTITY -o OUT ENCRYPTED`, as a signing service's host runs it."""
    result = subprocess.run(["age", "-d", "-i", str(identity), "-o", str(out), str(encrypted)],
                            capture_output=True, text=True, timeout=30, check=False)
    if out.exists():
        out.chmod(0o600)
    return result

"""A signing service gets the token PIN, signs with it, and loses it: with the real `age` tool.

On a demo workspace (its own SoftHSM2 token), through the `ceremony` CLI only:

1. `signer-enrollment` (destructive quorum) releases the PIN to service svc-a, encrypted to the
   X25519 recipient `age-keygen` made; the ledger records name, recipient and the file's digest.
2. The standard `age -d -i identity.txt` decrypts `pin.age` (another identity cannot); with that
   PIN `ceremony sign-token` logs in and signs, in the workspace and as a service's host would
   (no workspace, `--module`); PyJWT and jwcrypto verify the token against the export's
   jwks.json.
3. svc-b is enrolled; `signer-revocation` of svc-a changes the PIN (C_SetPIN) under the quorum:
   svc-a's PIN no longer logs in, svc-b's old copy neither, and svc-b's re-released `pin.age`
   decrypts to the new PIN, which signs. The PIN is nowhere in clear in the workspace.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt

from tests.integration.ceremony_helpers import (
    assert_one_error,
    cli,
    export_dirs,
    ledger_entries,
    make_demo,
    ok,
)
from tests.integration.signer_helpers import (
    age_decrypt,
    age_keygen,
    demo_pin,
    require_age,
    write_contract_signer,
)

pytestmark = pytest.mark.hsm

ISSUER = "https://demo.example/api"
OFFICERS = ("--officer", "alice", "--officer", "bob", "--officer", "carol")


def claims() -> str:
    now = int(time.time())  # PyJWT checks exp against the real clock
    return json.dumps({"sub": "user-17", "aud": "orders", "iat": now, "exp": now + 300})


def verified(token: str, ws: Path) -> dict[str, Any]:
    """The token's claims, after PyJWT and jwcrypto both verified it with the export's keys."""
    served = json.loads((export_dirs(ws)[-1] / "jwks.json").read_text())
    kid = jwt.get_unverified_header(token)["kid"]
    decoded: dict[str, Any] = jwt.decode(token, jwt.PyJWKSet.from_dict(served)[kid],
                                         algorithms=["ES256"], audience="orders", issuer=ISSUER)
    key = next(k for k in served["keys"] if k["kid"] == kid)
    checked = jwcrypto_jwt.JWT(jwt=token, key=jwcrypto_jwk.JWK(**key), algs=["ES256"],
                               check_claims={"iss": ISSUER, "aud": "orders"})
    assert json.loads(checked.claims) == decoded
    return decoded


def entries(ws: Path, kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in ledger_entries(ws) if e["type"] == kind]


def test_a_signing_service_gets_the_pin_with_age_signs_and_loses_it_on_revocation(
        tmp_path: Path) -> None:
    require_age()
    ws = make_demo(tmp_path / "demo")
    signer = write_contract_signer(export_dirs(ws)[-1], tmp_path / "signer.json")
    id_a, id_b = tmp_path / "svc-a-identity.txt", tmp_path / "svc-b-identity.txt"
    recipient_a, recipient_b = age_keygen(id_a), age_keygen(id_b)
    first_pin = demo_pin(ws)

    # A recipient that is not one is refused before anything is recorded.
    before = len(ledger_entries(ws))
    assert_one_error(cli(ws, "run", "signer-enrollment", "--set", "signer=svc-a", "--set",
                         "recipient=age1notarecipient", *OFFICERS),
                     contains="is not an age X25519 recipient")
    assert len(ledger_entries(ws)) == before

    # 1. Enrolment of svc-a.
    ok(ws, "run", "signer-enrollment", "--set", "signer=svc-a", "--set",
       f"recipient={recipient_a}", *OFFICERS)
    released_a = ws / "exports" / "signers" / "svc-a" / "pin.age"
    assert entries(ws, "signer.released") == [{
        "signer": "svc-a", "recipient": recipient_a, "path": "exports/signers/svc-a/pin.age",
        "sha256": hashlib.sha256(released_a.read_bytes()).hexdigest()}]
    assert released_a.stat().st_mode & 0o077 == 0
    assert_one_error(cli(ws, "run", "signer-enrollment", "--set", "signer=svc-a", "--set",
                         f"recipient={recipient_b}", *OFFICERS), contains="already holds the PIN")

    # 2. The service's host decrypts with the standard tool; only its identity can.
    assert age_decrypt(id_b, released_a, tmp_path / "stolen").returncode != 0
    pin_a = tmp_path / "svc-a.pin"
    assert age_decrypt(id_a, released_a, pin_a).returncode == 0
    assert pin_a.read_bytes() == first_pin
    token = ok(ws, "sign-token", "--signer", str(signer), "--pin-file", str(pin_a),
               "--claims", claims()).strip()
    assert verified(token, ws)["sub"] == "user-17"
    host = cli(None, "sign-token", "--signer", str(signer), "--pin-file", str(pin_a),
               "--claims", claims(), "--module", "softhsm",
               env={"SOFTHSM2_CONF": str(ws / "softhsm" / "softhsm2.conf")})
    assert host.returncode == 0, host.stderr
    assert verified(host.stdout.strip(), ws)["iss"] == ISSUER

    # 3. svc-b joins, then svc-a is revoked: the PIN changes under the quorum.
    ok(ws, "run", "signer-enrollment", "--set", "signer=svc-b", "--set",
       f"recipient={recipient_b}", *OFFICERS)
    old_b = tmp_path / "svc-b-old.pin"
    assert age_decrypt(id_b, ws / "exports" / "signers" / "svc-b" / "pin.age",
                       old_b).returncode == 0
    assert old_b.read_bytes() == first_pin
    ok(ws, "run", "signer-revocation", "--set", "signer=svc-a", *OFFICERS)
    assert not (ws / "exports" / "signers" / "svc-a").exists()
    for stale in (pin_a, old_b):
        refused = cli(ws, "sign-token", "--signer", str(signer), "--pin-file", str(stale),
                      "--claims", claims())
        assert_one_error(refused, contains="the token refused the PIN")
        assert refused.stdout == "" and first_pin.decode() not in refused.stderr

    released_b = ws / "exports" / "signers" / "svc-b" / "pin.age"
    assert age_decrypt(id_a, released_b, tmp_path / "stolen2").returncode != 0
    pin_b = tmp_path / "svc-b.pin"
    assert age_decrypt(id_b, released_b, pin_b).returncode == 0
    new_pin = pin_b.read_bytes()
    assert new_pin != first_pin and new_pin == demo_pin(ws, ("bob", "carol"))
    token = ok(ws, "sign-token", "--signer", str(signer), "--pin-file", str(pin_b),
               "--claims", claims()).strip()
    assert verified(token, ws)["sub"] == "user-17"

    # The ledger tells the story: released a, released b, revoked a, PIN changed, b again.
    released = entries(ws, "signer.released")
    assert [r["signer"] for r in released] == ["svc-a", "svc-b", "svc-b"]
    assert released[-1]["sha256"] == hashlib.sha256(released_b.read_bytes()).hexdigest()
    assert entries(ws, "signer.revoked") == [{"signer": "svc-a"}]
    order = [e["type"] for e in ledger_entries(ws)
             if e["type"] in ("signer.revoked", "pin.resplit", "signer.released")]
    assert order[-3:] == ["signer.revoked", "pin.resplit", "signer.released"]
    # No PIN in clear anywhere in the workspace: ledger, transcripts, exports, token files.
    for path in ws.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert first_pin not in data and new_pin not in data, path

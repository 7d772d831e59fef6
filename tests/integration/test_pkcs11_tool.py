"""Our keys as OpenSC's `pkcs11-tool` sees them: an independent reader of the token.

pkcs11-tool is a separate process with its own PKCS#11 code; what it lists must match what the
console claims (sign-only usage, sensitive, never extractable, generated on the token) and the
public keys the console returned.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization

from console.hsm import Hsm
from tests.integration.conftest import HsmTarget

pytestmark = [
    pytest.mark.hsm,
    pytest.mark.skipif(shutil.which("pkcs11-tool") is None, reason="OpenSC pkcs11-tool missing"),
]


def _list_objects(target: HsmTarget) -> list[dict[str, str]]:
    out = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            target.module,
            "--token-label",
            target.label,
            "--login",
            "--pin",
            target.token.user_pin,
            "--list-objects",
        ],
        env={**os.environ, "SOFTHSM2_CONF": str(target.token.conf)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    objects: list[dict[str, str]] = []
    for line in out.splitlines():
        if not line.startswith(" "):
            kind, _, rest = line.partition(";")
            objects.append({"kind": kind.strip(), "type": rest.strip()})
        elif objects:
            key, _, value = line.strip().partition(":")
            objects[-1][key.strip()] = value.strip()
    return objects


def test_pkcs11_tool_sees_sign_only_never_extractable_keys(
    direct_target: HsmTarget, hsm_factory: Callable[..., Hsm]
) -> None:
    hsm = hsm_factory(direct_target)
    made = {
        alg: hsm.generate_keypair(
            alg, label=f"tool-{alg}", rsa_bits=2048 if alg == "PS256" else None
        )
        for alg in ("ES256", "ES384", "EdDSA", "PS256")
    }
    hsm.close()  # pkcs11-tool logs in on its own

    listed = _list_objects(direct_target)
    assert len(listed) == 2 * len(made)
    for alg, key in made.items():
        mine = [o for o in listed if o.get("ID") == key.cka_id.hex()]
        assert {o["kind"] for o in mine} == {"Private Key Object", "Public Key Object"}, alg
        private = next(o for o in mine if o["kind"] == "Private Key Object")
        public = next(o for o in mine if o["kind"] == "Public Key Object")
        assert private["label"] == public["label"] == key.label
        assert private["Usage"] == "sign"
        access = {a.strip() for a in private["Access"].split(",")}
        assert access == {"sensitive", "always sensitive", "never extractable", "local"}, alg
        assert public["Usage"] == "verify"
        if alg in ("ES256", "ES384", "EdDSA"):
            # pkcs11-tool prints CKA_EC_POINT as stored: a DER OCTET STRING around the point.
            raw = key.public_key.public_bytes(
                serialization.Encoding.Raw if alg == "EdDSA" else serialization.Encoding.X962,
                serialization.PublicFormat.Raw
                if alg == "EdDSA"
                else serialization.PublicFormat.UncompressedPoint,
            )
            assert public["EC_POINT"] == (bytes([0x04, len(raw)]) + raw).hex(), alg
        else:
            assert "RSA 2048 bits" in public["type"]

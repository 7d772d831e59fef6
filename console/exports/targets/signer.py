"""`signer.json`: the active kid and its RFC 7512 PKCS#11 URI, for the token-signing service."""

from __future__ import annotations

from console.errors import TargetLintError
from console.exports.targets._common import TargetFile, TargetInput, json_bytes

NAME = "signer.json"


def lint(inp: TargetInput) -> None:
    if inp.active_kid is None or inp.pkcs11_uri is None:
        raise TargetLintError("signer.json needs the active kid and its PKCS#11 URI", "")
    if not inp.pkcs11_uri.startswith("pkcs11:") or any(c.isspace() for c in inp.pkcs11_uri):
        raise TargetLintError(
            f"{inp.pkcs11_uri!r} is not an RFC 7512 PKCS#11 URI", "it must start with 'pkcs11:'"
        )
    if "pin-value" in inp.pkcs11_uri or "pin-source" in inp.pkcs11_uri:
        raise TargetLintError("the PKCS#11 URI carries a PIN attribute", "never export a PIN")
    if not any(k["kid"] == inp.active_kid for k in inp.keys):
        raise TargetLintError(
            f"active kid {inp.active_kid} is not in the published key set",
            "a key must be published before it signs",
        )


def render(inp: TargetInput) -> list[TargetFile]:
    lint(inp)
    alg = next(k["alg"] for k in inp.keys if k["kid"] == inp.active_kid)
    body = {
        "v": 1,
        "keyset": inp.keyset,
        "kid": inp.active_kid,
        "alg": alg,
        "pkcs11_uri": inp.pkcs11_uri,
    }
    return [
        TargetFile(
            NAME,
            json_bytes(body),
            "for the token-signing service: sign with this kid and alg through this PKCS#11 "
            "URI (the PIN is configured there, never here)",
        )
    ]

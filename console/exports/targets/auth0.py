"""Auth0 client credentials (Private Key JWT / JAR): request bodies for
`POST /api/v2/clients/{id}/credentials`, one per key, PEM public key.

Auth0 takes RSA 2048–4096 only (RS256, RS384, PS256), a kid matching [0-9a-zA-Z-_]{10,64},
and at most two credentials per application: a key set that needs more is refused, since
installing a subset would silently break verification of the rest.
"""

from __future__ import annotations

import re

from console.errors import TargetLintError
from console.exports._keys import decode_field
from console.exports.jwks import jwk_to_pem
from console.exports.targets._common import TargetFile, TargetInput, json_bytes, refuse_algs

NAME = "auth0-credentials.json"
SUPPORTED = frozenset({"RS256", "PS256"})
MAX_CREDENTIALS = 2
_KID = re.compile(r"^[0-9a-zA-Z_-]{10,64}$")


def lint(inp: TargetInput) -> None:
    refuse_algs("Auth0 client credentials", inp, SUPPORTED, "Auth0 accepts RSA keys only")
    if len(inp.keys) > MAX_CREDENTIALS:
        raise TargetLintError(
            f"Auth0 allows at most {MAX_CREDENTIALS} credentials per application, "
            f"the key set has {len(inp.keys)}",
            "unpublish a retired key first, or drop Auth0 from this keyset's consumers",
        )
    for key in inp.keys:
        bits = int.from_bytes(decode_field(key["n"], "n"), "big").bit_length()
        if not 2048 <= bits <= 4096:
            raise TargetLintError(
                f"Auth0 needs RSA 2048–4096 bits, key {key['kid']} has {bits}", "regenerate"
            )
        if not _KID.fullmatch(key["kid"]):
            raise TargetLintError(f"kid {key['kid']!r} does not fit Auth0's kid pattern", "")


def render(inp: TargetInput) -> list[TargetFile]:
    lint(inp)
    bodies = [
        {
            "credential_type": "public_key",
            "name": f"{inp.keyset}-{key['kid'][:12]}",
            "pem": jwk_to_pem(key),
            "alg": key["alg"],
            "kid": key["kid"],
        }
        for key in inp.keys
    ]
    return [
        TargetFile(
            NAME,
            json_bytes(bodies),
            "Auth0: each element is the body of POST /api/v2/clients/{client_id}/credentials",
        )
    ]

"""Auth0 client credentials (Private Key JWT / JAR): request bodies for
`POST /api/v2/clients/{id}/credentials`, one per key, PEM public key.

Auth0 takes RSA 2048–4096 only (RS256, RS384, PS256), a kid matching [0-9a-zA-Z-_]{10,64},
and at most two credentials per application: a key set that needs more is refused, since
installing a subset would silently break verification of the rest.
"""

from __future__ import annotations

from console.exports.jwks import jwk_to_pem
from console.exports.targets._common import (
    ShapeInput,
    Target,
    TargetFile,
    TargetInput,
    json_bytes,
)

NAME = "auth0-credentials.json"
TYPE = "auth0"  # RSA 2048-4096, RS256/PS256, kid pattern, at most 2: console.consumers


def lint_shape(shape: ShapeInput, target: Target | None = None) -> None:
    (target or Target(TYPE)).check_keys(shape.keys)


def lint(inp: TargetInput, target: Target | None = None) -> None:
    lint_shape(inp.shape(), target)


def render(inp: TargetInput, target: Target | None = None) -> list[TargetFile]:
    lint(inp, target)
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

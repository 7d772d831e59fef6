"""Generic target: `jwks.json`, the RFC 7517 JWK Set every JWKS-capable consumer can load."""

from __future__ import annotations

from console.errors import TargetLintError
from console.exports.targets._common import (
    ShapeInput,
    Target,
    TargetFile,
    TargetInput,
    json_bytes,
)

NAME = "jwks.json"


def lint_shape(shape: ShapeInput, target: Target | None = None) -> None:
    """Every shape has an alg and a name: what this lint checks needs the material."""


def lint(inp: TargetInput, target: Target | None = None) -> None:
    for key in inp.keys:
        if key.get("use") != "sig" or "alg" not in key or "kid" not in key:
            raise TargetLintError(
                f"key {key.get('kid')!r} lacks use/alg/kid",
                "libraries silently drop such keys (jpadilla/pyjwt#626)",
            )


def render(inp: TargetInput, target: Target | None = None) -> list[TargetFile]:
    lint(inp, target)
    return [
        TargetFile(
            NAME,
            json_bytes(inp.jwks()),
            "the JWK Set: host it as the issuer's jwks_uri (Cache-Control within the keyset's "
            "cache budget) or give it to any consumer that loads a JWKS file",
        )
    ]

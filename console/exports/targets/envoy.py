"""Envoy `jwt_authn` (envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication) with the
key set inline in `local_jwks.inline_string`: Envoy does not re-fetch a local JWKS, so the file
is re-installed with every bundle."""

from __future__ import annotations

import json

from console.errors import TargetLintError
from console.exports.targets._common import (
    ShapeInput,
    Target,
    TargetFile,
    TargetInput,
    yaml_header,
    yaml_str,
)

NAME = "envoy-jwt-authn.yaml"
TYPE = "envoy"  # jwt_verify_lib verifies RS/PS 256-512, ES256/384/512 and EdDSA (Ed25519)
MAX_INLINE = 256 * 1024  # keep xDS/bootstrap documents small; a 3-key RSA-4096 set is ~3 KB


def lint_shape(shape: ShapeInput, target: Target | None = None) -> None:
    (target or Target(TYPE)).check_keys(shape.keys)


def lint(inp: TargetInput, target: Target | None = None) -> None:
    lint_shape(inp.shape(), target)
    if len(inp.jwks_compact()) > MAX_INLINE:
        raise TargetLintError("the inline JWKS is larger than 256 KiB", "publish fewer keys")
    json.loads(inp.jwks_compact())


def render(inp: TargetInput, target: Target | None = None) -> list[TargetFile]:
    lint(inp, target)
    provider = yaml_str(inp.keyset)
    lines = [
        *yaml_header(
            f"Envoy jwt_authn provider for keyset {inp.keyset}",
            "the typed_config of the envoy.filters.http.jwt_authn HTTP filter",
        ),
        "providers:",
        f"  {provider}:",
        f"    issuer: {yaml_str(inp.issuer)}",
        "    forward: true",
        f"    clock_skew_seconds: {inp.clock_skew_seconds}",
        "    local_jwks:",
        f"      inline_string: {yaml_str(inp.jwks_compact())}",
        "rules:",
        "  - match:",
        '      prefix: "/"',
        "    requires:",
        f"      provider_name: {provider}",
        "",
    ]
    return [
        TargetFile(
            NAME,
            "\n".join(lines).encode("ascii"),
            "Envoy: the jwt_authn filter config (providers + rules); re-deploy it with each bundle",
        )
    ]

"""Envoy `jwt_authn` (envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication) with the
key set inline in `local_jwks.inline_string`: Envoy does not re-fetch a local JWKS, so the file
is re-installed with every bundle."""

from __future__ import annotations

import json

from console.errors import TargetLintError
from console.exports.targets._common import (
    TargetFile,
    TargetInput,
    refuse_algs,
    yaml_header,
    yaml_str,
)

NAME = "envoy-jwt-authn.yaml"
# jwt_verify_lib verifies RS/PS 256-512, ES256/384/512 and EdDSA (Ed25519).
SUPPORTED = frozenset({"RS256", "PS256", "ES256", "ES384", "EdDSA"})
MAX_INLINE = 256 * 1024  # keep xDS/bootstrap documents small; a 3-key RSA-4096 set is ~3 KB


def lint(inp: TargetInput) -> None:
    refuse_algs("Envoy jwt_authn", inp, SUPPORTED, "not in jwt_verify_lib")
    if len(inp.jwks_compact()) > MAX_INLINE:
        raise TargetLintError("the inline JWKS is larger than 256 KiB", "publish fewer keys")
    json.loads(inp.jwks_compact())


def render(inp: TargetInput) -> list[TargetFile]:
    lint(inp)
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

"""NGINX Plus `auth_jwt_key_file`: the JWK Set as a JSON file (JSON holds no comment, so the
README says where it goes)."""

from __future__ import annotations

from console.exports.targets._common import (
    TargetFile,
    TargetInput,
    json_bytes,
    refuse_algs,
)

NAME = "nginx-jwks.json"
SUPPORTED = frozenset({"RS256", "PS256", "ES256", "ES384", "EdDSA"})


def lint(inp: TargetInput) -> None:
    refuse_algs("NGINX Plus auth_jwt", inp, SUPPORTED, "not supported by ngx_http_auth_jwt_module")


def render(inp: TargetInput) -> list[TargetFile]:
    lint(inp)
    note = (
        "NGINX Plus: auth_jwt_key_file <path to this file>; reload nginx with each bundle "
        "(auth_jwt_leeway defaults to 0 s)"
    )
    if "PS256" in inp.algs():
        note += "; PS256 needs nginx 1.29.0 or later"
    return [TargetFile(NAME, json_bytes(inp.jwks()), note)]

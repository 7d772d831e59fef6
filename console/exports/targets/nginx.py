"""NGINX Plus `auth_jwt_key_file`: the JWK Set as a JSON file (JSON holds no comment, so the
README says where it goes)."""

from __future__ import annotations

from console.exports.targets._common import (
    ShapeInput,
    Target,
    TargetFile,
    TargetInput,
    json_bytes,
)

NAME = "nginx-jwks.json"
TYPE = "nginx"


def lint_shape(shape: ShapeInput, target: Target | None = None) -> None:
    (target or Target(TYPE)).check_keys(shape.keys)


def lint(inp: TargetInput, target: Target | None = None) -> None:
    lint_shape(inp.shape(), target)


def render(inp: TargetInput, target: Target | None = None) -> list[TargetFile]:
    lint(inp, target)
    note = (
        "NGINX Plus: auth_jwt_key_file <path to this file>; reload nginx with each bundle "
        "(auth_jwt_leeway defaults to 0 s)"
    )
    if "PS256" in inp.algs():
        note += "; PS256 needs nginx 1.29.0 or later"
    return [TargetFile(NAME, json_bytes(inp.jwks()), note)]

"""PEM target: one SubjectPublicKeyInfo PEM per key, `keys/<kid>.pem`."""

from __future__ import annotations

from console.errors import TargetLintError
from console.exports.jwks import jwk_to_pem
from console.exports.targets._common import ShapeInput, Target, TargetFile, TargetInput


def lint_shape(shape: ShapeInput, target: Target | None = None) -> None:
    for key in shape.keys:
        if key.kid is not None and ("/" in key.kid or key.kid.startswith(".")):
            raise TargetLintError(f"kid {key.kid!r} cannot be a file name", "kids are thumbprints")


def lint(inp: TargetInput, target: Target | None = None) -> None:
    lint_shape(inp.shape(), target)


def render(inp: TargetInput, target: Target | None = None) -> list[TargetFile]:
    lint(inp, target)
    return [
        TargetFile(
            f"keys/{key['kid']}.pem",
            jwk_to_pem(key).encode("ascii"),
            f"public key {key['kid']} ({key['alg']}) as PEM, for consumers that take one key "
            "at a time",
        )
        for key in inp.keys
    ]

"""PEM target: one SubjectPublicKeyInfo PEM per key, `keys/<kid>.pem`."""

from __future__ import annotations

from console.errors import TargetLintError
from console.exports.jwks import jwk_to_pem
from console.exports.targets._common import TargetFile, TargetInput


def lint(inp: TargetInput) -> None:
    for key in inp.keys:
        if "/" in key["kid"] or key["kid"].startswith("."):
            raise TargetLintError(
                f"kid {key['kid']!r} cannot be a file name", "kids are thumbprints"
            )


def render(inp: TargetInput) -> list[TargetFile]:
    lint(inp)
    return [
        TargetFile(
            f"keys/{key['kid']}.pem",
            jwk_to_pem(key).encode("ascii"),
            f"public key {key['kid']} ({key['alg']}) as PEM, for consumers that take one key "
            "at a time",
        )
        for key in inp.keys
    ]

"""Kong OSS `jwt` plugin as a decK file: one `jwt_secrets` credential per kid, PEM public key.

Kong OSS has no JWKS: the plugin looks the credential up by `key`, so `key_claim_name: kid`
(read from the JOSE header, Kong/kong PR #3313) lets two keys of one issuer coexist. Which
algorithms the plugin verifies depends on the Kong release (the consumer's declared `version`,
`console.consumers`; docs/gateways.md §1): a file Kong rejects at `deck gateway sync` time is
worse than a refusal at planning.

decK validates every file against its schema, which requires `secret` in each `jwt_secrets`
entry even for RS/ES/PS/EdDSA credentials (Kong/deck#181). Kong never reads it for those
algorithms (it verifies with `rsa_public_key`), but a fixed string shared by every credential
would invite reuse as an HS256 key, so each credential gets its own random value.
"""

from __future__ import annotations

import secrets

from console.exports.jwks import jwk_to_pem
from console.exports.targets._common import (
    ShapeInput,
    Target,
    TargetFile,
    TargetInput,
    yaml_header,
    yaml_str,
)

NAME = "kong-deck.yaml"
TYPE = "kong"


def consumer_name(inp: TargetInput) -> str:
    return f"{inp.keyset}-issuer"


def lint_shape(shape: ShapeInput, target: Target | None = None) -> None:
    (target or Target(TYPE)).check_keys(shape.keys)


def lint(inp: TargetInput, target: Target | None = None) -> None:
    lint_shape(inp.shape(), target)


def render(inp: TargetInput, target: Target | None = None) -> list[TargetFile]:
    lint(inp, target)
    version = target.version if target is not None else None
    lines = [
        *yaml_header(
            f"Kong decK state for keyset {inp.keyset}",
            "deck gateway sync (scope the jwt plugin to your service or route)",
        ),
        f"# Checked for Kong {version}." if version else
        "# No Kong version declared: only algorithms every Kong since 0.10 verifies are used.",
        "# Each credential's `secret` is a random value that is never used: decK's schema",
        "# requires one (Kong/deck#181), and Kong verifies RS/PS/ES/EdDSA tokens with",
        "# rsa_public_key only. It is not a key: do not reuse it.",
        '_format_version: "3.0"',
        "consumers:",
        f"  - username: {yaml_str(consumer_name(inp))}",
        "    jwt_secrets:",
    ]
    for key in inp.keys:
        lines += [
            f"      - key: {yaml_str(key['kid'])}",
            f"        algorithm: {yaml_str(key['alg'])}",
            f"        rsa_public_key: {yaml_str(jwk_to_pem(key))}",
            f"        secret: {yaml_str(secrets.token_urlsafe(32))}",
        ]
    lines += [
        "plugins:",
        "  - name: jwt",
        "    config:",
        "      key_claim_name: kid",
        "      claims_to_verify:",
        "        - exp",
        "",
    ]
    return [
        TargetFile(
            NAME,
            "\n".join(lines).encode("ascii"),
            "Kong: deck gateway sync; one jwt credential per kid, plugin keyed on the header kid",
        )
    ]

"""Kong OSS `jwt` plugin as a decK file: one `jwt_secrets` credential per kid, PEM public key.

Kong OSS has no JWKS: the plugin looks the credential up by `key`, so `key_claim_name: kid`
(read from the JOSE header, Kong/kong PR #3313) lets two keys of one issuer coexist.
Algorithms are those of `kong/plugins/jwt/daos.lua` (RS256, RS512, ES256 besides HS*): of the
console's algorithms only RS256 and ES256 fit; newer Kong releases may accept more, but a
file Kong rejects at `deck sync` time is worse than a refusal now.
"""

from __future__ import annotations

from console.exports.jwks import jwk_to_pem
from console.exports.targets._common import (
    TargetFile,
    TargetInput,
    refuse_algs,
    yaml_header,
    yaml_str,
)

NAME = "kong-deck.yaml"
SUPPORTED = frozenset({"RS256", "ES256"})


def consumer_name(inp: TargetInput) -> str:
    return f"{inp.keyset}-issuer"


def lint(inp: TargetInput) -> None:
    refuse_algs("Kong jwt plugin", inp, SUPPORTED, "not in the plugin's algorithm list")


def render(inp: TargetInput) -> list[TargetFile]:
    lint(inp)
    lines = [
        *yaml_header(
            f"Kong decK state for keyset {inp.keyset}",
            "deck gateway sync (scope the jwt plugin to your service or route)",
        ),
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

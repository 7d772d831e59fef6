"""Istio `RequestAuthentication` with the key set inline in `jwtRules[].jwks` (a JSON string),
and the `AuthorizationPolicy` that makes a token required.

istiod does not re-fetch inline keys, so these objects are re-applied with every bundle. A
`RequestAuthentication` alone refuses bad tokens but lets a request *without* a token through
(docs/gateways.md §3): the `AuthorizationPolicy` beside it allows only requests carrying a
validated token (`requestPrincipals: ["*"]`) whose `iss` is the keyset's issuer.
"""

from __future__ import annotations

from console.errors import TargetLintError
from console.exports.targets._common import (
    ShapeInput,
    Target,
    TargetFile,
    TargetInput,
    yaml_header,
    yaml_str,
)

NAME = "istio-request-authentication.yaml"
TYPE = "istio"  # Envoy's algorithms, via istiod


def object_name(keyset: str) -> str:
    return f"{keyset}-jwt"


def policy_name(keyset: str) -> str:
    return f"{keyset}-require-jwt"


def lint_shape(shape: ShapeInput, target: Target | None = None) -> None:
    (target or Target(TYPE)).check_keys(shape.keys)
    if len(policy_name(shape.keyset)) > 63:
        raise TargetLintError("metadata.name would exceed 63 characters", "shorten the keyset name")


def lint(inp: TargetInput, target: Target | None = None) -> None:
    lint_shape(inp.shape(), target)


def render(inp: TargetInput, target: Target | None = None) -> list[TargetFile]:
    lint(inp, target)
    lines = [
        *yaml_header(
            f"Istio RequestAuthentication and AuthorizationPolicy for keyset {inp.keyset}",
            "kubectl apply -n <namespace> -f (add the same spec.selector to both objects to "
            "narrow them to a workload)",
        ),
        "apiVersion: security.istio.io/v1",
        "kind: RequestAuthentication",
        "metadata:",
        f"  name: {yaml_str(object_name(inp.keyset))}",
        "spec:",
        "  jwtRules:",
        f"    - issuer: {yaml_str(inp.issuer)}",
        f"      jwks: {yaml_str(inp.jwks_compact())}",
        "      forwardOriginalToken: true",
        "---",
        "# Why this second object: the RequestAuthentication above only rejects a bad token; a",
        "# request with no token at all would pass. This policy allows only requests that carry",
        "# a token it validated (any request principal) from this keyset's issuer.",
        "apiVersion: security.istio.io/v1",
        "kind: AuthorizationPolicy",
        "metadata:",
        f"  name: {yaml_str(policy_name(inp.keyset))}",
        "spec:",
        "  action: ALLOW",
        "  rules:",
        "    - from:",
        "        - source:",
        '            requestPrincipals: ["*"]',
        "      when:",
        "        - key: request.auth.claims[iss]",
        f"          values: [{yaml_str(inp.issuer)}]",
        "",
    ]
    return [
        TargetFile(
            NAME,
            "\n".join(lines).encode("ascii"),
            "Istio: kubectl apply -n <namespace> -f; RequestAuthentication plus the "
            "AuthorizationPolicy that requires a token; re-apply with each bundle (inline jwks)",
        )
    ]

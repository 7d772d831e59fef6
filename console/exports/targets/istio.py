"""Istio `RequestAuthentication` with the key set inline in `jwtRules[].jwks` (a JSON string).

istiod does not re-fetch inline keys, so this object is re-applied with every bundle."""

from __future__ import annotations

from console.errors import TargetLintError
from console.exports.targets._common import (
    TargetFile,
    TargetInput,
    refuse_algs,
    yaml_header,
    yaml_str,
)

NAME = "istio-request-authentication.yaml"
SUPPORTED = frozenset({"RS256", "PS256", "ES256", "ES384", "EdDSA"})  # Envoy's, via istiod


def object_name(inp: TargetInput) -> str:
    return f"{inp.keyset}-jwt"


def lint(inp: TargetInput) -> None:
    refuse_algs("Istio RequestAuthentication", inp, SUPPORTED, "not verified by the Envoy sidecar")
    if len(object_name(inp)) > 63:
        raise TargetLintError("metadata.name would exceed 63 characters", "shorten the keyset name")


def render(inp: TargetInput) -> list[TargetFile]:
    lint(inp)
    lines = [
        *yaml_header(
            f"Istio RequestAuthentication for keyset {inp.keyset}",
            "kubectl apply -n <namespace> -f (add spec.selector to narrow it to a workload)",
        ),
        "apiVersion: security.istio.io/v1",
        "kind: RequestAuthentication",
        "metadata:",
        f"  name: {yaml_str(object_name(inp))}",
        "spec:",
        "  jwtRules:",
        f"    - issuer: {yaml_str(inp.issuer)}",
        f"      jwks: {yaml_str(inp.jwks_compact())}",
        "      forwardOriginalToken: true",
        "",
    ]
    return [
        TargetFile(
            NAME,
            "\n".join(lines).encode("ascii"),
            "Istio: kubectl apply -n <namespace> -f; re-apply with each bundle (inline jwks)",
        )
    ]

"""Gateway and IdP files: which files each consumer type gets, linted before any is rendered.

Every bundle folder holds `jwks.json`, one PEM per key, `signer.json` (when the active key's
PKCS#11 URI is given) and a `README.txt` saying where each file goes (JSON files cannot carry a
comment; YAML and XML files carry a header comment too). Consumer types add their files:

    envoy      envoy-jwt-authn.yaml         istio      istio-request-authentication.yaml
    kong       kong-deck.yaml               nginx      nginx-jwks.json
    apim       apim-validate-jwt.xml        auth0      auth0-credentials.json
    aws-apigw  (README line: host jwks.json) generic    (README line: jwks.json)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import ModuleType

from console.errors import TargetLintError
from console.exports.targets import (
    apim,
    auth0,
    envoy,
    istio,
    jwks_json,
    kong,
    nginx,
    pem,
    signer,
)
from console.exports.targets._common import TargetFile, TargetInput

__all__ = [
    "CONSUMER_TYPES",
    "TargetFile",
    "TargetInput",
    "lint_targets",
    "render_targets",
]

_BY_CONSUMER: dict[str, tuple[ModuleType, ...]] = {
    "envoy": (envoy,),
    "istio": (istio,),
    "kong": (kong,),
    "nginx": (nginx,),
    "apim": (apim,),
    "auth0": (auth0,),
    "aws-apigw": (),
    "generic": (),
}
CONSUMER_TYPES: tuple[str, ...] = tuple(_BY_CONSUMER)

_README_ONLY = {
    "aws-apigw": "AWS API Gateway JWT authorizer: it only fetches a hosted JWKS; publish "
    "jwks.json at the jwks_uri of <issuer>/.well-known/openid-configuration, reachable from "
    "the internet (AWS caches it up to 1 h)",
    "generic": "generic consumers: load jwks.json (or keys/<kid>.pem for one-key consumers)",
}


def _modules(inp: TargetInput, consumers: Iterable[str]) -> tuple[list[ModuleType], list[str]]:
    modules: list[ModuleType] = [jwks_json, pem]
    if inp.pkcs11_uri is not None or inp.active_kid is not None:
        modules.append(signer)
    notes: list[str] = []
    for consumer in consumers:
        if consumer not in _BY_CONSUMER:
            raise TargetLintError(
                f"unknown consumer type {consumer!r}",
                f"use one of: {', '.join(CONSUMER_TYPES)}",
            )
        for module in _BY_CONSUMER[consumer]:
            if module not in modules:
                modules.append(module)
        if consumer in _README_ONLY and _README_ONLY[consumer] not in notes:
            notes.append(_README_ONLY[consumer])
    return modules, notes


def lint_targets(inp: TargetInput, consumers: Iterable[str]) -> None:
    """Run every lint for these consumers.

    Raises:
        TargetLintError: the first target that refuses the key set, with the reason.
    """
    modules, _ = _modules(inp, list(consumers))
    for module in modules:
        lint: Callable[[TargetInput], None] = module.lint
        lint(inp)


def render_targets(inp: TargetInput, consumers: Iterable[str]) -> dict[str, bytes]:
    """All files of a bundle folder except `jwks.jwt`, `MANIFEST.sha256` and the QR code.

    Every target is linted before any is rendered: one refusal means no files at all.

    Raises:
        TargetLintError: a target refuses the key set (the reason names the limit).
    """
    consumers = list(consumers)
    lint_targets(inp, consumers)
    modules, notes = _modules(inp, consumers)
    files: dict[str, bytes] = {}
    readme = [
        f"Key Ceremony Console export for keyset {inp.keyset} (issuer {inp.issuer}).",
        "Verify first: ceremony verify bundle jwks.jwt --trust bundle-signing-key.jwk "
        "[--previous <previous jwks.jwt>], and sha256sum -c MANIFEST.sha256.",
        "",
        "jwks.jwt: the signed bundle (JWS, typ jwk-set+jwt) of the keys below",
    ]
    for module in modules:
        render: Callable[[TargetInput], list[TargetFile]] = module.render
        for f in render(inp):
            if f.name in files:  # pragma: no cover - names are fixed per module
                raise TargetLintError(f"two targets write {f.name}", "report this bug")
            files[f.name] = f.data
            readme.append(f"{f.name}: {f.readme}")
    readme += ["bundle-digest.svg: QR code of the SHA-256 of jwks.jwt, to compare by phone"]
    readme += notes
    files["README.txt"] = ("\n".join(readme) + "\n").encode("utf-8")
    return files

"""Gateway and IdP files: which files each consumer type gets, linted before any is rendered.

Every bundle folder holds `jwks.json`, one PEM per key, `signer.json` (when the active key's
PKCS#11 URI is given) and a `README.txt` saying where each file goes and how to verify it (JSON
files cannot carry a comment; YAML, XML and Apache files carry a header comment too). Consumer
types add their files:

    envoy      envoy-jwt-authn.yaml         istio           istio-request-authentication.yaml
    kong       kong-deck.yaml               nginx           nginx-jwks.json
    apim       apim-validate-jwt.xml        auth0           auth0-credentials.json
    apache-openidc  apache-openidc.conf     aws-apigw       (README line: host jwks.json)
    generic    (README line: jwks.json)

What each type accepts (algorithms by version, key types, number of keys) is the table in
`console.consumers`; `lint_shapes` runs every limit that needs only the keys' shapes, so
planning can refuse a bundle before its keys exist.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from types import ModuleType

from console.consumers import CONSUMER_TYPES, capability
from console.errors import TargetLintError
from console.exports.targets import (
    apache,
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
from console.exports.targets._common import (
    ConsumerLike,
    ShapeInput,
    Target,
    TargetFile,
    TargetInput,
    check_names,
)

__all__ = [
    "CONSUMER_TYPES",
    "ConsumerLike",
    "ShapeInput",
    "Target",
    "TargetFile",
    "TargetInput",
    "lint_shapes",
    "lint_targets",
    "render_targets",
]

_BY_CONSUMER: dict[str, ModuleType | None] = {
    "envoy": envoy,
    "istio": istio,
    "kong": kong,
    "nginx": nginx,
    "apim": apim,
    "auth0": auth0,
    "apache-openidc": apache,
    "aws-apigw": None,
    "generic": None,
}
if tuple(_BY_CONSUMER) != CONSUMER_TYPES:  # pragma: no cover - the table and this map agree
    raise AssertionError("console.consumers and the target writers list different types")

_README_ONLY = {
    "aws-apigw": "AWS API Gateway JWT authorizer: it only fetches a hosted JWKS; publish "
    "jwks.json at the jwks_uri of <issuer>/.well-known/openid-configuration, reachable from "
    "the internet (AWS caches it up to 1 h)",
    "generic": "generic consumers: load jwks.json (or keys/<kid>.pem for one-key consumers)",
}

Consumers = Iterable[str | ConsumerLike | Target]


def _plan(consumers: Consumers, *, with_signer: bool
          ) -> tuple[list[tuple[ModuleType, Target | None]], list[Target], list[str]]:
    """(module, target) pairs to lint and render, every declared target, README-only notes.

    One file per consumer type: several consumers of one type share it, so each one's limits
    are checked (the strictest wins) and the file is rendered for the first.
    """
    modules: list[tuple[ModuleType, Target | None]] = [(jwks_json, None), (pem, None)]
    if with_signer:
        modules.append((signer, None))
    targets = [Target.of(c) for c in consumers]
    notes: list[str] = []
    seen: dict[str, Target] = {}
    for target in targets:
        capability(target.type)  # refuses an unknown type, naming the known ones
        module = _BY_CONSUMER[target.type]
        first = seen.setdefault(target.type, target)
        if module is apache and first.jwks_uri != target.jwks_uri:
            raise TargetLintError(
                f"consumers {first.name} and {target.name} are both apache-openidc but declare "
                "different jwks_uri; one apache-openidc.conf names one JWKS URI",
                "declare the same jwks_uri for both, or give one of them a keyset of its own")
        if module is not None and first is target:
            modules.append((module, target))
        note = _README_ONLY.get(target.type)
        if note is not None and note not in notes:
            notes.append(note)
    return modules, targets, notes


def lint_shapes(shape: ShapeInput, consumers: Consumers) -> None:
    """Every limit that needs only the keys' shapes (alg, key type, kid or label, RSA size,
    how many): what planning runs on the bundle a plan will export.

    Raises:
        TargetLintError: the first limit broken, naming the consumer's limit and the key.
    """
    check_names(shape.keyset, shape.issuer)
    modules, targets, _ = _plan(consumers, with_signer=False)
    for target in targets:
        target.check_keys(shape.keys)
    for module, declared in modules:
        module.lint_shape(shape, declared)


def lint_targets(inp: TargetInput, consumers: Consumers) -> None:
    """Run every lint for these consumers, on the real keys.

    Raises:
        TargetLintError: the first target that refuses the key set, with the reason.
    """
    consumers = list(consumers)
    lint_shapes(inp.shape(), consumers)
    modules, _, _ = _plan(consumers, with_signer=_wants_signer(inp))
    for module, target in modules:
        module.lint(inp, target)


def _wants_signer(inp: TargetInput) -> bool:
    return inp.pkcs11_uri is not None or inp.active_kid is not None


def _verify_lines(inp: TargetInput) -> list[str]:
    """The commands that check this folder, runnable from inside it: the bundle-signing key
    sits two levels up (exports/bundle-signing-key.jwk beside exports/<keyset>/<seq>/)."""
    before = inp.seq - 1 if inp.seq is not None else 0
    previous = f" --previous ../{before}/jwks.jwt" if before >= 1 else ""
    lines = [
        "Verify first, from this folder (it checks the signature and every file listed here):",
        f"  ceremony verify bundle jwks.jwt --trust ../../bundle-signing-key.jwk{previous}"
        f" --issuer {shlex.quote(inp.issuer)} --keyset {inp.keyset}",
        "  sha256sum -c MANIFEST.sha256",
    ]
    if previous:
        lines.append(f"(--previous names bundle #{before} of this keyset, the one your "
                     "consumers have now: give yours if it is elsewhere.)")
    lines.append("(--trust names the bundle-signing key you pinned: give your copy if it is "
                 "elsewhere.)")
    return lines


def render_targets(inp: TargetInput, consumers: Consumers) -> dict[str, bytes]:
    """All files of a bundle folder except `jwks.jwt` and `MANIFEST.sha256` (derived from it).

    Every target is linted before any is rendered: one refusal means no files at all.

    Raises:
        TargetLintError: a target refuses the key set (the reason names the limit).
    """
    consumers = list(consumers)
    lint_targets(inp, consumers)
    modules, _, notes = _plan(consumers, with_signer=_wants_signer(inp))
    files: dict[str, bytes] = {}
    bundle = f"bundle #{inp.seq}" if inp.seq is not None else "bundle"
    readme = [
        f"Key Ceremony Console export for keyset {inp.keyset} (issuer {inp.issuer}), {bundle}.",
        *_verify_lines(inp),
        "",
        "jwks.jwt: the signed bundle (JWS, typ jwk-set+jwt) of the keys below, and the SHA-256 "
        "of every other file in this folder",
    ]
    for module, target in modules:
        rendered: Sequence[TargetFile] = module.render(inp, target)
        for f in rendered:
            if f.name in files:  # pragma: no cover - names are fixed per module
                raise TargetLintError(f"two targets write {f.name}", "report this bug")
            files[f.name] = f.data
            readme.append(f"{f.name}: {f.readme}")
    readme += [
        "MANIFEST.sha256: sha256sum lines of jwks.jwt and every file above, derived from jwks.jwt",
        "QR code of the bundle digest: in the ceremony transcript (transcripts/), not here: "
        "a file derived from jwks.jwt cannot be in its signed list",
    ]
    readme += notes
    files["README.txt"] = ("\n".join(readme) + "\n").encode("utf-8")
    return files

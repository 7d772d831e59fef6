"""What each consumer type accepts: the one table of gateway and IdP limits (DESIGN.md §7, §9).

Three places ask the same questions, and must get the same answers:

* loading `policy.toml` (`console.config.policy`): can this consumer verify the keyset's `alg`,
  and can it hold as many keys as the rotation schedule publishes at once?
* planning (`console.ceremony.planner`): will the bundle this plan exports — the keys published
  now, changed by the plan, plus the keys it generates — pass every target's lint? A plan that
  would fail its export is never offered for approval;
* writing the export (`console.exports.targets`): the same check on the real keys, just before
  the files are rendered.

So the limits live here, once, as `Capability` rows, and the checks work on `KeyShape`s (alg,
key type, kid or label, RSA size): what planning knows of a key that does not exist yet.
Versioned limits follow the consumer's declared `version` (Kong: docs/gateways.md §1, read in
Kong/kong's `daos.lua` history); with no version declared, the oldest release the console
supports is assumed, and the refusal says to declare it.

Pure: imports only the standard library, `console.jose`, `console.b64` and `console.errors`, so
the config loader can use it without loading the target writers or a crypto backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from console import b64, jose
from console.errors import TargetLintError, UnknownAlgorithmError
from console.jsontypes import JsonMapping

__all__ = [
    "CAPABILITIES",
    "CONSUMER_TYPES",
    "ROTATION_PEAK",
    "Capability",
    "KeyShape",
    "accepted_algorithms",
    "capability",
    "check_key_shapes",
    "check_keyset_algorithm",
    "parse_version",
]

Version = tuple[int, ...]

ROTATION_PEAK: Final = 3
"""The most keys a keyset's rotation keeps published at once: at each rotation the old active
key retires but stays published for its grace (token lifetime + clock skew + margin, never
zero), the successor becomes active, and a new successor is published: retired, active and
successor (console.lifecycle.plan_rotation)."""

_VERSION = re.compile(r"^[0-9]{1,4}(\.[0-9]{1,4}){0,2}$")


def parse_version(text: str) -> Version:
    """"3.7" → (3, 7, 0). Raises ValueError for anything but major[.minor[.patch]]."""
    if not _VERSION.fullmatch(text):
        raise ValueError(f"{text!r} is not a release number")
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (3 - len(parts))


def _show(version: Version) -> str:
    return ".".join(map(str, version))


@dataclass(frozen=True, slots=True)
class KeyShape:
    """What the limits need to know of a key: its alg (hence kty), a name to show, and, when
    the key exists, its kid and RSA modulus size. A key a plan will generate has a label and no
    kid yet; its RSA size is the policy's."""

    alg: str
    name: str
    kid: str | None = None
    rsa_bits: int | None = None

    @property
    def kty(self) -> str:
        return jose.algorithm(self.alg).kty

    @classmethod
    def of_jwk(cls, jwk: JsonMapping) -> KeyShape:
        """The shape of a public JWK (alg, kid, and the RSA size from `n`).

        Raises:
            TargetLintError: the JWK has no policy alg, no kid, or an undecodable `n`.
        """
        alg, kid = jwk.get("alg"), jwk.get("kid")
        if not isinstance(alg, str) or not isinstance(kid, str):
            raise TargetLintError(f"key {str(kid)[:16]!r} has no alg or kid",
                                  "every published key carries both")
        try:
            spec = jose.algorithm(alg)
        except UnknownAlgorithmError as e:
            raise TargetLintError(f"key {kid[:16]} has alg {alg[:10]!r}", e.hint) from e
        bits = None
        if spec.kty == "RSA":
            try:
                bits = int.from_bytes(b64.decode(str(jwk.get("n", ""))), "big").bit_length()
            except ValueError as e:
                raise TargetLintError(f"key {kid[:16]}: n is not base64url", "re-export") from e
        return cls(alg=alg, name=kid, kid=kid, rsa_bits=bits)


@dataclass(frozen=True, slots=True)
class Capability:
    """What one consumer type verifies.

    `algorithms` is what it accepts when no version is declared (the oldest supported
    release); `since` lists, for versioned consumers, the console algorithms accepted from each
    release on. `key_types` (JWK kty), `max_keys`, `rsa_bits` (inclusive range) and
    `kid_pattern` are further limits, None when the consumer has none.
    """

    type: str
    title: str
    algorithms: frozenset[str]
    why: str
    since: tuple[tuple[Version, frozenset[str]], ...] = ()
    key_types: frozenset[str] | None = None
    max_keys: int | None = None
    rsa_bits: tuple[int, int] | None = None
    kid_pattern: str | None = None

    def __post_init__(self) -> None:
        unknown = {a for _, algs in self.since for a in algs} | self.algorithms
        if unknown - set(jose.ALGORITHMS):  # pragma: no cover - a typo in the table
            raise ValueError(f"{self.type}: unknown algorithms {sorted(unknown)}")

    @property
    def versioned(self) -> bool:
        return bool(self.since)

    def algorithms_for(self, version: str | None) -> frozenset[str]:
        """The console algorithms this consumer verifies at `version` (None: undeclared).

        Raises:
            ValueError: `version` is not a release number.
        """
        if version is None or not self.since:
            return self.algorithms
        wanted = parse_version(version)
        accepted: frozenset[str] = frozenset()
        for first, algs in self.since:
            if wanted >= first:
                accepted = algs
        return accepted

    def first_version_with(self, alg: str) -> Version | None:
        return next((first for first, algs in self.since if alg in algs), None)

    def name(self, version: str | None) -> str:
        if not self.versioned:
            return self.title
        return f"{self.title} {version}" if version else f"{self.title} (no version declared)"


_ALL: Final = frozenset(jose.ALGORITHMS)
_RSA: Final = frozenset(a for a in jose.ALGORITHMS if jose.algorithm(a).kty == "RSA")

_TABLE: Final[tuple[Capability, ...]] = (
    Capability("envoy", "Envoy jwt_authn", _ALL, "not in jwt_verify_lib"),
    Capability("istio", "Istio RequestAuthentication", _ALL,
               "not verified by the Envoy sidecar"),
    Capability(
        # Kong/kong kong/plugins/jwt/daos.lua, first release of each algorithm: docs/gateways.md §1.
        "kong", "Kong jwt plugin", frozenset({"RS256", "ES256"}),
        "not in the plugin's algorithm list",
        since=(
            ((0, 8, 0), frozenset({"RS256"})),
            ((0, 10, 0), frozenset({"RS256", "ES256"})),
            ((2, 4, 0), frozenset({"RS256", "ES256", "ES384"})),
            ((3, 7, 0), _ALL),
        ),
    ),
    Capability("nginx", "NGINX Plus auth_jwt", _ALL, "not supported by ngx_http_auth_jwt_module"),
    Capability("apim", "Azure APIM validate-jwt", _RSA,
               "APIM accepts RSA keys only (PS256, RS256, RS512)", key_types=frozenset({"RSA"})),
    Capability("auth0", "Auth0 client credentials", _RSA,
               "Auth0 accepts RSA keys only (RS256, RS384, PS256)", key_types=frozenset({"RSA"}),
               max_keys=2, rsa_bits=(2048, 4096), kid_pattern=r"[0-9a-zA-Z_-]{10,64}"),
    Capability("apache-openidc", "Apache mod_auth_openidc", _ALL - {"EdDSA"},
               "its JOSE library (cjose 0.6) has no EdDSA"),
    Capability("aws-apigw", "AWS API Gateway JWT authorizer", _ALL, ""),
    Capability("generic", "generic JWKS consumer", _ALL, ""),
)

CAPABILITIES: Final[Mapping[str, Capability]] = MappingProxyType({c.type: c for c in _TABLE})
CONSUMER_TYPES: Final[tuple[str, ...]] = tuple(CAPABILITIES)


def capability(consumer_type: str) -> Capability:
    """Raises TargetLintError for an unknown consumer type."""
    found = CAPABILITIES.get(consumer_type)
    if found is None:
        raise TargetLintError(f"unknown consumer type {consumer_type!r}",
                              f"use one of: {', '.join(CONSUMER_TYPES)}")
    return found


def accepted_algorithms(consumer_type: str, version: str | None = None) -> frozenset[str]:
    """Raises TargetLintError (unknown type) or ValueError (malformed version)."""
    return capability(consumer_type).algorithms_for(version)


def _algorithm_refusal(cap: Capability, version: str | None, alg: str,
                       what: str) -> TargetLintError:
    accepted = cap.algorithms_for(version)
    others = ", ".join(a for a in jose.ALGORITHMS if a in accepted) or "none of them"
    message = f"{cap.name(version)} cannot verify {alg} ({what})"
    first = cap.first_version_with(alg)
    if cap.versioned and first is not None:
        release = _show(first).removesuffix(".0")
        message += f": {cap.title.split()[0]} verifies {alg} from {_show(first)} on"
        declare = ("declare the consumer's version" if version is None
                   else "if it runs a later release, write its version")
        hint = (f'{declare} (version = "{release}" or later), or use an algorithm it verifies '
                f"now: {others}")
    else:
        if cap.why:
            message += f": {cap.why}"
        hint = (f"{cap.title} accepts {others}; remove this consumer from the keyset or "
                "change the keyset's algorithm")
    return TargetLintError(message, hint)


def check_keyset_algorithm(consumer_type: str, version: str | None, alg: str) -> None:
    """The policy-load check: the consumer verifies the keyset's algorithm (and key type).

    Raises:
        TargetLintError: naming the consumer, the algorithm and what would fit.
    """
    cap = capability(consumer_type)
    kty = jose.algorithm(alg).kty
    if cap.key_types is not None and kty not in cap.key_types:
        fitting = " or ".join(f'"{a}"' for a in jose.ALGORITHMS if a in cap.algorithms)
        raise TargetLintError(
            f"{cap.title} takes {'/'.join(sorted(cap.key_types))} keys only, but the keyset's "
            f"alg {alg} makes {kty} keys",
            f"use alg = {fitting} for this keyset, or give this consumer a keyset of its own")
    if alg not in cap.algorithms_for(version):
        raise _algorithm_refusal(cap, version, alg, "the keyset's alg")


def check_key_shapes(consumer_type: str, version: str | None,
                     keys: Sequence[KeyShape] | Iterable[KeyShape]) -> None:
    """The export check, on real keys or on the shapes a plan will publish: key types,
    algorithms, RSA sizes, kids and the number of keys.

    Raises:
        TargetLintError: the first limit broken, naming the key.
    """
    cap = capability(consumer_type)
    shapes = list(keys)
    accepted = cap.algorithms_for(version)
    for key in shapes:
        what = f"key {key.name}"
        if cap.key_types is not None and key.kty not in cap.key_types:
            raise TargetLintError(
                f"{cap.title} accepts {'/'.join(sorted(cap.key_types))} keys only: {what} is "
                f"{key.kty} ({key.alg})",
                "unpublish it first, or drop this consumer from the keyset")
        if key.alg not in accepted:
            raise _algorithm_refusal(cap, version, key.alg, what)
        if cap.rsa_bits is not None and key.rsa_bits is not None:
            low, high = cap.rsa_bits
            if not low <= key.rsa_bits <= high:
                raise TargetLintError(
                    f"{cap.title} needs RSA {low}–{high} bits, {what} has {key.rsa_bits}",
                    "set rsa_bits in the keyset's policy within that range")
        if cap.kid_pattern is not None and key.kid is not None \
                and not re.fullmatch(cap.kid_pattern, key.kid):
            raise TargetLintError(f"{cap.title}: kid {key.kid!r} does not fit its kid pattern",
                                  "kids are RFC 7638 thumbprints; report this")
    if cap.max_keys is not None and len(shapes) > cap.max_keys:
        names = ", ".join(k.name for k in shapes)
        raise TargetLintError(
            f"{cap.title}: at most {cap.max_keys} keys per application, the key set has "
            f"{len(shapes)} ({names})",
            "unpublish a retired key first, or drop this consumer from the keyset's consumers")

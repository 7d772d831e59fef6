"""policy.toml (DESIGN.md section 7): keysets, their timing policy and their consumers.

This module owns the policy dataclasses, the strict parser of policy.toml (`load_policy`) and the
canonical dictionary form stored in `policy.changed` ledger entries (`Policy.to_dict` /
`Policy.from_dict`, durations in integer seconds). Both parsers share one builder, so a policy
from the ledger is validated exactly as one from the file.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from console import consumers as consumer_limits
from console import jose
from console.config._durations import MAX_DURATION, format_duration_text, parse_duration
from console.config._toml import PathPart, Reader, describe, load_toml
from console.errors import ConfigError, TargetLintError
from console.jcs import canonicalize
from console.jsontypes import JsonMapping, JsonObject

__all__ = [
    "ALGORITHMS",
    "CONSUMER_TYPES",
    "CURVE_OF_ALG",
    "RSA_ALGORITHMS",
    "RSA_ONLY_CONSUMERS",
    "Consumer",
    "KeysetPolicy",
    "Policy",
    "c_max",
    "load_policy",
    "slowest_consumer",
]

ALGORITHMS: tuple[str, ...] = jose.ALGORITHMS
RSA_ALGORITHMS = frozenset(a for a in ALGORITHMS if jose.algorithm(a).kty == "RSA")
# The curve each non-RSA algorithm implies; a `curve` key, when given, must agree.
CURVE_OF_ALG: Mapping[str, str] = {
    a: curve for a in ALGORITHMS if (curve := jose.algorithm(a).curve) is not None}
# The consumer types and what each accepts live in one table, console/consumers.py.
CONSUMER_TYPES: tuple[str, ...] = consumer_limits.CONSUMER_TYPES
RSA_ONLY_CONSUMERS = frozenset(c.type for c in consumer_limits.CAPABILITIES.values()
                               if c.key_types == frozenset({"RSA"}))

_KEYSET_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,39})$")
_CONSUMER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,40}$")

_DEFAULTS: Mapping[str, str] = {
    "cryptoperiod": "90d",
    "clock_skew": "5m",
    "margin": "1d",
    "destruction_wait": "30d",
    "bundle_lifetime": "120d",
}


@dataclass(frozen=True, slots=True)
class Probe:
    """How to ask a consumer whether it accepts a token (DESIGN.md §7, evidence before
    activation): GET `url` with `Authorization: Bearer <canary>`; `status` means accepted.
    `ca_file` (PEM) is the CA the probe's TLS trusts, pinned by `ca_sha256` (else the system's)."""

    url: str
    status: int = 200
    ca_file: str | None = None
    ca_sha256: str | None = None

    def to_dict(self) -> JsonObject:
        out: JsonObject = {"url": self.url, "status": self.status}
        if self.ca_file is not None:
            out["ca_file"] = self.ca_file
            out["ca_sha256"] = self.ca_sha256
        return out


@dataclass(frozen=True, slots=True)
class Consumer:
    """A gateway or IdP that caches the keyset's JWKS."""

    name: str
    type: str
    cache_lifetime: timedelta
    install_delay: timedelta = timedelta(0)
    version: str | None = None
    """The consumer's release, where its limits depend on it (e.g. Kong's algorithms)."""
    probe: Probe | None = None
    jwks_uri: str | None = None
    """Where the consumer fetches the JWKS from: the next kid must be served there first."""

    @property
    def propagation(self) -> timedelta:
        """Worst-case time from publication until this consumer surely trusts a key."""
        return self.cache_lifetime + self.install_delay


@dataclass(frozen=True, slots=True)
class KeysetPolicy:
    """One issuer's signing slot (DESIGN.md §7)."""

    name: str
    issuer: str
    alg: str
    max_token_lifetime: timedelta
    rsa_bits: int | None = None
    cryptoperiod: timedelta = timedelta(days=90)
    clock_skew: timedelta = timedelta(minutes=5)
    margin: timedelta = timedelta(days=1)
    destruction_wait: timedelta = timedelta(days=30)
    bundle_lifetime: timedelta = timedelta(days=120)
    consumers: tuple[Consumer, ...] = ()

    @property
    def c_max(self) -> timedelta:
        return c_max(self)

    @property
    def curve(self) -> str | None:
        return CURVE_OF_ALG.get(self.alg)

    def to_dict(self) -> JsonObject:
        return {
            "issuer": self.issuer,
            "alg": self.alg,
            "rsa_bits": self.rsa_bits,
            "cryptoperiod": _secs(self.cryptoperiod),
            "max_token_lifetime": _secs(self.max_token_lifetime),
            "clock_skew": _secs(self.clock_skew),
            "margin": _secs(self.margin),
            "destruction_wait": _secs(self.destruction_wait),
            "bundle_lifetime": _secs(self.bundle_lifetime),
            "consumers": [_consumer_dict(c) for c in self.consumers],
        }


def _consumer_dict(c: Consumer) -> JsonObject:
    out: JsonObject = {"name": c.name, "type": c.type,
                           "cache_lifetime": _secs(c.cache_lifetime),
                           "install_delay": _secs(c.install_delay)}
    # Optional members appear only when set, so older canonical policies keep their digests.
    if c.version is not None:
        out["version"] = c.version
    if c.probe is not None:
        out["probe"] = c.probe.to_dict()
    if c.jwks_uri is not None:
        out["jwks_uri"] = c.jwks_uri
    return out


def _secs(delta: timedelta) -> int:
    return int(delta.total_seconds())


def c_max(keyset_policy: KeysetPolicy) -> timedelta:
    """The largest consumer propagation time (cache + install delay); 0 without consumers."""
    return max((c.propagation for c in keyset_policy.consumers), default=timedelta(0))


def slowest_consumer(keyset_policy: KeysetPolicy) -> Consumer | None:
    """The consumer whose propagation time is C_max (the first listed on a tie)."""
    best: Consumer | None = None
    for consumer in keyset_policy.consumers:
        if best is None or consumer.propagation > best.propagation:
            best = consumer
    return best


@dataclass(frozen=True, slots=True)
class Policy:
    """policy.toml: every keyset's policy, in file order."""

    keysets: tuple[KeysetPolicy, ...]

    def keyset(self, name: str) -> KeysetPolicy:
        """Raises ConfigError when the keyset is not in the policy."""
        for ks in self.keysets:
            if ks.name == name:
                return ks
        raise ConfigError(
            f"no keyset {name!r} in policy.toml",
            f"use one of: {', '.join(k.name for k in self.keysets)}, or add [keysets.{name}]",
        )

    def get(self, name: str) -> KeysetPolicy | None:
        return next((ks for ks in self.keysets if ks.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(ks.name for ks in self.keysets)

    def to_dict(self) -> JsonObject:
        """Canonical form for a `policy.changed` entry: integers only, durations in seconds."""
        return {"v": 1, "keysets": {ks.name: ks.to_dict() for ks in self.keysets}}

    def sha256(self) -> str:
        """Hex SHA-256 of the JCS bytes of `to_dict()`."""
        return hashlib.sha256(canonicalize(self.to_dict())).hexdigest()

    @classmethod
    def from_dict(cls, data: JsonMapping, *, where: str = "policy in ledger") -> Policy:
        """Rebuild (and re-validate) a policy from `to_dict()` output.

        Raises:
            ConfigError: the dictionary is not a valid canonical policy.
        """
        reader = Reader(where, None)
        top = reader.table(data, (), ("v", "keysets"), ("v", "keysets"))
        if top["v"] != 1:
            reader.fail(("v",), f"policy version {top['v']!r} is not supported",
                        "upgrade the console")

        def seconds(path: tuple[PathPart, ...], value: object) -> timedelta:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                reader.fail(path, "must be whole seconds ≥ 0", "store integers")
            if value > MAX_DURATION.total_seconds():
                reader.fail(path, "is longer than 100 years", "store a sane duration")
            return timedelta(seconds=value)

        return _build_policy(reader, top["keysets"], seconds, canonical=True)


_KEYSET_KEYS = (
    "issuer", "alg", "rsa_bits", "curve", "cryptoperiod", "max_token_lifetime", "clock_skew",
    "margin", "destruction_wait", "bundle_lifetime", "consumers",
)
_DURATION_KEYS = (
    "cryptoperiod", "max_token_lifetime", "clock_skew", "margin", "destruction_wait",
    "bundle_lifetime",
)


def _build_policy(
    reader: Reader,
    keysets: object,
    duration: Callable[[tuple[PathPart, ...], object], timedelta],
    *,
    canonical: bool,
) -> Policy:
    if not isinstance(keysets, Mapping) or not keysets:
        reader.fail(("keysets",), "the policy has no keysets",
                    "add a [keysets.<name>] table with issuer, alg and max_token_lifetime")
    return Policy(tuple(_build_keyset(reader, name, raw, duration, canonical=canonical)
                        for name, raw in keysets.items()))


def _build_keyset(
    reader: Reader,
    name: str,
    raw: object,
    duration: Callable[[tuple[PathPart, ...], object], timedelta],
    *,
    canonical: bool,
) -> KeysetPolicy:
    kp: tuple[PathPart, ...] = ("keysets", name)
    if not _KEYSET_NAME.fullmatch(name):  # match() lets "$" pass a trailing newline
        reader.fail(kp, f"keyset name {name!r} is not allowed",
                    "use 1-40 lowercase letters, digits and '-', starting with a letter or digit")
    allowed = tuple(k for k in _KEYSET_KEYS if not (canonical and k == "curve"))
    table = reader.table(raw, kp, allowed, ("issuer", "alg", "max_token_lifetime"))
    issuer = reader.string(table, kp, "issuer")
    if not issuer or issuer != issuer.strip():
        reader.fail((*kp, "issuer"), "issuer is empty or has surrounding spaces",
                    'write the exact iss value, e.g. issuer = "https://id.example.com"')

    alg = table["alg"]
    if not isinstance(alg, str):
        reader.fail((*kp, "alg"), "alg must be a string", 'write alg = "ES256"')
    allowed_algs = ", ".join(ALGORITHMS)
    if alg not in ALGORITHMS:
        upper = alg.upper()
        if upper == "NONE":
            why = "alg 'none' means unsigned tokens"
        elif upper.startswith("HS"):
            why = f"{alg} is a shared-secret (HMAC) algorithm: consumers could forge tokens"
        elif upper == "ES256K":
            why = "ES256K (secp256k1) is not accepted by the gateways this console targets"
        elif upper in ("RS384", "RS512", "PS384", "PS512", "ES512"):
            why = f"{alg} is not supported by every target gateway"
        else:
            why = f"alg {alg!r} is not a supported JWS algorithm"
        reader.fail((*kp, "alg"), why, f"use one of {allowed_algs}")

    if "curve" in table:
        curve = reader.string(table, kp, "curve")
        if alg in RSA_ALGORITHMS:
            reader.fail((*kp, "curve"), f"curve is meaningless for RSA alg {alg}",
                        "remove curve (use rsa_bits for RSA)")
        if curve in ("P-224", "secp224r1"):
            reader.fail((*kp, "curve"), "curve P-224 is too weak",
                        "use ES256 (P-256), ES384 (P-384) or EdDSA (Ed25519)")
        if curve.lower() in ("secp256k1", "p-256k"):
            reader.fail((*kp, "curve"), "curve secp256k1 is not accepted by target gateways",
                        "use ES256 (P-256), ES384 (P-384) or EdDSA (Ed25519)")
        if curve != CURVE_OF_ALG[alg]:
            reader.fail((*kp, "curve"), f"alg {alg} does not use curve {curve}",
                        f'write curve = "{CURVE_OF_ALG[alg]}" or remove curve')

    rsa_bits: int | None = None
    if alg in RSA_ALGORITHMS:
        rsa_bits = reader.integer(table, kp, "rsa_bits") if table.get("rsa_bits") is not None \
            else 3072
        if rsa_bits < 2048:
            reader.fail((*kp, "rsa_bits"), f"RSA-{rsa_bits} is too weak",
                        "write rsa_bits = 3072 (at least 2048)")
        if rsa_bits > 8192 or rsa_bits % 1024:
            reader.fail((*kp, "rsa_bits"), f"rsa_bits = {rsa_bits} is not a usual RSA size",
                        "write rsa_bits = 2048, 3072 or 4096")
    elif table.get("rsa_bits") is not None:
        reader.fail((*kp, "rsa_bits"), f"rsa_bits is given for the non-RSA alg {alg}",
                    "remove rsa_bits (the curve follows from alg)")

    times: dict[str, timedelta] = {}
    for key in _DURATION_KEYS:
        value = table.get(key, None if canonical else _DEFAULTS.get(key))
        if value is None:
            reader.fail(kp, f"{describe(kp)} has no {key!r}", f"add {key} = …")
        times[key] = duration((*kp, key), value)

    def at_least(key: str, low: timedelta, fix: str) -> None:
        if times[key] < low:
            reader.fail((*kp, key), f"{key} {format_duration_text(times[key])} is too short "
                        f"(minimum {format_duration_text(low)})", fix)

    at_least("cryptoperiod", timedelta(days=1), 'write e.g. cryptoperiod = "90d"')
    at_least("max_token_lifetime", timedelta(seconds=1), 'write e.g. max_token_lifetime = "1h"')
    at_least("margin", timedelta(hours=1), 'write margin = "1h" or more (e.g. "1d")')
    at_least("bundle_lifetime", timedelta(days=1), 'write e.g. bundle_lifetime = "120d"')

    consumers: list[Consumer] = []
    raw_consumers = table.get("consumers", [])
    if not isinstance(raw_consumers, list):
        reader.fail((*kp, "consumers"), "consumers must be [[keysets.<name>.consumers]] tables",
                    f'write [[keysets.{name}.consumers]] name = "…" type = "envoy" …')
    for index, raw_consumer in enumerate(raw_consumers):
        cp: tuple[PathPart, ...] = (*kp, "consumers", index)
        ct = reader.table(raw_consumer, cp, ("name", "type", "cache_lifetime", "install_delay",
                                             "version", "probe", "jwks_uri"),
                          ("name", "type", "cache_lifetime"))
        cname = reader.string(ct, cp, "name")
        if not _CONSUMER_NAME.fullmatch(cname):
            reader.fail((*cp, "name"), f"consumer name {cname!r} is not allowed",
                        "use 1-40 letters, digits, '.', '_' or '-'")
        if any(c.name == cname for c in consumers):
            reader.fail((*cp, "name"), f"consumer {cname!r} is listed twice in keyset {name}",
                        "give each consumer a distinct name")
        ctype = reader.string(ct, cp, "type")
        if ctype not in CONSUMER_TYPES:
            reader.fail((*cp, "type"), f"consumer type {ctype!r} is unknown",
                        f"use one of {', '.join(CONSUMER_TYPES)}")
        cache = duration((*cp, "cache_lifetime"), ct["cache_lifetime"])
        install = duration((*cp, "install_delay"), ct.get("install_delay", 0 if canonical
                                                          else "0s"))
        version = reader.string(ct, cp, "version") if "version" in ct else None
        if version is not None and not _VERSION.fullmatch(version):
            reader.fail((*cp, "version"), f"version {version!r} is not a release number",
                        'write version = "3.7" (major.minor[.patch])')
        # Limits are checked here, when the policy is loaded, never in the middle of a ceremony.
        try:
            consumer_limits.check_keyset_algorithm(ctype, version, alg)
        except TargetLintError as e:
            reader.fail((*cp, "version" if version is not None else "type"),
                        f"consumer {cname}: {e.message}", e.hint)
        jwks_uri = _https_url(reader, ct, cp, "jwks_uri") if "jwks_uri" in ct else None
        probe = _probe(reader, ct["probe"], (*cp, "probe")) if "probe" in ct else None
        consumers.append(Consumer(cname, ctype, cache, install, version, probe, jwks_uri))

    policy = KeysetPolicy(
        name=name, issuer=issuer, alg=alg, rsa_bits=rsa_bits, consumers=tuple(consumers),
        **times,
    )
    _check_key_counts(reader, kp, policy)
    if policy.cryptoperiod < policy.c_max + policy.margin:
        slow = slowest_consumer(policy)
        reader.fail((*kp, "cryptoperiod"),
                    f"cryptoperiod {format_duration_text(policy.cryptoperiod)} is shorter than the "
                    f"slowest consumer ({slow.name if slow else '-'}: "
                    f"{format_duration_text(policy.c_max)}) + margin "
                    f"{format_duration_text(policy.margin)}, so no successor could be activated "
                    "in time",
                    "lengthen cryptoperiod or shorten the consumer's cache/install delay")
    if policy.bundle_lifetime < policy.cryptoperiod:
        reader.fail((*kp, "bundle_lifetime"),
                    f"bundle_lifetime {format_duration_text(policy.bundle_lifetime)} is shorter "
                    f"than cryptoperiod {format_duration_text(policy.cryptoperiod)}: bundles "
                    "would expire between ceremonies",
                    "write bundle_lifetime = "
                    f'"{format_duration_text(policy.cryptoperiod + timedelta(days=30))}" or more')
    return policy


_VERSION = re.compile(r"^[0-9]{1,4}(\.[0-9]{1,4}){1,2}$")


def _check_key_counts(reader: Reader, kp: tuple[PathPart, ...], policy: KeysetPolicy) -> None:
    """A consumer that holds fewer keys than the rotation publishes at once would lose a key at
    the first rotation: refuse it now, with the numbers."""
    grace = format_duration_text(policy.max_token_lifetime + policy.clock_skew + policy.margin)
    for index, consumer in enumerate(policy.consumers):
        limit = consumer_limits.capability(consumer.type).max_keys
        if limit is None or limit >= consumer_limits.ROTATION_PEAK:
            continue
        title = consumer_limits.capability(consumer.type).title
        reader.fail(
            (*kp, "consumers", index, "type"),
            f"consumer {consumer.name}: {title} accept at most {limit} keys, but keyset "
            f"{policy.name}'s rotation keeps {consumer_limits.ROTATION_PEAK} published during "
            f"each grace period of {grace} (token lifetime + clock skew + margin): the active "
            "key, its successor and the retired key",
            f"remove {consumer.name} from keyset {policy.name}'s consumers: no rotation "
            f"schedule keeps {limit} keys or fewer published")


def _https_url(reader: Reader, table: JsonMapping, path: tuple[PathPart, ...],
               key: str) -> str:
    url = reader.string(table, path, key)
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "https" or not parsed.hostname or parsed.username or parsed.password:
        reader.fail((*path, key), f"{key} {url[:60]!r} is not an https URL",
                    f'write {key} = "https://gateway.example.com/…" (https only, no credentials)')
    return url


def _probe(reader: Reader, value: object, path: tuple[PathPart, ...]) -> Probe:
    table = reader.table(value, path, ("url", "status", "ca_file", "ca_sha256"), ("url",))
    url = _https_url(reader, table, path, "url")
    status = reader.integer(table, path, "status") if "status" in table else 200
    if not 100 <= status <= 599:
        reader.fail((*path, "status"), f"status {status} is not an HTTP status",
                    "write the status the gateway answers for an accepted token, e.g. 200")
    ca_file = reader.string(table, path, "ca_file") if "ca_file" in table else None
    ca_sha256 = reader.string(table, path, "ca_sha256") if "ca_sha256" in table else None
    if (ca_file is None) != (ca_sha256 is None):
        reader.fail(path, "ca_file and ca_sha256 go together",
                    "pin the CA file's SHA-256 (sha256sum FILE) beside it")
    if ca_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", ca_sha256):
        reader.fail((*path, "ca_sha256"), "ca_sha256 is not a lowercase hex SHA-256",
                    "write the output of sha256sum FILE")
    return Probe(url, status, ca_file, ca_sha256)


def load_policy(path: str | Path) -> Policy:
    """Read and validate policy.toml.

    Raises:
        ConfigError: unreadable, malformed or invalid; one line naming file and line.
    """
    path = Path(path)
    data, locator = load_toml(path)
    reader = Reader(str(path), locator)
    top = reader.table(data, (), ("keysets",))

    def text_duration(p: tuple[PathPart, ...], value: object) -> timedelta:
        key = str(p[-1])
        if not isinstance(value, str):
            reader.fail(p, f"{key} must be a duration string, not {type(value).__name__} "
                        f"{value!r}", f'write {key} = "90d" (units d, h, m, s; e.g. "1h30m")')
        try:
            return parse_duration(value)
        except ValueError:
            reader.fail(p, f"{key} {value!r} is not a duration",
                        f'write {key} = "90d" (whole numbers, units d h m s in that order, '
                        'e.g. "1h30m")')

    return _build_policy(reader, top.get("keysets"), text_duration, canonical=False)

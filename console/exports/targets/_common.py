"""What every target writer shares: the validated input, the consumer it is for, the rendered
file, YAML/JSON helpers.

Each target module exposes `lint_shape(shape, target)` (the limits that need only the keys'
shapes, so planning can run them before any key exists), `lint(inp, target)` (those plus what
needs the real key material) and `render(inp, target) -> list[TargetFile]`; `render` always
lints first, so no file for a target exists in memory unless the target accepts the key set.
Limits shared by every target (algorithms, key types, counts) come from `console.consumers`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from console.consumers import KeyShape, check_key_shapes
from console.errors import TargetLintError
from console.exports.jwks import build_jwks
from console.jsontypes import JsonMapping


class ConsumerLike(Protocol):
    """A declared consumer, as policy.toml gives it (`console.config.Consumer` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def version(self) -> str | None: ...

    @property
    def jwks_uri(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """The consumer a target file is made for: its type and what its limits depend on."""

    type: str
    version: str | None = None
    jwks_uri: str | None = None
    name: str | None = None

    @classmethod
    def of(cls, consumer: str | ConsumerLike | Target) -> Target:
        if isinstance(consumer, Target):
            return consumer
        if isinstance(consumer, str):
            return cls(consumer)
        return cls(consumer.type, consumer.version, consumer.jwks_uri, consumer.name)

    def check_keys(self, keys: Sequence[KeyShape]) -> None:
        """The table's limits (console.consumers) for this consumer. Raises TargetLintError."""
        check_key_shapes(self.type, self.version, keys)


@dataclass(frozen=True, slots=True)
class ShapeInput:
    """What planning knows of a bundle before its keys exist: names and key shapes."""

    keyset: str
    issuer: str
    keys: tuple[KeyShape, ...]

_ISSUER_CHARS = re.compile(r"^[\x21-\x7e]{1,512}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class TargetInput:
    """The published key set of one keyset and what consumers need besides the keys.

    Build it with `TargetInput.build`, which sanitises every key; `keys` are then public JWKs
    with kty, use, alg, kid and public members only.
    """

    keyset: str
    issuer: str
    keys: tuple[dict[str, str], ...]
    active_kid: str | None = None
    pkcs11_uri: str | None = None
    clock_skew_seconds: int = 60
    seq: int | None = None
    """The bundle's sequence number, for the README's commands (None outside a bundle)."""
    issued_at: datetime | None = None
    """The bundle's issue time: `signer.json` is valid from then on."""

    @classmethod
    def build(
        cls,
        *,
        keyset: str,
        issuer: str,
        keys: Sequence[JsonMapping],
        active_kid: str | None = None,
        pkcs11_uri: str | None = None,
        clock_skew_seconds: int = 60,
        seq: int | None = None,
        issued_at: datetime | None = None,
    ) -> TargetInput:
        """Raises: ExportError (a key is refused), TargetLintError (issuer or keyset name)."""
        clean = tuple(build_jwks(keys)["keys"])
        check_names(keyset, issuer)
        if not 0 <= clock_skew_seconds <= 300:
            raise TargetLintError("clock skew must be 0–300 s", "check the keyset's policy")
        if seq is not None and (type(seq) is not int or seq < 1):
            raise TargetLintError(f"bundle seq {seq!r} is not an integer ≥ 1", "report this")
        return cls(keyset, issuer, clean, active_kid, pkcs11_uri, clock_skew_seconds, seq,
                   issued_at)

    def shape(self) -> ShapeInput:
        return ShapeInput(self.keyset, self.issuer,
                          tuple(KeyShape.of_jwk(k) for k in self.keys))

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [dict(k) for k in self.keys]}

    def jwks_compact(self) -> str:
        return json.dumps(self.jwks(), separators=(",", ":"), ensure_ascii=True)

    def algs(self) -> list[str]:
        return sorted({k["alg"] for k in self.keys})


@dataclass(frozen=True, slots=True)
class TargetFile:
    """One rendered file of a bundle folder and the README line saying where it goes."""

    name: str
    data: bytes
    readme: str


def yaml_str(text: str) -> str:
    """A YAML double-quoted scalar. JSON string syntax is a subset of YAML's, and ASCII-only
    output avoids YAML 1.1 parsers' surrogate-pair handling."""
    return json.dumps(text, ensure_ascii=True)


def json_bytes(value: object) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def yaml_header(title: str, where: str) -> list[str]:
    return [
        f"# {title}",
        "# Generated by the Key Ceremony Console. Do not edit: re-export instead.",
        f"# Goes to: {where}",
    ]


def check_names(keyset: str, issuer: str) -> None:
    """The issuer and keyset name every target writes. Raises TargetLintError."""
    if not _ISSUER_CHARS.fullmatch(issuer):
        raise TargetLintError(
            f"issuer {issuer!r} is not 1–512 printable ASCII characters without spaces",
            "use the issuer URL exactly as tokens carry it in 'iss'",
        )
    if not _DNS_LABEL.fullmatch(keyset) or len(keyset) > 50:
        raise TargetLintError(
            f"keyset name {keyset!r} is not a lowercase DNS label of at most 50 characters",
            "gateway object names (Istio, Kong) are built from it",
        )

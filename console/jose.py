"""The one JOSE algorithm vocabulary: what each JWS `alg` means to every part of the console.

For each algorithm this module owns, in one frozen `JoseAlgorithm` row: the JWK key type and
curve, the JWS signature scheme and hash (RFC 7518 section 3.1), the size rules of its signatures,
and how the HSM layer makes them: the PKCS#11 key-generation mechanism and the signing mechanisms
in order of preference, each saying whether the host hashes first. The HSM, the exports, the
offline verifier and the lifecycle replay all read these rows instead of keeping tables of their
own, so that "ES384 means P-384, SHA-384 and 96-byte r||s" is written down once. The JWK
member names per key type (public members, thumbprint members) live here too, for the same
reason.

Two sets of algorithms:

* `ALGORITHMS`, the policy algorithms (DESIGN.md section 7): a keyset may use them, the console
  generates keys for them on the token and signs with them. `algorithm()` looks them up.
* `VERIFY_ONLY_ALGORITHMS`: the offline verifier can check these when its caller allows them
  (`verification_algorithm()`), but the console never makes keys or signatures for them, so
  they carry no PKCS#11 mechanisms. HS* and `none` are in neither set and never will be: a
  verifier holding only public keys has no business computing MACs (RFC 8725 section 2.1).

The signing mechanisms record what the tokens we support actually do (notes/libraries.md §1.4,
§2 and notes/gateways-and-signers.md):

* RS256: `CKM_SHA256_RSA_PKCS`, the token hashes.
* PS256: `CKM_SHA256_RSA_PKCS_PSS` (SHA-256, MGF1-SHA-256, salt 32); p11-kit 0.24's RPC layer
  cannot carry that mechanism's parameters and drops it, so the fallback is `CKM_RSA_PKCS_PSS`
  on a SHA-256 digest computed on the host: the same signature with the same key.
* ES256 / ES384: SoftHSM2 2.6 offers no `CKM_ECDSA_SHA256`/`SHA384`, so the host hashes and the
  token runs `CKM_ECDSA`, whose raw `r||s` output is exactly the JWS signature (RFC 7518 §3.4).
* EdDSA: `CKM_EDDSA` over the message (Ed25519 hashes internally), keys from
  `CKM_EC_EDWARDS_KEY_PAIR_GEN`.

Mechanisms are stored by their python-pkcs11 `Mechanism` member names; `console.hsm` maps them
to the library's values. This module imports only the standard library and `console.errors`:
the verifier, the config loader and the faces can use it without loading pkcs11 or cryptography.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, get_args

from console.errors import UnknownAlgorithmError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_RSA_BITS",
    "JWK_COMMON_MEMBERS",
    "JWK_KEY_MEMBERS",
    "MIN_RSA_BITS",
    "RSA_SIZES",
    "THUMBPRINT_MEMBERS",
    "VERIFIABLE_ALGORITHMS",
    "VERIFY_ONLY_ALGORITHMS",
    "Algorithm",
    "JoseAlgorithm",
    "KeyType",
    "SignMechanism",
    "SignatureScheme",
    "algorithm",
    "check_algorithm",
    "verification_algorithm",
]

Algorithm = Literal["RS256", "PS256", "ES256", "ES384", "EdDSA"]
"""A policy algorithm's name, as JWS headers, JWKs, policy files and the ledger spell it."""

KeyType = Literal["RSA", "EC", "OKP"]
"""JWK `kty` (RFC 7518 section 6.1, RFC 8037 section 2)."""

SignatureScheme = Literal["RSASSA-PKCS1-v1_5", "RSASSA-PSS", "ECDSA", "EdDSA"]
"""The digital signature scheme of RFC 7518 section 3.1 (and RFC 8037 section 3.1 for EdDSA)."""

JWK_COMMON_MEMBERS: Final[frozenset[str]] = frozenset({"kty", "kid", "use", "alg"})
"""The members a public JWK the console writes may carry besides its key-type members."""
JWK_KEY_MEMBERS: Final[Mapping[KeyType, frozenset[str]]] = MappingProxyType({
    "RSA": frozenset({"n", "e"}),
    "EC": frozenset({"crv", "x", "y"}),
    "OKP": frozenset({"crv", "x"}),
})
"""The public members of each key type (RFC 7518 section 6.2.1 and 6.3.1, RFC 8037 section 2)."""
THUMBPRINT_MEMBERS: Final[Mapping[KeyType, tuple[str, ...]]] = MappingProxyType({
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
})
"""The members an RFC 7638 thumbprint hashes, per key type, in their canonical order."""

RSA_SIZES: Final[tuple[int, ...]] = (2048, 3072, 4096)
"""The RSA modulus sizes the console generates on a token."""
MIN_RSA_BITS: Final = 2048
"""No RSA key below this is generated, exported or accepted (RFC 7518 section 3.3 minimum)."""
DEFAULT_RSA_BITS: Final = 3072
"""The RSA size of a keyset whose policy names none (DESIGN.md section 7)."""


@dataclass(frozen=True, slots=True)
class SignMechanism:
    """One way to make an algorithm's signature with a PKCS#11 token.

    `name` is the python-pkcs11 `Mechanism` member name (the PKCS#11 name without `CKM_`).
    With `host_hashes` the host computes the algorithm's digest and the token signs the digest;
    otherwise the token receives the whole signing input.
    """

    name: str
    host_hashes: bool

    def __post_init__(self) -> None:
        if not self.name or self.name.startswith("CKM_") or not self.name.isupper():
            raise ValueError(f"mechanism name {self.name!r} must be a bare upper-case name")

    @property
    def ckm(self) -> str:
        """The PKCS#11 spelling, e.g. `CKM_ECDSA`."""
        return f"CKM_{self.name}"


@dataclass(frozen=True, slots=True)
class JoseAlgorithm:
    """Everything the console needs to know about one JWS `alg`.

    `hash_name` is the `hashlib` name of the algorithm's hash and `digest_size` its length in
    bytes (also the PSS salt length, RFC 7518 section 3.5); both are None for EdDSA, whose
    Ed25519 signature hashes internally and leaves nothing to choose. `coordinate_size` is the
    byte length of one EC coordinate, and so of each of r and s. `keygen_mechanism` and
    `sign_mechanisms` are empty for algorithms the console only verifies.
    """

    name: str
    scheme: SignatureScheme
    kty: KeyType
    curve: str | None  # JWK `crv`; None for RSA
    hash_name: str | None
    digest_size: int | None
    coordinate_size: int | None
    keygen_mechanism: str | None
    sign_mechanisms: tuple[SignMechanism, ...]
    policy: bool  # a keyset may use it; the console generates keys and signs with it

    def __post_init__(self) -> None:
        # The invariants every table row must satisfy, so a typo cannot load.
        if (self.kty == "RSA") != (self.scheme in ("RSASSA-PKCS1-v1_5", "RSASSA-PSS")):
            raise ValueError(f"{self.name}: kty {self.kty} does not fit scheme {self.scheme}")
        if (self.curve is None) != (self.kty == "RSA"):
            raise ValueError(f"{self.name}: only RSA algorithms have no curve")
        if (self.coordinate_size is None) != (self.kty != "EC"):
            raise ValueError(f"{self.name}: only EC algorithms have a coordinate size")
        if (self.hash_name is None) != (self.digest_size is None) or (
            (self.hash_name is None) != (self.scheme == "EdDSA")
        ):
            raise ValueError(f"{self.name}: only EdDSA has no hash")
        if self.policy != bool(self.sign_mechanisms) or self.policy != bool(self.keygen_mechanism):
            raise ValueError(f"{self.name}: policy algorithms, and only they, have mechanisms")

    @property
    def is_rsa(self) -> bool:
        return self.kty == "RSA"

    @property
    def key_kind(self) -> str:
        """The kind of key pair it signs with: "RSA", or the curve ("P-256", "Ed25519", ...).

        Two algorithms of one kind can be served by the same key type (RS256 and PS256), never
        by the same key: each key is bound to one algorithm (RFC 8725 section 3.1).
        """
        return self.curve if self.curve is not None else "RSA"

    @property
    def fixed_signature_size(self) -> int | None:
        """The signature length in bytes, or None for RSA (it is the modulus length)."""
        if self.coordinate_size is not None:
            return 2 * self.coordinate_size  # raw r||s, never DER (RFC 7518 section 3.4)
        if self.scheme == "EdDSA":
            return 64  # Ed25519 (RFC 8032 section 5.1.6)
        return None

    def signature_size(self, *, rsa_modulus_bytes: int | None = None) -> int:
        """The exact length a valid signature has; RSA needs the key's modulus length."""
        fixed = self.fixed_signature_size
        if fixed is not None:
            return fixed
        if rsa_modulus_bytes is None or rsa_modulus_bytes <= 0:
            raise ValueError(f"the size of an {self.name} signature is the modulus length")
        return rsa_modulus_bytes


def _rsa(name: str, scheme: SignatureScheme, bits: int, *mechs: SignMechanism) -> JoseAlgorithm:
    return JoseAlgorithm(
        name=name, scheme=scheme, kty="RSA", curve=None, hash_name=f"sha{bits}",
        digest_size=bits // 8, coordinate_size=None,
        keygen_mechanism="RSA_PKCS_KEY_PAIR_GEN" if mechs else None,
        sign_mechanisms=mechs, policy=bool(mechs),
    )


def _ecdsa(name: str, curve: str, bits: int, coordinate: int, *, policy: bool) -> JoseAlgorithm:
    # No token we drive offers CKM_ECDSA_SHA256/384 (SoftHSM2 2.6), so the host always hashes.
    mechs = (SignMechanism("ECDSA", host_hashes=True),) if policy else ()
    return JoseAlgorithm(
        name=name, scheme="ECDSA", kty="EC", curve=curve, hash_name=f"sha{bits}",
        digest_size=bits // 8, coordinate_size=coordinate,
        keygen_mechanism="EC_KEY_PAIR_GEN" if policy else None,
        sign_mechanisms=mechs, policy=policy,
    )


_TABLE: Final[tuple[JoseAlgorithm, ...]] = (
    _rsa("RS256", "RSASSA-PKCS1-v1_5", 256, SignMechanism("SHA256_RSA_PKCS", host_hashes=False)),
    _rsa(
        "PS256", "RSASSA-PSS", 256,
        SignMechanism("SHA256_RSA_PKCS_PSS", host_hashes=False),
        # p11-kit 0.24 cannot forward the mechanism above; same signature, host-side digest.
        SignMechanism("RSA_PKCS_PSS", host_hashes=True),
    ),
    _ecdsa("ES256", "P-256", 256, 32, policy=True),
    _ecdsa("ES384", "P-384", 384, 48, policy=True),
    JoseAlgorithm(
        name="EdDSA", scheme="EdDSA", kty="OKP", curve="Ed25519", hash_name=None,
        digest_size=None, coordinate_size=None, keygen_mechanism="EC_EDWARDS_KEY_PAIR_GEN",
        sign_mechanisms=(SignMechanism("EDDSA", host_hashes=False),), policy=True,
    ),
    _rsa("RS384", "RSASSA-PKCS1-v1_5", 384),
    _rsa("RS512", "RSASSA-PKCS1-v1_5", 512),
    _rsa("PS384", "RSASSA-PSS", 384),
    _rsa("PS512", "RSASSA-PSS", 512),
    _ecdsa("ES512", "P-521", 512, 66, policy=False),
)
_BY_NAME: Final[dict[str, JoseAlgorithm]] = {row.name: row for row in _TABLE}

ALGORITHMS: Final[tuple[Algorithm, ...]] = ("RS256", "PS256", "ES256", "ES384", "EdDSA")
VERIFY_ONLY_ALGORITHMS: Final[tuple[str, ...]] = tuple(r.name for r in _TABLE if not r.policy)
VERIFIABLE_ALGORITHMS: Final[frozenset[str]] = frozenset(_BY_NAME)

# The Literal, ALGORITHMS and the table must name the same policy algorithms, in the same order.
_POLICY_ROWS: Final = tuple(r.name for r in _TABLE if r.policy)
if _POLICY_ROWS != ALGORITHMS or get_args(Algorithm) != ALGORITHMS:  # pragma: no cover
    raise AssertionError("jose: ALGORITHMS and the table's policy rows disagree")


def _refuse(alg: object, allowed: tuple[str, ...]) -> UnknownAlgorithmError:
    text = alg if isinstance(alg, str) else ""
    shown = repr(alg) if isinstance(alg, str) else f"a {type(alg).__name__}"
    return UnknownAlgorithmError(
        f"unknown JWS algorithm {shown}", f"use one of {', '.join(allowed)}", alg=text
    )


def check_algorithm(alg: object) -> Algorithm:
    """`alg` as a policy `Algorithm` (RS256, PS256, ES256, ES384, EdDSA).

    Raises:
        UnknownAlgorithmError: any other value, including the verify-only algorithms.
    """
    if isinstance(alg, str):
        for known in ALGORITHMS:
            if alg == known:
                return known
    raise _refuse(alg, ALGORITHMS)


def algorithm(alg: object) -> JoseAlgorithm:
    """The row of a policy algorithm: one the console generates keys for and signs with.

    Raises:
        UnknownAlgorithmError: not one of `ALGORITHMS` (verify-only algorithms included).
    """
    return _BY_NAME[check_algorithm(alg)]


def verification_algorithm(alg: object) -> JoseAlgorithm:
    """The row of any algorithm the offline verifier can check (policy or verify-only).

    Raises:
        UnknownAlgorithmError: not one of `VERIFIABLE_ALGORITHMS` (HS*, none, ...).
    """
    row = _BY_NAME.get(alg) if isinstance(alg, str) else None
    if row is None:
        raise _refuse(alg, (*ALGORITHMS, *VERIFY_ONLY_ALGORITHMS))
    return row

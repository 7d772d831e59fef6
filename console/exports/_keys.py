"""Public JWKs: member allowlists, key loading, algorithm binding, thumbprints.

Shared by the exporter (`jwks.py`) and the offline verifier (`verify_bundle.py`), so it imports
only `cryptography` and the console's own light modules: the algorithm and JWK vocabulary is
`console.jose`'s, base64url is `console.b64`'s. It raises `JwkProblem`, a private exception that
each caller turns into its own `ConsoleError` (ExportError or VerificationError): the same key
defect is an export refusal on one side and a failed check on the other.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from console import b64, jose
from console.errors import UnknownAlgorithmError
from console.jcs import canonicalize
from console.jsontypes import JsonMapping

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

POLICY_ALGS: frozenset[str] = frozenset(jose.ALGORITHMS)
"""The algorithms a keyset may use (DESIGN.md §7) and the only ones a bundle may carry."""

SUPPORTED_ALGS: frozenset[str] = jose.VERIFIABLE_ALGORITHMS
"""What the JWS core can verify when a caller allows it. HS* is never implemented: a verifier
that holds only public keys has no business computing MACs (RFC 8725 §2.1 key confusion)."""

PRIVATE_MEMBERS: frozenset[str] = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# console.jose names the hashes and curves; these are their pyca/cryptography implementations.
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}

MIN_RSA_BITS = jose.MIN_RSA_BITS
MAX_RSA_BITS = 8192  # bounds the work an attacker-supplied key can cause

# Small primes for the ROCA fingerprint (Nemec et al., CCS 2017): a vulnerable modulus is, for
# every prime of the generator's primorial, a power of 65537 modulo that prime. A random modulus
# passes all of these with negligible probability.
_ROCA_PRIMES = (
    11, 13, 17, 19, 37, 53, 61, 71, 73, 79, 97, 103, 107, 109, 127, 151, 157,
)  # fmt: skip


class JwkProblem(ValueError):
    """A JWK or signature input is malformed or breaks policy; `reason` is one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_field(text: object, what: str) -> bytes:
    """`console.b64.decode`, its refusal reported as a JwkProblem naming the member (`what`)."""
    try:
        return b64.decode(text)
    except b64.Base64urlError as e:
        raise JwkProblem(f"{what} is {e}") from e


def algorithm_of(alg: str) -> jose.JoseAlgorithm:
    """The `console.jose` row of a verifiable algorithm; JwkProblem for any other name."""
    try:
        return jose.verification_algorithm(alg)
    except UnknownAlgorithmError as e:
        raise JwkProblem(f"algorithm {alg!r} is not supported") from e


def hash_of(spec: jose.JoseAlgorithm) -> hashes.HashAlgorithm:
    """The pyca/cryptography hash of an RS*, PS* or ES* algorithm."""
    if spec.hash_name is None:
        raise JwkProblem(f"{spec.name} has no separate hash")
    return _HASHES[spec.hash_name]()


def _uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64.encode(value.to_bytes(size, "big"))


def _kty(value: object) -> jose.KeyType | None:
    for kty in jose.JWK_KEY_MEMBERS:
        if value == kty:
            return kty
    return None


def jwk_object(value: object) -> JsonMapping:
    """`value` as a JSON object, the first thing a JWK from outside must be."""
    if not isinstance(value, Mapping):
        raise JwkProblem("a JWK must be a JSON object")
    return value


def string_members(jwk: JsonMapping) -> dict[str, str]:
    """A copy of a JWK whose members are all strings (one `check_members` accepted without
    `key_ops`); a member of another type is refused, never dropped."""
    out: dict[str, str] = {}
    for name, value in jwk.items():
        if not isinstance(value, str):
            raise JwkProblem(f"member {name!r} is not a string")
        out[name] = value
    return out


def thumbprint_of(jwk: JsonMapping) -> str:
    """RFC 7638 SHA-256 thumbprint (base64url) over the required members of `jwk`."""
    kty = _kty(jwk.get("kty"))
    if kty is None:
        raise JwkProblem(f"unsupported kty {jwk.get('kty')!r}")
    required: dict[str, str] = {}
    for name in jose.THUMBPRINT_MEMBERS[kty]:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise JwkProblem(f"{kty} key has no string member {name!r}")
        required[name] = value
    return b64.encode(hashlib.sha256(canonicalize(required)).digest())


def check_members(value: object, *, allow_key_ops: bool = False) -> str:
    """Refuse symmetric keys, private and unknown members (allowlist); return the kty.

    `key_ops` is unknown to exports (they always carry `use`) but a verifier honours it when
    `allow_key_ops` is set: it must then list "verify".
    """
    jwk = jwk_object(value)
    if jwk.get("kty") == "oct":
        raise JwkProblem("symmetric keys (kty oct, HS*) are refused by policy: public keys only")
    private = sorted(PRIVATE_MEMBERS & set(jwk))
    if private:
        raise JwkProblem(f"private member {private[0]!r} present in a public key")
    kty = _kty(jwk.get("kty"))
    if kty is None:
        raise JwkProblem(f"unsupported kty {jwk.get('kty')!r} (allowed: EC, OKP, RSA)")
    extra = {"key_ops"} if allow_key_ops else set()
    unknown = sorted(set(jwk) - jose.JWK_COMMON_MEMBERS - jose.JWK_KEY_MEMBERS[kty] - extra)
    if unknown:
        raise JwkProblem(f"unknown member {unknown[0]!r} in a {kty} key")
    if "key_ops" in jwk:
        ops = jwk["key_ops"]
        if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
            raise JwkProblem("key_ops is not a list of strings")
        if len(set(ops)) != len(ops) or "verify" not in ops:
            raise JwkProblem(f"key_ops {ops} does not allow 'verify'")
    for name, value in jwk.items():
        if name != "key_ops" and not isinstance(value, str):
            raise JwkProblem(f"member {name!r} is not a string")
    return kty


@dataclass(frozen=True, slots=True)
class LoadedKey:
    """A validated public key and the one algorithm it is bound to."""

    alg: str
    kid: str | None
    key: PublicKey


def load_public_jwk(
    value: object, *, allowed_algs: frozenset[str], allow_key_ops: bool = False
) -> LoadedKey:
    """Validate a public JWK and build the key.

    Checks: member allowlist, `use` is "sig" when present, `alg` present, allowed and bound to
    the key type and size (RFC 8725 §3.1), RSA modulus ≥ 2048 bits with an odd exponent ≥ 3
    and no ROCA fingerprint, EC point on the named curve with full-length coordinates, Ed25519
    only for OKP. `kid`, when present, is returned but not compared here.
    """
    # An export checks each of its keys several times over (the bundle, every target file,
    # the bundle's own verification), and building the key (point on the curve, ROCA test)
    # is most of it: a JWK of string members is remembered by its exact members. Refusals
    # are never remembered; the result is frozen and its key object immutable.
    if isinstance(value, dict) and all(type(v) is str for v in value.values()):
        return _load_remembered(tuple(sorted(value.items())), allowed_algs, allow_key_ops)
    return _load(value, allowed_algs, allow_key_ops)


@functools.lru_cache(maxsize=1024)
def _load_remembered(members: tuple[tuple[str, str], ...], allowed_algs: frozenset[str],
                     allow_key_ops: bool) -> LoadedKey:
    return _load(dict(members), allowed_algs, allow_key_ops)


def _load(value: object, allowed_algs: frozenset[str], allow_key_ops: bool) -> LoadedKey:
    kty = check_members(value, allow_key_ops=allow_key_ops)
    jwk = jwk_object(value)
    if "use" in jwk and jwk["use"] != "sig":
        raise JwkProblem(f"key use is {jwk['use']!r}, not 'sig'")
    alg = jwk.get("alg")
    if alg is None:
        raise JwkProblem("key has no 'alg': each key must be bound to one algorithm")
    if not isinstance(alg, str) or alg not in allowed_algs:
        raise JwkProblem(
            f"key alg {alg!r} is not allowed (allowed: {', '.join(sorted(allowed_algs))})"
        )
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):  # check_members: every member a string
        raise JwkProblem("member 'kid' is not a string")
    spec = algorithm_of(alg)
    if spec.kty != kty:
        raise JwkProblem(f"alg {alg} cannot be used with an {kty} key")
    key: PublicKey
    if kty == "RSA":
        key = _rsa_key(jwk)
    elif kty == "EC":
        key = _ec_key(jwk, spec)
    else:
        if jwk.get("crv") != spec.curve:
            raise JwkProblem(f"OKP curve {jwk.get('crv')!r} is not {spec.curve}")
        raw = decode_field(jwk.get("x", ""), "x")
        if len(raw) != 32:
            raise JwkProblem("Ed25519 x is not 32 bytes")
        try:
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise JwkProblem("Ed25519 x is not a valid public key") from e
    return LoadedKey(alg=alg, kid=kid, key=key)


def _int_member(jwk: JsonMapping, name: str) -> int:
    raw = decode_field(jwk.get(name, ""), name)
    if not raw:
        raise JwkProblem(f"member {name!r} is empty")
    if raw[0] == 0:
        raise JwkProblem(f"member {name!r} has a leading zero octet")
    return int.from_bytes(raw, "big")


def _rsa_key(jwk: JsonMapping) -> rsa.RSAPublicKey:
    if "n" not in jwk or "e" not in jwk:
        raise JwkProblem("RSA key needs 'n' and 'e'")
    n = _int_member(jwk, "n")
    e = _int_member(jwk, "e")
    bits = n.bit_length()
    if bits < MIN_RSA_BITS:
        raise JwkProblem(f"RSA modulus has {bits} bits, fewer than {MIN_RSA_BITS}")
    if bits > MAX_RSA_BITS:
        raise JwkProblem(f"RSA modulus has {bits} bits, more than {MAX_RSA_BITS}")
    if e < 3 or e % 2 == 0 or e >= n:
        raise JwkProblem(f"RSA exponent {e} is not an odd number ≥ 3")
    if n % 2 == 0:
        raise JwkProblem("RSA modulus is even")
    if _roca_fingerprint(n):
        raise JwkProblem("RSA modulus has the ROCA fingerprint (CVE-2017-15361)")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as e_:
        raise JwkProblem("RSA key is invalid") from e_


def _roca_fingerprint(n: int) -> bool:
    for p in _ROCA_PRIMES:
        residue = n % p
        power, seen = 1, set()
        while power not in seen:
            seen.add(power)
            power = power * 65537 % p
        if residue not in seen:
            return False
    return True


def _ec_key(jwk: JsonMapping, spec: jose.JoseAlgorithm) -> ec.EllipticCurvePublicKey:
    crv, size = spec.curve, spec.coordinate_size
    assert crv is not None and size is not None  # jose: every EC row has both
    curve = _CURVES[crv]
    if jwk.get("crv") != crv:
        raise JwkProblem(f"alg {spec.name} needs curve {crv}, the key has {jwk.get('crv')!r}")
    x = decode_field(jwk.get("x", ""), "x")
    y = decode_field(jwk.get("y", ""), "y")
    if len(x) != size or len(y) != size:
        raise JwkProblem(f"EC coordinates must be {size} bytes each")
    try:
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()
        ).public_key()
    except ValueError as e:
        raise JwkProblem(f"EC point is not on {crv}") from e


def jwk_members(key: PublicKey) -> dict[str, str]:
    """The key-type members of a cryptography public key (no kid/use/alg)."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        for crv, curve in _CURVES.items():
            if isinstance(key.curve, curve):
                size = (key.curve.key_size + 7) // 8  # full-length coordinates (RFC 7518 §6.2.1.2)
                point = key.public_numbers()
                return {
                    "kty": "EC",
                    "crv": crv,
                    "x": _uint(point.x, size),
                    "y": _uint(point.y, size),
                }
        raise JwkProblem(f"EC curve {key.curve.name} is not supported")
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64.encode(raw)}
    raise JwkProblem(f"key type {type(key).__name__} is not supported")

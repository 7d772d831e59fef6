"""Offline verification of JWS compact tokens (RFC 7515) against public JWKs.

The core of the bundle verifier, usable alone: `verify_jws` checks one token against one key,
`verify_jws_with_jwks` against a JWK Set. The key decides the algorithm (RFC 8725 §3.1); `none`,
HS*, `crit` and unencoded payloads are refused; ES* signatures must be raw r||s. It imports
`cryptography` and the console's light modules only, and raises `VerificationError` naming the
failed check (never returns a bool).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from console.errors import EntryRejectedError, VerificationError
from console.exports._keys import (
    SUPPORTED_ALGS,
    JwkProblem,
    LoadedKey,
    algorithm_of,
    decode_field,
    hash_of,
    jwk_object,
    load_public_jwk,
)
from console.jcs import loads_strict
from console.jsontypes import JsonMapping, JsonObject

MAX_TOKEN_BYTES = 1 << 20
REFUSED_HINT = "do not install this bundle; ask the key officers for a fresh export"


def refused(check: str, detail: str) -> VerificationError:
    """The verifier's one error shape: `<check>: <detail>`, with the do-not-install hint."""
    return VerificationError(f"{check}: {detail}", REFUSED_HINT)


@dataclass(frozen=True, slots=True)
class VerifiedJws:
    """A JWS whose signature verified: the parsed header and the payload bytes."""

    alg: str
    kid: str | None
    header: JsonObject
    payload: bytes


@dataclass(frozen=True, slots=True)
class UnverifiedJws:
    header: JsonObject
    payload: bytes
    signature: bytes
    signing_input: bytes


def parse_unverified_compact(token: bytes | str) -> UnverifiedJws:
    """Split and decode a compact JWS without trusting any of it."""
    if isinstance(token, str):
        try:
            token = token.encode("ascii")
        except UnicodeEncodeError as e:
            raise refused("compact form", "token is not ASCII") from e
    if len(token) > MAX_TOKEN_BYTES:
        raise refused("compact form", f"token is larger than {MAX_TOKEN_BYTES} bytes")
    try:
        text = token.decode("ascii")
    except UnicodeDecodeError as e:
        raise refused("compact form", "token is not ASCII") from e
    parts = text.split(".")
    if len(parts) != 3:
        raise refused("compact form", f"expected 3 dot-separated parts, found {len(parts)}")
    try:
        header_raw = decode_field(parts[0], "header")
        payload = decode_field(parts[1], "payload")
        signature = decode_field(parts[2], "signature")
    except JwkProblem as e:
        raise refused("compact form", e.reason) from e
    if not header_raw:
        raise refused("compact form", "header is empty")
    try:
        header = loads_strict(header_raw.decode("utf-8"))
    except (UnicodeDecodeError, EntryRejectedError) as e:
        raise refused("header", f"not strict JSON ({e})") from e
    if not isinstance(header, dict):
        raise refused("header", "not a JSON object")
    return UnverifiedJws(
        header=header,
        payload=payload,
        signature=signature,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
    )


def _load_key(jwk: object, allowed: frozenset[str]) -> LoadedKey:
    try:
        return load_public_jwk(jwk, allowed_algs=allowed, allow_key_ops=True)
    except JwkProblem as e:
        raise refused("trusted key", e.reason) from e


def _check_signature(loaded: LoadedKey, alg: str, signing_input: bytes, signature: bytes) -> None:
    key = loaded.key
    try:
        spec = algorithm_of(alg)  # load_public_jwk bound the key to it: kty and curve match
    except JwkProblem as e:
        raise refused("alg", e.reason) from e
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if len(signature) != spec.signature_size(rsa_modulus_bytes=(key.key_size + 7) // 8):
                raise refused("signature", f"{alg} signature length does not match the modulus")
            pad: padding.AsymmetricPadding
            if spec.scheme == "RSASSA-PSS":
                digest = hash_of(spec)
                pad = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            else:
                pad = padding.PKCS1v15()
            key.verify(signature, signing_input, pad, hash_of(spec))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            size = spec.signature_size()
            if len(signature) != size:
                raise refused("signature", f"{alg} needs raw r||s of {size} bytes (not DER)")
            r = int.from_bytes(signature[: size // 2], "big")
            s = int.from_bytes(signature[size // 2 :], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hash_of(spec)))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            if len(signature) != spec.signature_size():
                raise refused("signature", "Ed25519 signature is not 64 bytes")
            key.verify(signature, signing_input)
        else:  # pragma: no cover - load_public_jwk builds only these three types
            raise refused("signature", "unsupported key type")
    except InvalidSignature as e:
        raise refused("signature", f"{alg} signature does not verify with the trusted key") from e


def verify_jws(
    token: bytes | str, jwk: JsonMapping, *, allowed_algs: Collection[str]
) -> VerifiedJws:
    """Verify a compact JWS against one public JWK.

    The key decides the algorithm: its `alg` must be allowed and equal to the header's `alg`
    (RFC 8725 §3.1). `crit` and unencoded payloads (RFC 7797) are refused. A header `kid`, when
    both sides carry one, must equal the key's. Only `SUPPORTED_ALGS` can be allowed.

    Raises:
        VerificationError: naming the failed check.
    """
    allowed = frozenset(allowed_algs)
    if not allowed:
        raise VerificationError("no algorithm is allowed", "pass the algorithms you accept")
    unsupported = sorted(allowed - SUPPORTED_ALGS)
    if unsupported:
        raise VerificationError(
            f"algorithm {unsupported[0]} cannot be verified here",
            f"allowed algorithms are a subset of {', '.join(sorted(SUPPORTED_ALGS))}",
        )
    parsed = parse_unverified_compact(token)
    header = parsed.header
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise refused("alg", "header has no string 'alg'")
    if alg.lower() == "none":
        raise refused("alg", "unsigned tokens (alg none) are never accepted")
    if alg.startswith("HS"):
        raise refused("alg", f"{alg} is refused by policy: public-key signatures only")
    if alg not in allowed:
        raise refused("alg", f"{alg} is not allowed (allowed: {', '.join(sorted(allowed))})")
    if "crit" in header:
        raise refused("header", "'crit' extensions are not supported")
    if "b64" in header:
        raise refused("header", "unencoded payloads (b64) are not supported")
    loaded = _load_key(jwk, allowed)
    if loaded.alg != alg:
        raise refused("alg", f"header alg {alg} differs from the key's alg {loaded.alg}")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise refused("kid", "header kid is not a string")
    if kid is not None and loaded.kid is not None and kid != loaded.kid:
        raise refused("kid", f"header kid {kid!r} is not the trusted key's kid {loaded.kid!r}")
    _check_signature(loaded, alg, parsed.signing_input, parsed.signature)
    return VerifiedJws(alg=alg, kid=kid, header=header, payload=parsed.payload)


def verify_jws_with_jwks(
    token: bytes | str, jwks: object, *, allowed_algs: Collection[str]
) -> VerifiedJws:
    """Verify a compact JWS against a JWK Set, choosing the key by the header's kid.

    The whole set is validated first: a set with a private, symmetric or malformed key, or
    with a duplicate kid, is refused even if another key would verify. Without a header kid,
    only a one-key set is usable.

    Raises:
        VerificationError: naming the failed check.
    """
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise refused("key set", "not a JWK Set with a non-empty 'keys' list")
    allowed = frozenset(allowed_algs) & SUPPORTED_ALGS
    kids: set[str] = set()
    jwks_read: list[JsonMapping] = []
    for value in keys:
        loaded = _load_key(value, allowed)
        jwks_read.append(jwk_object(value))  # _load_key accepted it: a JSON object
        if loaded.kid is not None:
            if loaded.kid in kids:
                raise refused("key set", f"duplicate kid {loaded.kid!r}")
            kids.add(loaded.kid)
    kid = parse_unverified_compact(token).header.get("kid")
    if kid is None:
        if len(keys) != 1:
            raise refused("kid", "token has no kid and the key set has several keys")
        return verify_jws(token, jwks_read[0], allowed_algs=allowed_algs)
    for jwk in jwks_read:
        if jwk.get("kid") == kid:
            return verify_jws(token, jwk, allowed_algs=allowed_algs)
    raise refused("kid", f"no key with kid {kid!r} in the key set")

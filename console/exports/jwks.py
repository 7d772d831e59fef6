"""Public JWKs and JWK Sets as the console exports them (DESIGN.md §9, RFC 7517/7638/8725).

Principle 1 lives here: a key leaves the console only as an allowlisted public JWK. Any
private or unknown member is refused, never dropped, because a key dict carrying `d` means
something upstream went wrong and a silent repair would hide it.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from console.errors import ExportError
from console.exports._keys import (
    POLICY_ALGS,
    JwkProblem,
    PublicKey,
    jwk_members,
    load_public_jwk,
    thumbprint_of,
)
from console.jsontypes import JsonMapping

__all__ = [
    "ALGORITHMS",
    "build_jwks",
    "jwk_to_pem",
    "public_jwk",
    "sanitize_public_jwk",
    "thumbprint",
]

ALGORITHMS: frozenset[str] = POLICY_ALGS

_HINT = "export only public keys read back from the HSM, with the keyset's algorithm"


def thumbprint(jwk: JsonMapping) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: the console's `kid`.

    Raises:
        ExportError: the key type is unsupported or a required member is missing.
    """
    try:
        return thumbprint_of(jwk)
    except JwkProblem as e:
        raise ExportError(f"cannot compute the thumbprint: {e.reason}", _HINT) from e


def public_jwk(public_key: PublicKey, alg: str) -> dict[str, str]:
    """The exported form of a public key: kty, use "sig", alg, kid (thumbprint), public members.

    Raises:
        ExportError: the algorithm is not allowed or does not fit the key.
    """
    try:
        members = jwk_members(public_key)
    except JwkProblem as e:
        raise ExportError(f"cannot export key: {e.reason}", _HINT) from e
    jwk = {**members, "use": "sig", "alg": alg, "kid": thumbprint(members)}
    return sanitize_public_jwk(jwk)


def sanitize_public_jwk(jwk: JsonMapping) -> dict[str, str]:
    """Check that `jwk` is a public signing key the console may export, and copy it.

    Refuses (never drops) private members (d, p, q, dp, dq, qi, oth, k) and unknown members;
    requires use "sig", an allowed alg bound to the key (RS/PS → RSA ≥ 2048 bits with odd
    e ≥ 3, ES256 → P-256, ES384 → P-384, EdDSA → Ed25519) and kid equal to the thumbprint.

    Raises:
        ExportError: naming the failed check.
    """
    try:
        loaded = load_public_jwk(jwk, allowed_algs=POLICY_ALGS)
        if jwk.get("use") != "sig":
            raise JwkProblem("key has no use 'sig'")
        expected = thumbprint_of(jwk)
    except JwkProblem as e:
        raise ExportError(f"key refused: {e.reason}", _HINT) from e
    if loaded.kid != expected:
        raise ExportError(
            f"key refused: kid {loaded.kid!r} is not its RFC 7638 thumbprint {expected}", _HINT
        )
    # Fixed member order keeps exported files stable and easy to read.
    order = ["kty", "use", "alg", "kid", "crv", "n", "e", "x", "y"]
    return {name: str(jwk[name]) for name in order if name in jwk}


def build_jwks(jwks: Sequence[JsonMapping]) -> dict[str, list[dict[str, str]]]:
    """A JWK Set `{"keys": [...]}` of sanitised keys, in the given order.

    Raises:
        ExportError: a key is refused, the set is empty, or two keys share a kid.
    """
    if not jwks:
        raise ExportError("the key set is empty", "a bundle needs at least the active key")
    keys: list[dict[str, str]] = []
    seen: set[str] = set()
    for jwk in jwks:
        clean = sanitize_public_jwk(jwk)
        if clean["kid"] in seen:
            raise ExportError(f"duplicate kid {clean['kid']} in the key set", _HINT)
        seen.add(clean["kid"])
        keys.append(clean)
    return {"keys": keys}


def jwk_to_pem(jwk: JsonMapping) -> str:
    """SubjectPublicKeyInfo PEM of a (sanitised) public JWK.

    Raises:
        ExportError: the key is refused.
    """
    clean = sanitize_public_jwk(jwk)
    try:
        key = load_public_jwk(clean, allowed_algs=POLICY_ALGS).key
    except JwkProblem as e:  # pragma: no cover - sanitize_public_jwk already loaded it
        raise ExportError(f"key refused: {e.reason}", _HINT) from e
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")

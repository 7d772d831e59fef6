"""The signed JWKS bundle (`jwks.jwt`): claims, canonical encoding and signing through a Protocol.

The signature comes from a `BundleSigner` (in production the HSM's bundle-signing key, wired by
the ceremony engine), so this module never imports the HSM layer. Every bundle is verified
with the signer's public JWK right after signing, as boulder's ceremony tool verifies every
key it makes: an HSM that returns DER instead of raw r||s fails here, not at a gateway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from console import b64
from console.clock import require_utc
from console.errors import ClockError, ExportError, VerificationError
from console.exports.jwks import build_jwks, sanitize_public_jwk
from console.exports.verify_bundle import BUNDLE_ALGS, BUNDLE_TYP, check_file_name, verify_jws
from console.jcs import canonicalize
from console.jsontypes import JsonMapping, JsonObject

__all__ = ["BundleSigner", "bundle_claims", "make_bundle"]


class BundleSigner(Protocol):
    """Signs bundles with the workspace's bundle-signing key (never a token-signing key).

    `alg` is one of RS256, PS256, ES256, ES384, EdDSA; `kid` is the RFC 7638 thumbprint of `jwk`,
    the signer's public JWK (with kid, use "sig" and alg).
    """

    @property
    def alg(self) -> str: ...

    @property
    def kid(self) -> str: ...

    @property
    def jwk(self) -> Mapping[str, str]: ...

    def sign(self, data: bytes) -> bytes:
        """Return the JWS signature of `data` (raw r||s for ES*, RFC 7518 §3.4).

        Raises:
            ConsoleError: the signer (e.g. the HSM) failed; the message says why.
        """
        ...


def bundle_claims(
    *,
    issuer: str,
    keyset: str,
    keys: Sequence[JsonMapping],
    seq: int,
    prev: str | None,
    now: datetime,
    lifetime: timedelta,
    files: Mapping[str, str] | None = None,
) -> JsonObject:
    """The claims of bundle `seq`: iss, sub (keyset), iat = nbf = now, exp, seq, prev, keys,
    files.

    `prev` is the hex SHA-256 of the previous `jwks.jwt`, or None for a keyset's first bundle.
    `files` maps every other file of the bundle's folder (relative name) to its hex SHA-256;
    files derived from the bundle (`MANIFEST.sha256`) are not in it (verify_bundle module).

    Raises:
        ExportError: a key is refused, or a value is out of range.
    """
    try:
        now = require_utc(now, "now")
    except ClockError as e:
        raise ExportError(e.message, e.hint) from e
    if not issuer or not keyset:
        raise ExportError("a bundle needs an issuer and a keyset name", "check policy.toml")
    if type(seq) is not int or seq < 1:
        raise ExportError(f"bundle seq {seq!r} is not an integer ≥ 1", "sequences start at 1")
    if prev is not None and (len(prev) != 64 or any(c not in "0123456789abcdef" for c in prev)):
        raise ExportError("prev is not a lowercase hex SHA-256", "pass bundle_digest(previous)")
    seconds = int(lifetime.total_seconds())
    if seconds <= 0:
        raise ExportError("bundle lifetime must be positive", "check the keyset's policy")
    signed: dict[str, str] = {}
    for name, digest in sorted((files or {}).items()):
        try:
            check_file_name(name)
        except ValueError as e:
            raise ExportError(f"bad file name in a bundle: {e}", "report this bug") from e
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ExportError(f"{name}: not a lowercase hex SHA-256", "report this bug")
        signed[name] = digest
    iat = int(now.timestamp())
    return {
        "iss": issuer,
        "sub": keyset,
        "iat": iat,
        "nbf": iat,
        "exp": iat + seconds,
        "seq": seq,
        "prev": prev,
        "keys": build_jwks(keys)["keys"],
        "files": signed,
    }


def make_bundle(
    signer: BundleSigner,
    *,
    issuer: str,
    keyset: str,
    keys: Sequence[JsonMapping],
    seq: int,
    prev: str | None,
    now: datetime,
    lifetime: timedelta,
    files: Mapping[str, str] | None = None,
) -> bytes:
    """Sign a bundle: JWS compact over JCS header {"alg","kid","typ":"jwk-set+jwt"} and JCS claims.

    Raises:
        ExportError: a key or the signer's JWK is refused, or the signature the signer
            returned does not verify with its own public key.
    """
    signer_jwk = sanitize_public_jwk(signer.jwk)
    if signer.alg not in BUNDLE_ALGS or signer.alg != signer_jwk["alg"]:
        raise ExportError(
            f"bundle signer alg {signer.alg!r} does not match its key ({signer_jwk['alg']})",
            "the bundle-signing key is bound to one algorithm",
        )
    if signer.kid != signer_jwk["kid"]:
        raise ExportError("bundle signer kid is not its key's thumbprint", "re-read the key")
    claims = bundle_claims(
        issuer=issuer, keyset=keyset, keys=keys, seq=seq, prev=prev, now=now, lifetime=lifetime,
        files=files,
    )
    header = {"alg": signer.alg, "kid": signer.kid, "typ": BUNDLE_TYP}
    signing_input = f"{b64.encode(canonicalize(header))}.{b64.encode(canonicalize(claims))}"
    signature = signer.sign(signing_input.encode("ascii"))
    token = f"{signing_input}.{b64.encode(signature)}".encode("ascii")
    try:
        verify_jws(token, signer_jwk, allowed_algs=BUNDLE_ALGS)
    except VerificationError as e:
        raise ExportError(
            f"the bundle signature does not verify ({e.message})",
            "check the bundle-signing key on the HSM; nothing was written",
        ) from e
    return token

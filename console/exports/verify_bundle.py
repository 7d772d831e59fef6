"""Offline verification of JWS compact tokens and of signed JWKS bundles (`jwks.jwt`).

An auditor or a deployment pipeline runs this with nothing but `cryptography` and the bundle
signer's public JWK: it imports no HSM, Textual or Rich code. Verification raises
`VerificationError` naming the first failed check and never returns a bool.

Bundle format (DESIGN.md §9): JWS compact, protected header exactly
`{"alg","kid","typ":"jwk-set+jwt"}`, claims exactly
`iss, sub, iat, nbf, exp, seq, prev, keys, files`:
- `seq` is an integer ≥ 1 that strictly increases from one bundle to the next;
- `prev` is the lowercase hex SHA-256 of the previous `jwks.jwt` file, or JSON `null` for the
  first bundle of a keyset (null rather than "" so that "no predecessor" cannot be confused
  with a digest);
- `nbf`/`exp` are checked against `now` with `CLOCK_LEEWAY` on both sides;
- `files` is `{relative name: lowercase hex SHA-256}` of every other file of the bundle's
  folder (`README.txt`, `keys/<kid>.pem`, …), so the signature authenticates the folder whole.
  It leaves out what is derived from `jwks.jwt` itself, which cannot be in its own signed list:
  `MANIFEST.sha256`, whose exact bytes `manifest()` recomputes from the list and the bundle's
  digest. Names are relative POSIX paths of plain parts (no `..`, no leading dot or slash).

Checks, in order (`verify_bundle`):
 1. compact form: three base64url parts, no padding, no whitespace, canonical encoding;
 2. header: a JSON object without duplicate keys, exactly alg/kid/typ, typ "jwk-set+jwt";
 3. alg in the allowlist (RS256 PS256 ES256 ES384 EdDSA; never none or HS*) and equal to the
    trusted key's alg (RFC 8725 §3.1), kid equal to the trusted key's kid (its thumbprint);
 4. signature (ES*: exactly the raw r||s of the curve's size, DER is refused);
 5. claims: types, nbf ≤ now + leeway, now − leeway < exp, iss/sub if expected;
 6. chain: with `previous`, seq > previous seq and prev == sha256(previous);
 7. every key: public members only, kid == thumbprint, alg allowlisted and bound to the key;
 8. the files claim: names and digests well formed.
`folder_differences` then compares a folder's files (hashed by the caller, who does the IO)
with the signed list and names every extra, missing or changed file.

This module owns the bundle's claims and their checks. The JWS core (steps 1–4) is `_jws.py`,
the folder's names, manifest and differences are `_folder.py`; their public names are
re-exported here, the one import path of the verifier.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from console.clock import require_utc
from console.errors import ClockError, EntryRejectedError, VerificationError
from console.exports._folder import (
    BUNDLE_FILE,
    DERIVED_FILES,
    HEX64,
    MANIFEST_FILE,
    MAX_FOLDER_FILES,
    check_file_name,
    expected_files,
    files_claim,
    folder_differences,
    manifest,
    require_folder,
)
from console.exports._jws import (
    MAX_TOKEN_BYTES,
    VerifiedJws,
    parse_unverified_compact,
    refused,
    verify_jws,
    verify_jws_with_jwks,
)
from console.exports._keys import (
    POLICY_ALGS,
    JwkProblem,
    jwk_object,
    load_public_jwk,
    string_members,
    thumbprint_of,
)
from console.jcs import loads_strict
from console.jsontypes import JsonMapping

__all__ = [
    "BUNDLE_ALGS",
    "BUNDLE_CLAIMS",
    "BUNDLE_FILE",
    "BUNDLE_TYP",
    "CLOCK_LEEWAY",
    "DERIVED_FILES",
    "MANIFEST_FILE",
    "MAX_FOLDER_FILES",
    "MAX_TOKEN_BYTES",
    "VerifiedBundle",
    "VerifiedJws",
    "bundle_digest",
    "check_file_name",
    "expected_files",
    "folder_differences",
    "manifest",
    "require_folder",
    "verify_bundle",
    "verify_jws",
    "verify_jws_with_jwks",
]

BUNDLE_TYP = "jwk-set+jwt"
BUNDLE_ALGS: frozenset[str] = POLICY_ALGS
BUNDLE_HEADER = frozenset({"alg", "kid", "typ"})
BUNDLE_CLAIMS = frozenset({"iss", "sub", "iat", "nbf", "exp", "seq", "prev", "keys", "files"})
LEGACY_CLAIMS = BUNDLE_CLAIMS - {"files"}
"""Bundles made before the `files` claim: their signature and keys still verify (so an older
workspace's history does not look forged), but their folder cannot be authenticated, and
`require_folder` says so."""
CLOCK_LEEWAY = timedelta(seconds=60)
"""Tolerance on nbf and exp: the export machine and the verifying machine are different clocks
(Envoy's default skew is 60 s too). Bundles live for days, so a minute changes nothing else."""


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle that passed every check of `verify_bundle`."""

    issuer: str
    keyset: str
    seq: int
    prev: str | None
    issued_at: datetime
    not_before: datetime
    expires_at: datetime
    keys: tuple[dict[str, str], ...]
    signer_kid: str
    sha256: str
    files: tuple[tuple[str, str], ...] | None = ()
    """The signed list: (relative name, hex SHA-256), sorted by name; None for a bundle made
    before bundles signed their folder (see LEGACY_CLAIMS)."""
    previous_kids: tuple[str, ...] | None = None
    """With `previous`: the kids of the previous bundle (its bytes are bound by `prev`)."""

    @property
    def added(self) -> tuple[str, ...]:
        """Kids in this bundle and not in the previous one (empty without a previous)."""
        before = set(self.previous_kids or ())
        return tuple(k["kid"] for k in self.keys if self.previous_kids is not None
                     and k["kid"] not in before)

    @property
    def removed(self) -> tuple[str, ...]:
        now = {k["kid"] for k in self.keys}
        return tuple(k for k in self.previous_kids or () if k not in now)


def bundle_digest(token: bytes) -> str:
    """Hex SHA-256 of a `jwks.jwt` file: the value the next bundle's `prev` carries."""
    return hashlib.sha256(token).hexdigest()


def _claim_int(claims: JsonMapping, name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise refused("claims", f"{name!r} is not an integer")
    return value


def _claim_str(claims: JsonMapping, name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise refused("claims", f"{name!r} is not a non-empty string")
    return value


def _time(seconds: int, name: str) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise refused("claims", f"{name!r} is out of range") from e


def _unverified_previous(previous: bytes) -> tuple[int, str | None, tuple[str, ...]]:
    """The previous bundle's seq, prev and kids, read without its signature: the verified
    `prev` of the new bundle commits to these bytes, and nothing else is trusted from them."""
    try:
        parsed = parse_unverified_compact(previous)
        claims = loads_strict(parsed.payload.decode("utf-8"))
    except (VerificationError, UnicodeDecodeError, EntryRejectedError) as e:
        raise refused("previous bundle", "the previous file is not a bundle") from e
    if not isinstance(claims, dict):
        raise refused("previous bundle", "the previous file is not a bundle")
    keys = claims.get("keys")
    kids = tuple(str(k.get("kid")) for k in keys if isinstance(k, dict)) \
        if isinstance(keys, list) else ()
    prev = claims.get("prev")
    return _claim_int(claims, "seq"), prev if isinstance(prev, str) else None, kids


def verify_bundle(
    token: bytes,
    *,
    trust: JsonMapping,
    previous: bytes | None = None,
    now: datetime,
    keyset: str | None = None,
    issuer: str | None = None,
) -> VerifiedBundle:
    """Verify a signed JWKS bundle against the pinned bundle-signing key (checks in the
    module docstring). `previous`, when given, is the exact bytes of the previous `jwks.jwt`:
    its seq is read without re-checking its signature, because the verified `prev` of this
    bundle already commits to its bytes. `keyset`/`issuer`, when given, must match sub/iss.

    Raises:
        VerificationError: naming the failed check.
    """
    try:
        now = require_utc(now, "now")
    except ClockError as e:
        raise VerificationError(e.message, e.hint) from e
    try:
        trust_kid = thumbprint_of(trust)
    except JwkProblem as e:
        raise refused("trusted key", e.reason) from e
    if trust.get("kid") != trust_kid:
        raise refused("trusted key", "its kid is not its RFC 7638 thumbprint")
    parsed = parse_unverified_compact(token)
    header = parsed.header
    if header.get("typ") != BUNDLE_TYP:
        raise refused("typ", f"header typ is {header.get('typ')!r}, expected {BUNDLE_TYP!r}")
    if set(header) != BUNDLE_HEADER:
        extra = sorted(set(header) ^ BUNDLE_HEADER)
        raise refused("header", f"unexpected or missing header parameter {extra[0]!r}")
    if header.get("kid") != trust_kid:
        raise refused("kid", f"bundle kid {header.get('kid')!r} is not the trusted key {trust_kid}")
    verified = verify_jws(token, trust, allowed_algs=BUNDLE_ALGS)

    try:
        claims = loads_strict(verified.payload.decode("utf-8"))
    except (UnicodeDecodeError, EntryRejectedError) as e:
        raise refused("claims", f"payload is not strict JSON ({e})") from e
    if not isinstance(claims, dict):
        raise refused("claims", "payload is not a JSON object")
    if set(claims) not in (BUNDLE_CLAIMS, LEGACY_CLAIMS):
        extra = sorted(set(claims) ^ BUNDLE_CLAIMS)
        raise refused("claims", f"unexpected or missing claim {extra[0]!r}")
    iss = _claim_str(claims, "iss")
    sub = _claim_str(claims, "sub")
    if issuer is not None and iss != issuer:
        raise refused("iss", f"issuer {iss!r} is not the expected {issuer!r}")
    if keyset is not None and sub != keyset:
        raise refused("sub", f"keyset {sub!r} is not the expected {keyset!r}")
    iat, nbf, exp = (_claim_int(claims, n) for n in ("iat", "nbf", "exp"))
    if not iat <= nbf < exp:
        raise refused("times", "expected iat ≤ nbf < exp")
    not_before, expires_at = _time(nbf, "nbf"), _time(exp, "exp")
    if now + CLOCK_LEEWAY < not_before:
        raise refused("nbf", f"bundle is not valid before {not_before:%Y-%m-%dT%H:%M:%SZ}")
    if now - CLOCK_LEEWAY >= expires_at:
        raise refused("exp", f"bundle expired at {expires_at:%Y-%m-%dT%H:%M:%SZ}")
    seq = _claim_int(claims, "seq")
    if seq < 1:
        raise refused("seq", "seq must be ≥ 1")
    prev = claims["prev"]
    if prev is not None and (not isinstance(prev, str) or not HEX64.fullmatch(prev)):
        raise refused("prev", "prev is neither null nor a lowercase hex SHA-256")
    previous_kids: tuple[str, ...] | None = None
    if previous is not None:
        previous_seq, _, previous_kids = _unverified_previous(previous)
        if seq <= previous_seq:
            raise refused(
                "seq", f"seq {seq} does not increase on the previous bundle's {previous_seq}"
            )
        expected_prev = bundle_digest(previous)
        if prev != expected_prev:
            if previous_seq < seq - 1:
                # Not forged: the operator skipped a bundle. Say which one to install first.
                raise VerificationError(
                    f"bundle #{seq} follows #{seq - 1} (prev {str(prev)[:16]}…), but your "
                    f"previous is #{previous_seq}: fetch and install #{seq - 1} first",
                    f"then verify #{seq} with --previous <bundle #{seq - 1}'s jwks.jwt>")
            raise refused("prev",
                          f"prev {prev} is not the previous bundle's SHA-256 {expected_prev}")
    files = files_claim(claims["files"]) if "files" in claims else None

    keys = claims["keys"]
    if not isinstance(keys, list) or not keys:
        raise refused("keys", "keys is not a non-empty list")
    seen: set[str] = set()
    clean: list[dict[str, str]] = []
    for index, value in enumerate(keys):
        try:
            loaded = load_public_jwk(value, allowed_algs=BUNDLE_ALGS)
            jwk = string_members(jwk_object(value))  # loaded: an object of strings
            expected_kid = thumbprint_of(jwk)
        except JwkProblem as e:
            raise refused("keys", f"key #{index}: {e.reason}") from e
        if jwk.get("use") != "sig":
            raise refused("keys", f"key #{index}: use is not 'sig'")
        if loaded.kid != expected_kid:
            raise refused("keys", f"key #{index}: kid {loaded.kid!r} is not its thumbprint")
        if expected_kid in seen:
            raise refused("keys", f"key #{index}: duplicate kid {expected_kid}")
        seen.add(expected_kid)
        clean.append(jwk)
    return VerifiedBundle(
        issuer=iss,
        keyset=sub,
        seq=seq,
        prev=prev,
        issued_at=_time(iat, "iat"),
        not_before=not_before,
        expires_at=expires_at,
        keys=tuple(clean),
        signer_kid=trust_kid,
        sha256=bundle_digest(token),
        files=files,
        previous_kids=previous_kids,
    )

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
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from console.clock import require_utc
from console.errors import (
    ClockError,
    EntryRejectedError,
    FolderMismatchError,
    VerificationError,
)
from console.exports._keys import (
    POLICY_ALGS,
    SUPPORTED_ALGS,
    JwkProblem,
    LoadedKey,
    algorithm_of,
    decode_field,
    hash_of,
    load_public_jwk,
    thumbprint_of,
)
from console.jcs import loads_strict

__all__ = [
    "BUNDLE_ALGS",
    "BUNDLE_CLAIMS",
    "BUNDLE_FILE",
    "BUNDLE_TYP",
    "CLOCK_LEEWAY",
    "MANIFEST_FILE",
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
BUNDLE_FILE = "jwks.jwt"
MANIFEST_FILE = "MANIFEST.sha256"
DERIVED_FILES = frozenset({BUNDLE_FILE, MANIFEST_FILE})
"""The files of a bundle folder that the `files` claim cannot list: the bundle itself and the
manifest made from it."""
MAX_FOLDER_FILES = 10_000
CLOCK_LEEWAY = timedelta(seconds=60)
"""Tolerance on nbf and exp: the export machine and the verifying machine are different clocks
(Envoy's default skew is 60 s too). Bundles live for days, so a minute changes nothing else."""

MAX_TOKEN_BYTES = 1 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Base64url kids may start with "-"; "." and ".." are refused by requiring a non-dot first.
_NAME_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$")
_HINT = "do not install this bundle; ask the key officers for a fresh export"
_NAMED_IN_LINE = 8


@dataclass(frozen=True, slots=True)
class VerifiedJws:
    """A JWS whose signature verified: the parsed header and the payload bytes."""

    alg: str
    kid: str | None
    header: dict[str, Any]
    payload: bytes


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


def _fail(check: str, detail: str) -> VerificationError:
    return VerificationError(f"{check}: {detail}", _HINT)


def check_file_name(name: object) -> str:
    """A bundle folder's file name: a relative POSIX path of plain parts (no '..', no leading
    dot or slash, no backslash), never one of the derived files.

    Raises:
        ValueError: naming what is wrong.
    """
    if not isinstance(name, str) or not 0 < len(name) <= 512:
        raise ValueError("a file name is not a string of 1–512 characters")
    parts = name.split("/")
    if any(not _NAME_PART.fullmatch(part) for part in parts):
        raise ValueError(f"{name[:80]!r} is not a plain relative path")
    if name in DERIVED_FILES:
        raise ValueError(f"{name} is derived from the bundle and cannot be in its list")
    return name


def manifest(hashes: Mapping[str, str]) -> bytes:
    """`sha256sum` text (`<hex>  <name>`), sorted by name, so `sha256sum -c` checks it."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(hashes.items())).encode()


def expected_files(verified: VerifiedBundle) -> dict[str, str]:
    """Every file the bundle's folder must hold and its SHA-256: the signed list, `jwks.jwt`,
    and `MANIFEST.sha256` as `manifest()` makes it from those two."""
    listed = {**dict(verified.files or ()), BUNDLE_FILE: verified.sha256}
    return {**listed, MANIFEST_FILE: hashlib.sha256(manifest(listed)).hexdigest()}


def folder_differences(verified: VerifiedBundle, found: Mapping[str, str],
                       unusable: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Each difference between a folder and what the bundle signs, as (file name, phrase):
    first the `unusable` entries (name → why: a symbolic link, not a regular file), which are
    never read, then extra, missing or changed files, each group by name, and a wrong
    `MANIFEST.sha256` last (it is usually the consequence of the others, so the first
    difference named is the one that matters). Empty when the folder is exact.

    `found` maps each regular file's relative name to its hex SHA-256.
    """
    expected = expected_files(verified)
    problems: dict[str, str] = {}
    for name, why in (unusable or {}).items():
        problems[name] = f"{name} {why}"
    for name, digest in found.items():
        if name in problems:
            continue
        if name not in expected:
            problems[name] = f"{name} is not in the signed list"
        elif digest != expected[name]:
            problems[name] = (f"{MANIFEST_FILE} is not the manifest of the signed list"
                              if name == MANIFEST_FILE else f"{name} differs from the signed list")
    for name in expected:
        if name not in found and name not in problems:
            problems[name] = f"{name} is missing"
    def rank(name: str) -> tuple[int, str]:
        return (0 if name in (unusable or {}) else 2 if name == MANIFEST_FILE else 1, name)

    return [(name, problems[name]) for name in sorted(problems, key=rank)]


def require_folder(verified: VerifiedBundle, found: Mapping[str, str],
                   unusable: Mapping[str, str] | None = None) -> None:
    """Raises FolderMismatchError: the message names the first difference and the other
    files (up to `_NAMED_IN_LINE` of them, so the line stays one line), `problems` all of them."""
    if verified.files is None:
        raise VerificationError(
            f"folder: bundle #{verified.seq} signs no file list (it was made before bundles "
            "signed their folder), so its files cannot be checked",
            "ask the key officers for a fresh export (the export-only ceremony)")
    differences = folder_differences(verified, found, unusable)
    if differences:
        others = [name for name, _ in differences[1:]]
        shown = ", ".join(others[:_NAMED_IN_LINE]) + (", …" if len(others) > _NAMED_IN_LINE
                                                       else "")
        more = f" (and {len(others)} more: {shown})" if others else ""
        raise FolderMismatchError(f"folder: {differences[0][1]}{more}", _HINT,
                                  tuple(phrase for _, phrase in differences))


@dataclass(frozen=True, slots=True)
class _Unverified:
    header: dict[str, Any]
    payload: bytes
    signature: bytes
    signing_input: bytes


def _parse_unverified_compact(token: bytes | str) -> _Unverified:
    """Split and decode a compact JWS without trusting any of it."""
    if isinstance(token, str):
        try:
            token = token.encode("ascii")
        except UnicodeEncodeError as e:
            raise _fail("compact form", "token is not ASCII") from e
    if len(token) > MAX_TOKEN_BYTES:
        raise _fail("compact form", f"token is larger than {MAX_TOKEN_BYTES} bytes")
    try:
        text = token.decode("ascii")
    except UnicodeDecodeError as e:
        raise _fail("compact form", "token is not ASCII") from e
    parts = text.split(".")
    if len(parts) != 3:
        raise _fail("compact form", f"expected 3 dot-separated parts, found {len(parts)}")
    try:
        header_raw = decode_field(parts[0], "header")
        payload = decode_field(parts[1], "payload")
        signature = decode_field(parts[2], "signature")
    except JwkProblem as e:
        raise _fail("compact form", e.reason) from e
    if not header_raw:
        raise _fail("compact form", "header is empty")
    try:
        header = loads_strict(header_raw.decode("utf-8"))
    except (UnicodeDecodeError, EntryRejectedError) as e:
        raise _fail("header", f"not strict JSON ({e})") from e
    if not isinstance(header, dict):
        raise _fail("header", "not a JSON object")
    return _Unverified(
        header=header,
        payload=payload,
        signature=signature,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
    )


def _load_key(jwk: Mapping[str, Any], allowed: frozenset[str]) -> LoadedKey:
    try:
        return load_public_jwk(jwk, allowed_algs=allowed, allow_key_ops=True)
    except JwkProblem as e:
        raise _fail("trusted key", e.reason) from e


def _check_signature(loaded: LoadedKey, alg: str, signing_input: bytes, signature: bytes) -> None:
    key = loaded.key
    try:
        spec = algorithm_of(alg)  # load_public_jwk bound the key to it: kty and curve match
    except JwkProblem as e:
        raise _fail("alg", e.reason) from e
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if len(signature) != spec.signature_size(rsa_modulus_bytes=(key.key_size + 7) // 8):
                raise _fail("signature", f"{alg} signature length does not match the modulus")
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
                raise _fail("signature", f"{alg} needs raw r||s of {size} bytes (not DER)")
            r = int.from_bytes(signature[: size // 2], "big")
            s = int.from_bytes(signature[size // 2 :], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hash_of(spec)))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            if len(signature) != spec.signature_size():
                raise _fail("signature", "Ed25519 signature is not 64 bytes")
            key.verify(signature, signing_input)
        else:  # pragma: no cover - load_public_jwk builds only these three types
            raise _fail("signature", "unsupported key type")
    except InvalidSignature as e:
        raise _fail("signature", f"{alg} signature does not verify with the trusted key") from e


def verify_jws(
    token: bytes | str, jwk: Mapping[str, Any], *, allowed_algs: Collection[str]
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
    parsed = _parse_unverified_compact(token)
    header = parsed.header
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise _fail("alg", "header has no string 'alg'")
    if alg.lower() == "none":
        raise _fail("alg", "unsigned tokens (alg none) are never accepted")
    if alg.startswith("HS"):
        raise _fail("alg", f"{alg} is refused by policy: public-key signatures only")
    if alg not in allowed:
        raise _fail("alg", f"{alg} is not allowed (allowed: {', '.join(sorted(allowed))})")
    if "crit" in header:
        raise _fail("header", "'crit' extensions are not supported")
    if "b64" in header:
        raise _fail("header", "unencoded payloads (b64) are not supported")
    loaded = _load_key(jwk, allowed)
    if loaded.alg != alg:
        raise _fail("alg", f"header alg {alg} differs from the key's alg {loaded.alg}")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _fail("kid", "header kid is not a string")
    if kid is not None and loaded.kid is not None and kid != loaded.kid:
        raise _fail("kid", f"header kid {kid!r} is not the trusted key's kid {loaded.kid!r}")
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
        raise _fail("key set", "not a JWK Set with a non-empty 'keys' list")
    allowed = frozenset(allowed_algs) & SUPPORTED_ALGS
    kids: set[str] = set()
    for jwk in keys:
        loaded = _load_key(jwk, allowed)
        if loaded.kid is not None:
            if loaded.kid in kids:
                raise _fail("key set", f"duplicate kid {loaded.kid!r}")
            kids.add(loaded.kid)
    kid = _parse_unverified_compact(token).header.get("kid")
    if kid is None:
        if len(keys) != 1:
            raise _fail("kid", "token has no kid and the key set has several keys")
        return verify_jws(token, keys[0], allowed_algs=allowed_algs)
    for jwk in keys:
        if jwk.get("kid") == kid:
            return verify_jws(token, jwk, allowed_algs=allowed_algs)
    raise _fail("kid", f"no key with kid {kid!r} in the key set")


def _claim_int(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail("claims", f"{name!r} is not an integer")
    return value


def _claim_str(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise _fail("claims", f"{name!r} is not a non-empty string")
    return value


def _time(seconds: int, name: str) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise _fail("claims", f"{name!r} is out of range") from e


def _unverified_previous(previous: bytes) -> tuple[int, str | None, tuple[str, ...]]:
    """The previous bundle's seq, prev and kids, read without its signature: the verified
    `prev` of the new bundle commits to these bytes, and nothing else is trusted from them."""
    try:
        parsed = _parse_unverified_compact(previous)
        claims = loads_strict(parsed.payload.decode("utf-8"))
    except (VerificationError, UnicodeDecodeError, EntryRejectedError) as e:
        raise _fail("previous bundle", "the previous file is not a bundle") from e
    if not isinstance(claims, dict):
        raise _fail("previous bundle", "the previous file is not a bundle")
    keys = claims.get("keys")
    kids = tuple(str(k.get("kid")) for k in keys if isinstance(k, dict)) \
        if isinstance(keys, list) else ()
    prev = claims.get("prev")
    return _claim_int(claims, "seq"), prev if isinstance(prev, str) else None, kids


def _files_claim(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise _fail("files", "files is not an object of name → SHA-256")
    if len(value) > MAX_FOLDER_FILES:
        raise _fail("files", f"more than {MAX_FOLDER_FILES} files")
    out: list[tuple[str, str]] = []
    for name, digest in value.items():
        try:
            check_file_name(name)
        except ValueError as e:
            raise _fail("files", str(e)) from e
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise _fail("files", f"{name}: not a lowercase hex SHA-256")
        out.append((name, digest))
    return tuple(sorted(out))


def verify_bundle(
    token: bytes,
    *,
    trust: Mapping[str, Any],
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
        raise _fail("trusted key", e.reason) from e
    if trust.get("kid") != trust_kid:
        raise _fail("trusted key", "its kid is not its RFC 7638 thumbprint")
    parsed = _parse_unverified_compact(token)
    header = parsed.header
    if header.get("typ") != BUNDLE_TYP:
        raise _fail("typ", f"header typ is {header.get('typ')!r}, expected {BUNDLE_TYP!r}")
    if set(header) != BUNDLE_HEADER:
        extra = sorted(set(header) ^ BUNDLE_HEADER)
        raise _fail("header", f"unexpected or missing header parameter {extra[0]!r}")
    if header.get("kid") != trust_kid:
        raise _fail("kid", f"bundle kid {header.get('kid')!r} is not the trusted key {trust_kid}")
    verified = verify_jws(token, trust, allowed_algs=BUNDLE_ALGS)

    try:
        claims = loads_strict(verified.payload.decode("utf-8"))
    except (UnicodeDecodeError, EntryRejectedError) as e:
        raise _fail("claims", f"payload is not strict JSON ({e})") from e
    if not isinstance(claims, dict):
        raise _fail("claims", "payload is not a JSON object")
    if set(claims) not in (BUNDLE_CLAIMS, LEGACY_CLAIMS):
        extra = sorted(set(claims) ^ BUNDLE_CLAIMS)
        raise _fail("claims", f"unexpected or missing claim {extra[0]!r}")
    iss = _claim_str(claims, "iss")
    sub = _claim_str(claims, "sub")
    if issuer is not None and iss != issuer:
        raise _fail("iss", f"issuer {iss!r} is not the expected {issuer!r}")
    if keyset is not None and sub != keyset:
        raise _fail("sub", f"keyset {sub!r} is not the expected {keyset!r}")
    iat, nbf, exp = (_claim_int(claims, n) for n in ("iat", "nbf", "exp"))
    if not iat <= nbf < exp:
        raise _fail("times", "expected iat ≤ nbf < exp")
    not_before, expires_at = _time(nbf, "nbf"), _time(exp, "exp")
    if now + CLOCK_LEEWAY < not_before:
        raise _fail("nbf", f"bundle is not valid before {not_before:%Y-%m-%dT%H:%M:%SZ}")
    if now - CLOCK_LEEWAY >= expires_at:
        raise _fail("exp", f"bundle expired at {expires_at:%Y-%m-%dT%H:%M:%SZ}")
    seq = _claim_int(claims, "seq")
    if seq < 1:
        raise _fail("seq", "seq must be ≥ 1")
    prev = claims["prev"]
    if prev is not None and (not isinstance(prev, str) or not _HEX64.fullmatch(prev)):
        raise _fail("prev", "prev is neither null nor a lowercase hex SHA-256")
    previous_kids: tuple[str, ...] | None = None
    if previous is not None:
        previous_seq, _, previous_kids = _unverified_previous(previous)
        if seq <= previous_seq:
            raise _fail(
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
            raise _fail("prev", f"prev {prev} is not the previous bundle's SHA-256 {expected_prev}")
    files = _files_claim(claims["files"]) if "files" in claims else None

    keys = claims["keys"]
    if not isinstance(keys, list) or not keys:
        raise _fail("keys", "keys is not a non-empty list")
    seen: set[str] = set()
    clean: list[dict[str, str]] = []
    for index, jwk in enumerate(keys):
        try:
            loaded = load_public_jwk(jwk, allowed_algs=BUNDLE_ALGS)
            expected_kid = thumbprint_of(jwk)
        except JwkProblem as e:
            raise _fail("keys", f"key #{index}: {e.reason}") from e
        if jwk.get("use") != "sig":
            raise _fail("keys", f"key #{index}: use is not 'sig'")
        if loaded.kid != expected_kid:
            raise _fail("keys", f"key #{index}: kid {loaded.kid!r} is not its thumbprint")
        if expected_kid in seen:
            raise _fail("keys", f"key #{index}: duplicate kid {expected_kid}")
        seen.add(expected_kid)
        clean.append(dict(jwk))
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

"""The reference token signer: what a token-signing service does with `signer.json` and the PIN.

A signing service holds three things: the latest export's `signer.json` (which key, with which
algorithm and PKCS#11 mechanism, from when), its host's PKCS#11 module, and the token PIN the
officers released to it (`exports/signers/<NAME>/pin.age`, which the service decrypts with
`age -d -i identity.txt` into a file only it can read). `ceremony sign-token` and the functions
here do exactly what such a service does, so the path from an HSM key to a token a gateway
accepts is tested end to end with our own code, and a service team has a reading of the contract
to copy:

1. `SignerFile.read` parses `signer.json` strictly (format `v: 1`, exactly the members below;
   anything else is refused, so a file this reader does not understand is never half-used);
2. `check_request` refuses a `signer.json` that is not valid yet (`valid_from` after `now`:
   consumers learn the key from the bundle issued at `valid_from`, so a token signed before then
   would be refused) and claims that do not fit it — before the token is opened or the PIN read;
3. `open_signing_token` finds the token by the URI's `token`/`serial` through the host's module;
4. `sign_token` checks, logged in, that the token is the one the URI names, that the key with the
   URI's `id` exists and carries its `object` label, and that its public key's RFC 7638
   thumbprint *is* the `kid` (a `signer.json` pointing a kid at another key signs nothing); then
   signs the JWS with the named mechanism, hashing on the host when `host_hash` says so, and
   verifies the signature in software before returning the compact JWS.

`signer.json` members (written by `console.exports.targets.signer`): `v` (1), `iss`, `alg`,
`kid`, `pkcs11_uri` (RFC 7512, never a PIN attribute), `mechanism` (`CKM_…`, one of
`console.jose`'s mechanisms for `alg`), `host_hash` (null when the token hashes, else the hash
the host applies first, e.g. `sha256`), `valid_from` (RFC 3339).

The PIN comes from a file, never from argv or the environment, is kept in a `bytearray` and
wiped after login, and never appears in an error.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

from console import b64, jose
from console.clock import format_time, parse_time, require_utc
from console.errors import (
    ClockError,
    ConfigError,
    ConsoleError,
    RehearsalOnlyError,
    SignerError,
    UnknownAlgorithmError,
    UsageError,
)
from console.hardening import wipe
from console.jsontypes import JsonMapping, JsonObject

if TYPE_CHECKING:
    from console.hsm import Hsm
    from console.hsm.uri import KeyUri
    from console.workspace import Workspace

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "SIGNER_FORMAT",
    "SIGNER_MEMBERS",
    "SignerFile",
    "check_request",
    "jws_signing_input",
    "open_signing_token",
    "parse_claims",
    "read_pin_file",
    "refuse_now_outside_workspace",
    "resolve_module",
    "sign_token",
    "sign_token_in_workspace",
    "sign_token_on",
    "token_claims",
]

SIGNER_FORMAT: Final = 1
SIGNER_MEMBERS: Final[tuple[str, ...]] = (
    "v", "iss", "alg", "kid", "pkcs11_uri", "mechanism", "host_hash", "valid_from",
)
DEFAULT_TOKEN_LIFETIME: Final = timedelta(minutes=5)
"""`exp` - `iat` when the claims name no `exp` (signer.json does not carry the policy's T_tok)."""
MAX_SIGNER_BYTES: Final = 64 * 1024
MAX_PIN_BYTES: Final = 256
_TIME_CLAIMS: Final = ("iat", "nbf", "exp")


# --- signer.json -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignerFile:
    """A parsed `signer.json` (see the module docstring). Build it with `from_bytes`/`read`."""

    iss: str
    alg: jose.Algorithm
    kid: str
    pkcs11_uri: str
    key: KeyUri
    mechanism: jose.SignMechanism
    valid_from: datetime
    source: str = "signer.json"

    @property
    def host_hash(self) -> str | None:
        """The hash the host applies before the token signs, or None when the token hashes."""
        return jose.algorithm(self.alg).hash_name if self.mechanism.host_hashes else None

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "signer.json") -> SignerFile:
        """Parse signer.json's bytes (strict: exactly `SIGNER_MEMBERS`, each checked).

        Raises:
            SignerError: naming `source` and the member that is wrong.
        """
        from console.hsm.uri import parse_key_uri

        def fail(what: str, hint: str = "use the signer.json of the latest export, unchanged"
                 ) -> SignerError:
            return SignerError(f"{source}: {what}", hint)

        try:
            raw = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_members,
                             parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as e:
            raise fail(f"not JSON ({_reason(e)})") from e
        if not isinstance(raw, dict):
            raise fail("not a JSON object")
        unknown = sorted(set(raw) - set(SIGNER_MEMBERS))
        missing = [m for m in SIGNER_MEMBERS if m not in raw]
        if unknown:
            raise fail(f"unknown member(s) {', '.join(unknown)[:80]}",
                       "this signer reads signer.json format v 1 only; update the signer")
        if missing:
            raise fail(f"member(s) {', '.join(missing)} missing")
        if raw["v"] != SIGNER_FORMAT or isinstance(raw["v"], bool):
            raise fail(f"format v {json.dumps(raw['v'])[:10]} is not {SIGNER_FORMAT}",
                       "this signer reads signer.json format v 1 only; update the signer")
        text = {m: raw[m] for m in ("iss", "alg", "kid", "pkcs11_uri", "mechanism",
                                    "valid_from")}
        for member, value in text.items():
            if not isinstance(value, str) or not value:
                raise fail(f"member {member!r} is not a non-empty string")
        if any(ord(c) < 0x20 or c == "\x7f" for c in raw["iss"]):
            raise fail("member 'iss' contains control characters")
        try:
            alg = jose.check_algorithm(raw["alg"])
        except UnknownAlgorithmError as e:
            raise fail(f"alg {raw['alg'][:20]!r} is not one the console signs with") from e
        spec = jose.algorithm(alg)
        try:
            if len(b64.decode(raw["kid"])) != 32:
                raise ValueError("not 32 bytes")
        except ValueError as e:
            raise fail(f"kid {raw['kid'][:50]!r} is not an RFC 7638 SHA-256 thumbprint") from e
        try:
            key = parse_key_uri(raw["pkcs11_uri"])
        except ValueError as e:
            raise fail(f"pkcs11_uri is not a usable key URI: {e}") from e
        mechanism = next((m for m in spec.sign_mechanisms if m.ckm == raw["mechanism"]), None)
        if mechanism is None:
            raise fail(f"mechanism {raw['mechanism'][:40]!r} cannot make {alg} signatures "
                       f"(use {' or '.join(m.ckm for m in spec.sign_mechanisms)})")
        expected_hash = spec.hash_name if mechanism.host_hashes else None
        if raw["host_hash"] != expected_hash:
            raise fail(f"host_hash {raw['host_hash']!r} does not fit {mechanism.ckm} for {alg} "
                       f"(it is {expected_hash!r})")
        try:
            valid_from = parse_time(raw["valid_from"], f"{source} valid_from")
        except ClockError as e:
            raise fail(f"valid_from {raw['valid_from'][:40]!r} is not an RFC 3339 time") from e
        return cls(iss=raw["iss"], alg=alg, kid=raw["kid"], pkcs11_uri=raw["pkcs11_uri"],
                   key=key, mechanism=mechanism, valid_from=valid_from, source=source)

    @classmethod
    def read(cls, path: Path) -> SignerFile:
        """Read and parse a signer.json file.

        Raises:
            SignerError: unreadable, too large, or malformed.
        """
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_SIGNER_BYTES + 1)
        except (OSError, ValueError) as e:
            raise SignerError(f"cannot read {path}: {_reason(e)}",
                              "give the signer.json of the latest export") from e
        if len(data) > MAX_SIGNER_BYTES:
            raise SignerError(f"{path} is larger than {MAX_SIGNER_BYTES} bytes",
                              "give the signer.json of the latest export")
        return cls.from_bytes(data, source=str(path))

    def require_valid(self, now: datetime) -> None:
        """Refuse to sign before `valid_from`.

        Raises:
            SignerError: naming `valid_from` and `now`.
        """
        now = require_utc(now, "now")
        if now < self.valid_from:
            raise SignerError(
                f"{self.source} is valid from {format_time(self.valid_from)}, not yet "
                f"(now {format_time(now)})",
                f"keep signing with the previous signer.json until {format_time(self.valid_from)}"
                ": consumers learn this key from the bundle issued then")


def _unique_members(pairs: list[tuple[str, object]]) -> JsonObject:
    out: JsonObject = {}
    for name, value in pairs:
        if name in out:
            raise ValueError(f"member {name[:40]!r} appears twice")
        out[name] = value
    return out


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0][:120] if str(error) else type(error).__name__


# --- claims ------------------------------------------------------------------------------


def parse_claims(text: str) -> JsonObject:
    """The `--claims` JSON object (duplicate members, NaN and Infinity refused).

    Raises:
        UsageError: not a JSON object.
    """
    try:
        value = json.loads(text, object_pairs_hook=_unique_members, parse_constant=_no_constant)
    except ValueError as e:
        raise UsageError(f"--claims is not JSON ({_reason(e)})",
                         'give a JSON object, e.g. --claims \'{"sub":"user-1","aud":"orders"}\''
                         ) from e
    if not isinstance(value, dict):
        raise UsageError("--claims is not a JSON object",
                         'give a JSON object, e.g. --claims \'{"sub":"user-1","aud":"orders"}\'')
    return value


def token_claims(signer: SignerFile, claims: JsonMapping | None, *, now: datetime,
                 lifetime: timedelta = DEFAULT_TOKEN_LIFETIME) -> JsonObject:
    """The claims a token carries: `claims` plus `iss` (signer.json's), `iat` (`now`) and `exp`
    (`iat` + `lifetime`) where they are missing. Given `iat`/`nbf`/`exp` are kept as they are:
    a rehearsal signs with wall-clock times while its ledger clock has moved on.

    Raises:
        SignerError: `iss` names another issuer, a time claim is not an integer, `exp` <= `iat`.
    """
    now = require_utc(now, "now")
    out: JsonObject = dict(claims or {})
    if "iss" in out and out["iss"] != signer.iss:
        raise SignerError(f"the claims name issuer {str(out['iss'])[:60]!r}, but this key "
                          f"signs for {signer.iss!r}", "leave iss out, or use this keyset's")
    given: dict[str, int] = {}
    for name in _TIME_CLAIMS:
        value = out.get(name)
        if name in out and (isinstance(value, bool) or not isinstance(value, int)):
            raise SignerError(f"claim {name!r} is not a whole number of seconds",
                              "write NumericDate values as integers (seconds since 1970)")
        if isinstance(value, int):
            given[name] = value
    out["iss"] = signer.iss
    iat = given.get("iat", int(now.timestamp()))
    exp = given.get("exp", iat + int(lifetime.total_seconds()))
    out["iat"], out["exp"] = iat, exp  # in this order: missing ones are appended, iat first
    if exp <= iat:
        raise SignerError("claim exp is not after iat", "give an exp later than iat")
    return out


def check_request(signer: SignerFile, claims: JsonMapping | None, *,
                  now: datetime) -> JsonObject:
    """Everything that can be refused before the token is opened: `valid_from`, the claims.

    Raises:
        SignerError: see `SignerFile.require_valid` and `token_claims`.
    """
    signer.require_valid(now)
    return token_claims(signer, claims, now=now)


# --- the PIN and the module ----------------------------------------------------------------


def read_pin_file(path: Path) -> bytearray:
    """The PIN in `path` (one trailing newline dropped), in a buffer the caller wipes.

    The file must be readable by its owner only, as ssh requires of private keys: a PIN other
    users can read is a PIN they hold.

    Raises:
        SignerError: unreadable, readable by others, empty or too long (never showing the PIN).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (OSError, ValueError) as e:
        raise SignerError(f"cannot read the PIN file {path}: {_reason(e)}",
                          "decrypt pin.age into it: age -d -i identity.txt -o FILE pin.age") from e
    buffer = bytearray()
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SignerError(f"the PIN file {path} is not a regular file", "give the PIN file")
        if info.st_mode & 0o077:
            raise SignerError(
                f"the PIN file {path} can be read by other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o})",
                f"chmod 600 {path}: only the signing service may read the PIN")
        while len(buffer) <= MAX_PIN_BYTES + 2:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffer += chunk
    finally:
        os.close(fd)
    if buffer.endswith(b"\r\n"):
        del buffer[-2:]
    elif buffer.endswith(b"\n"):
        del buffer[-1:]
    if not buffer or len(buffer) > MAX_PIN_BYTES:
        size = "empty" if not buffer else f"longer than {MAX_PIN_BYTES} bytes"
        wipe(buffer)
        raise SignerError(f"the PIN file {path} is {size}",
                          "decrypt pin.age into it: age -d -i identity.txt -o FILE pin.age")
    return buffer


def resolve_module(module: str) -> str:
    """`--module`: an absolute path to a PKCS#11 module, or "softhsm" / "p11-kit".

    Raises:
        SignerError: no such module file.
    """
    from console.config import HsmConfig

    if module not in ("softhsm", "p11-kit") and not module.startswith("/"):
        raise SignerError(f"--module {module[:80]!r} is not an absolute path",
                          'give the module file, e.g. --module /usr/lib/softhsm/libsofthsm2.so')
    try:
        return str(HsmConfig(module).module_path())
    except ConfigError as e:
        raise SignerError(e.message, "give the PKCS#11 module of this host with --module PATH"
                          ) from e


# --- signing -------------------------------------------------------------------------------


def jws_signing_input(header: JsonMapping, claims: JsonMapping) -> str:
    """`BASE64URL(header) "." BASE64URL(claims)` of compact JSON (RFC 7515 section 7.1)."""

    def part(value: JsonMapping) -> str:
        return b64.encode(json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False,
                                     allow_nan=False).encode("utf-8"))

    return f"{part(header)}.{part(claims)}"


def open_signing_token(signer: SignerFile, module: str) -> Hsm:
    """Open (not log in to) the token `signer.json`'s URI names, through `module`.

    Raises:
        HsmError: the module cannot be loaded, or no single token matches the URI.
    """
    from console.hsm import Hsm

    return Hsm.open(module, token_label=signer.key.token, token_serial=signer.key.serial)


def sign_token(signer: SignerFile, hsm: Hsm, claims: JsonMapping | None = None, *,
               now: datetime, lifetime: timedelta = DEFAULT_TOKEN_LIFETIME) -> str:
    """A compact JWS signed on `hsm` (logged in) by the key `signer` names.

    Raises:
        SignerError: not valid yet, claims that do not fit, a token or key other than the one
            named (another token, a missing key, a label or thumbprint that differs), or a
            signature that does not verify.
        HsmError: the token refused the operation (e.g. MechanismNotSupportedError).
    """
    from cryptography.exceptions import InvalidSignature

    from console.exports.jwks import public_jwk
    from console.hsm import verify_jws_signature

    body = check_request(signer, claims, now=now)
    info = hsm.token_info()
    mismatch = signer.key.token_mismatch(label=info.label, serial=info.serial,
                                         manufacturer=info.manufacturer, model=info.model)
    if mismatch is not None:
        raise SignerError(f"the token opened is not the one {signer.source} names: {mismatch}",
                          "use the module and token that hold this keyset's keys")
    cka_id = signer.key.cka_id
    private = [o for o in hsm.find(cka_id) if o.object_class == "private key"]
    if not private:
        raise SignerError(f"the token holds no private key with the id in {signer.source}",
                          "the key was destroyed or is on another token: use the latest export")
    if signer.key.label is not None and private[0].label != signer.key.label:
        raise SignerError(f"the key with that id is labelled {private[0].label!r}, not "
                          f"{signer.key.label!r}", "use the signer.json of the latest export")
    public = hsm.public_key(cka_id)
    try:
        kid = public_jwk(public, signer.alg)["kid"]
    except ConsoleError as e:
        raise SignerError(f"the key in {signer.source} is not an {signer.alg} key",
                          "use the signer.json of the latest export") from e
    if kid != signer.kid:
        raise SignerError(f"the key at that URI has kid {kid}, not {signer.kid}",
                          "signer.json does not match the token: use the latest export")
    header = {"alg": signer.alg, "kid": signer.kid, "typ": "JWT"}
    signing_input = jws_signing_input(header, body).encode("ascii")
    signature = hsm.sign(cka_id, signer.alg, signing_input, mechanism=signer.mechanism)
    try:
        verify_jws_signature(public, signer.alg, signing_input, signature)
    except InvalidSignature as e:  # never seen; a token must not send what it cannot verify
        raise SignerError("the token's signature does not verify with its own public key",
                          "run `ceremony doctor` on this token") from e
    return f"{signing_input.decode('ascii')}.{b64.encode(signature)}"


def _login_and_sign(hsm: Hsm, pin: bytearray, sign: Callable[[], str]) -> str:
    try:
        hsm.login(bytes(pin))
    finally:
        wipe(pin)
    return sign()


def sign_token_on(module: str, signer: SignerFile, pin: bytearray,
                  claims: JsonMapping | None = None, *, now: datetime,
                  lifetime: timedelta = DEFAULT_TOKEN_LIFETIME) -> str:
    """What a signing service does: open the token through its host's `module`, log in with
    `pin` (wiped once used), sign, close. Nothing is opened when the request is refused.

    Raises:
        SignerError, HsmError (PinIncorrectError when the PIN is not the token's).
    """
    check_request(signer, claims, now=now)
    hsm = open_signing_token(signer, module)
    try:
        return _login_and_sign(hsm, pin, lambda: sign_token(signer, hsm, claims, now=now,
                                                            lifetime=lifetime))
    finally:
        hsm.close()


def sign_token_in_workspace(ws: Workspace, signer: SignerFile, pin: bytearray,
                            claims: JsonMapping | None = None, *, now: datetime,
                            lifetime: timedelta = DEFAULT_TOKEN_LIFETIME) -> str:
    """`sign_token_on` with the workspace's own module and token (the ones the ledger vouches
    for): how a rehearsal plays the signing service.

    Raises:
        SignerError, HsmError, ConfigDriftError.
    """
    check_request(signer, claims, now=now)
    hsm = ws.hsm()
    return _login_and_sign(hsm, pin, lambda: sign_token(signer, hsm, claims, now=now,
                                                        lifetime=lifetime))


def refuse_now_outside_workspace(requested: datetime | None) -> None:
    """A service host has no rehearsal clock: `--now` needs a rehearsal workspace.

    Raises:
        RehearsalOnlyError: `requested` is given.
    """
    if requested is not None:
        raise RehearsalOnlyError("--now needs a rehearsal workspace",
                                 "leave --now out on a signing service's host (--module)")

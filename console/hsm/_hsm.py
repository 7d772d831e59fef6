"""`Hsm`: the one object the console uses to reach a PKCS#11 token.

It owns one R/W session per handle. Before `login` the session is public; `login` replaces it
with a logged-in one. Every PKCS#11 call runs under `_pkcs11.LOCK`. When a session dies
(`SessionHandleInvalid`, `SessionClosed`, `DeviceRemoved`, `DeviceError`, ...) the handle reopens
it once, logs in again with the PIN it holds in memory, and finds its objects again by CKA_ID:
object handles never outlive the session they were found in. Operations that change the token
(generate, destroy) are never repeated after such a loss: their outcome is unknown, and the
caller is told to reconcile.

Raises (every public method): `HsmError` subclasses from `console.errors`, never pkcs11 errors.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import pkcs11.exceptions as p11e
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import MGF, Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass, TokenFlag

from console.errors import (
    HsmError,
    HsmUnavailableError,
    KeyAuditError,
    MechanismNotSupportedError,
    ObjectExistsError,
    ObjectNotFoundError,
    PinIncorrectError,
    PinLockedError,
    TokenNotFoundError,
)
from console.hsm import uri
from console.hsm._pkcs11 import (
    CONNECTION_LOST,
    DEVICE_LOST,
    LOCK,
    RECONCILE_HINT,
    Modules,
    Pkcs11Library,
    find_objects,
    is_p11kit_client,
    token_flag_words,
    translate,
)
from console.hsm._support import sign_mechanism, support_table
from console.hsm.values import (
    ALGORITHMS,
    DEFAULT_RSA_BITS,
    RSA_SIZES,
    Algorithm,
    GeneratedKey,
    HsmObject,
    KeyAudit,
    MechanismSupport,
    PinState,
    PublicKey,
    TokenInfo,
)

T = TypeVar("T")

CKA_ID_BYTES: Final = 16
_MAX_LABEL: Final = 128

# DER OIDs (and the printable-string form some tokens use) for CKA_EC_PARAMS.
_P256: Final = bytes.fromhex("06082a8648ce3d030107")
_P384: Final = bytes.fromhex("06052b81040022")
_ED25519: Final = bytes.fromhex("06032b6570")
_ED25519_NAMES: Final = (_ED25519, bytes.fromhex("130c") + b"edwards25519")

_KIND_FOR_ALG: Final[dict[Algorithm, str]] = {
    "RS256": "RSA",
    "PS256": "RSA",
    "ES256": "P-256",
    "ES384": "P-384",
    "EdDSA": "Ed25519",
}

_PRIVATE_BOOLS: Final = (
    Attribute.SENSITIVE,
    Attribute.ALWAYS_SENSITIVE,
    Attribute.EXTRACTABLE,
    Attribute.NEVER_EXTRACTABLE,
    Attribute.LOCAL,
    Attribute.PRIVATE,
    Attribute.TOKEN,
    Attribute.SIGN,
    Attribute.DECRYPT,
    Attribute.UNWRAP,
    Attribute.DERIVE,
    Attribute.MODIFIABLE,
)
_PUBLIC_BOOLS: Final = (
    Attribute.TOKEN,
    Attribute.PRIVATE,
    Attribute.LOCAL,
    Attribute.VERIFY,
    Attribute.ENCRYPT,
    Attribute.WRAP,
    Attribute.MODIFIABLE,
)


def check_alg(alg: str) -> Algorithm:
    for known in ALGORITHMS:
        if alg == known:
            return known
    raise MechanismNotSupportedError(
        f"unknown JWS algorithm {alg!r}", f"use one of {', '.join(ALGORITHMS)}"
    )


def _check_label(label: str) -> None:
    if not label or len(label) > _MAX_LABEL or any(ord(c) < 0x20 or ord(c) == 0x7F for c in label):
        raise HsmError(
            "a key label must be 1 to 128 printable characters",
            "choose a label like 'api-prod-2027q1'",
        )


def curve_of(ec_params: bytes) -> str | None:
    if ec_params == _P256:
        return "P-256"
    if ec_params == _P384:
        return "P-384"
    if ec_params in _ED25519_NAMES:
        return "Ed25519"
    return None


def _octet_string_body(data: bytes) -> bytes | None:
    """The body of a DER OCTET STRING, or None if `data` is not exactly one."""
    if len(data) < 2 or data[0] != 0x04:
        return None
    if data[1] < 0x80:
        length, start = data[1], 2
    elif data[1] == 0x81 and len(data) >= 3:
        length, start = data[2], 3
    else:
        return None
    body = data[start:]
    return body if len(body) == length else None


def public_key_from_attributes(kind: str, attrs: dict[Attribute, Any]) -> PublicKey:
    """Build a `cryptography` public key from a public key object's attributes."""
    if kind == "RSA":
        n = attrs[Attribute.MODULUS]
        e = attrs[Attribute.PUBLIC_EXPONENT]
        n_int = n if isinstance(n, int) else int.from_bytes(n, "big")
        e_int = e if isinstance(e, int) else int.from_bytes(e, "big")
        return rsa.RSAPublicNumbers(e_int, n_int).public_key()
    point: bytes = attrs[Attribute.EC_POINT]
    if kind == "Ed25519":
        # Tokens differ: SoftHSM2 wraps the 32 key bytes in a DER OCTET STRING, others do not.
        raw = point if len(point) == 32 else _octet_string_body(point)
        if raw is None or len(raw) != 32:
            raise HsmError("the token returned a malformed Ed25519 public key", RECONCILE_HINT)
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    curve: ec.EllipticCurve = ec.SECP256R1() if kind == "P-256" else ec.SECP384R1()
    expected = 1 + 2 * ((curve.key_size + 7) // 8)
    raw_point: bytes | None = point
    if not (len(point) == expected and point[0] == 0x04):
        raw_point = _octet_string_body(point)
    if raw_point is None or len(raw_point) != expected:
        raise HsmError(f"the token returned a malformed {kind} public key", RECONCILE_HINT)
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, raw_point)


def verify_jws_signature(public_key: PublicKey, alg: Algorithm, data: bytes, sig: bytes) -> None:
    """Check a JWS signature in software (`cryptography`); raises InvalidSignature."""
    if alg == "RS256":
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256":
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(
            sig,
            data,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
    elif alg in ("ES256", "ES384"):
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        half = len(sig) // 2
        der = encode_dss_signature(
            int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")
        )
        h: hashes.HashAlgorithm = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
        public_key.verify(der, data, ec.ECDSA(h))
    else:
        assert isinstance(public_key, ed25519.Ed25519PublicKey)
        public_key.verify(sig, data)


def _expected_sig_len(alg: Algorithm, rsa_bytes: int) -> int:
    return {"ES256": 64, "ES384": 96, "EdDSA": 64}.get(alg, rsa_bytes)


@dataclass(frozen=True, slots=True)
class _KeyRef:
    """A private key found in one session; valid only while `generation` is current."""

    generation: int
    obj: Any  # pkcs11 PrivateKey in the session of that generation
    kind: str  # "RSA", "P-256", "P-384", "Ed25519", or "" if unknown
    rsa_bytes: int


def _kind_of(key_type: Any, ec_params: bytes | None) -> str:
    if key_type == KeyType.RSA:
        return "RSA"
    if key_type in (KeyType.EC, KeyType.EC_EDWARDS) and ec_params is not None:
        return curve_of(ec_params) or ""
    return ""


class Hsm:
    """A handle on one token of one PKCS#11 module (see the module docstring).

    Build it with `Hsm.open`. Use it from any thread: every call is serialised by the
    module-level lock. `login_calls` counts the C_Login calls this handle made (the quorum tests
    assert that bad shares cause none); tests inject a fault-raising library with `_lib=`.
    """

    def __init__(self, module: str, lib: Pkcs11Library, token: Any) -> None:
        self._module = module
        self._lib = lib
        self._token = token
        self._label: str = token.label
        self._serial: bytes = token.serial
        self._session: Any = None
        self._generation = 0
        self._pin: bytes | None = None
        self._closed = False
        self._keys: dict[bytes, _KeyRef] = {}
        self._offered: frozenset[int] = frozenset()
        self._network_path = is_p11kit_client(lib)
        self.login_calls = 0

    # --- opening and closing --------------------------------------------------------------

    @classmethod
    def open(
        cls,
        module: str,
        *,
        token_label: str | None = None,
        token_serial: str | None = None,
        _lib: Pkcs11Library | None = None,
    ) -> Hsm:
        """Open a public R/W session on the one token matching `token_label`/`token_serial`.

        Raises: HsmModuleError (module cannot be loaded), TokenNotFoundError (no token or
        several match; the message lists the tokens seen), HsmUnavailableError.
        """
        with LOCK:
            if _lib is not None:
                Modules.adopt(module, _lib)
                lib = _lib
            else:
                lib = Modules.load(module)
            try:
                token = _find_token(lib, token_label, token_serial)
            except (TokenNotFoundError, p11e.PKCS11Error) as first:
                if isinstance(first, p11e.PKCS11Error) and not isinstance(first, CONNECTION_LOST):
                    raise translate(first, "looking for the token") from first
                # SoftHSM2 sees new tokens, and p11-kit's client a restarted server, only after
                # C_Finalize + C_Initialize; do that only when no session in this process uses
                # the module.
                if not Modules.rescan(module, lib):
                    if isinstance(first, HsmError):
                        raise
                    raise translate(first, "looking for the token") from first
                try:
                    token = _find_token(lib, token_label, token_serial)
                except p11e.PKCS11Error as e:
                    raise translate(e, "looking for the token") from e
            hsm = cls(module, lib, token)
            try:
                hsm._session = token.open(rw=True)
                hsm._offered = frozenset(token.slot.get_mechanisms())
            except p11e.PKCS11Error as e:
                raise translate(e, "opening a session") from e
            Modules.opened(module)
            return hsm

    def close(self) -> None:
        """Log out and close the session. Safe to call twice; never raises for a dead device."""
        with LOCK:
            if self._closed:
                return
            self._closed = True
            self._pin = None
            self._keys.clear()
            session, self._session = self._session, None
            try:
                if session is not None:
                    session.close()  # C_Logout too, when this session logged in
            except p11e.PKCS11Error:
                pass  # the device is gone; nothing left to release on it
            finally:
                Modules.closed(self._module)

    def __enter__(self) -> Hsm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("logged in" if self._pin else "public")
        return f"<Hsm module={self._module!r} token={self._label!r} {state}>"

    @property
    def module(self) -> str:
        return self._module

    @property
    def logged_in(self) -> bool:
        return self._pin is not None

    @property
    def network_path(self) -> bool:
        """True when the module is p11-kit's client (the token sits behind `p11-kit server`)."""
        return self._network_path

    # --- token and PIN ---------------------------------------------------------------------

    def token_info(self) -> TokenInfo:
        """Fresh C_GetTokenInfo: label, serial, manufacturer, model, flags, PIN state."""
        with LOCK:
            token = self._run("reading the token information", lambda _s: self._fresh_token())
            return _token_info(token)

    def login(self, pin: bytes) -> None:
        """Log in as the user. Reads the token flags first and never tries a PIN on its last try.

        Raises: PinLockedError (locked, or final try: no C_Login is made), PinIncorrectError,
        HsmError (already logged in on another handle), HsmUnavailableError.
        """
        with LOCK:
            self._require_open()
            if self._pin is not None:
                if hmac.compare_digest(self._pin, pin):
                    return
                raise HsmError(
                    "this console handle is already logged in",
                    "log out first to log in with another PIN",
                )
            self._login_locked(pin)

    def logout(self) -> None:
        """End the login (C_Logout) and keep a public session open."""
        with LOCK:
            self._require_open()
            if self._pin is None:
                return
            self._pin = None
            self._keys.clear()
            self._generation += 1
            old, self._session = self._session, None
            # A dead session is logged out by definition.
            with contextlib.suppress(p11e.PKCS11Error):
                old.close()
            try:
                self._session = self._token.open(rw=True)
            except p11e.PKCS11Error as e:
                raise translate(e, "reopening a public session") from e

    def set_pin(self, old: bytes, new: bytes) -> None:
        """C_SetPIN on the logged-in R/W session; refuses on a final try like `login`."""
        with LOCK:
            self._require_login("changing the PIN")
            _refuse_unsafe_pin_state(_token_info(self._fresh_token()))
            old_text, new_text = _pin_text(old), _pin_text(new)
            if not new_text:
                raise PinIncorrectError("the new PIN is empty", "choose a new PIN")
            # If the session dies mid-change the PIN is unknown: no automatic re-login with
            # either PIN (a wrong guess would cost a try); the officers log in again.
            self._run(
                "changing the PIN",
                lambda s: s.set_pin(old_text, new_text),
                mutating=True,
                relogin=False,
            )
            self._pin = bytes(new)

    def set_so_pin(self, old: bytes, new: bytes) -> None:
        """C_SetPIN as the security officer (for rehearsal tokens whose SO PIN nobody keeps).

        Needs a handle that is not logged in as the user (login state is per token).
        """
        with LOCK:
            self._require_open()
            if self._pin is not None:
                raise HsmError("log out before changing the SO PIN", "call logout() first")
            old_text, new_text = _pin_text(old), _pin_text(new)
            try:
                session = self._token.open(rw=True, so_pin=old_text)
            except p11e.PKCS11Error as e:
                raise translate(e, "logging in as security officer") from e
            try:
                session.set_pin(old_text, new_text)
            except p11e.PKCS11Error as e:
                raise translate(e, "changing the SO PIN") from e
            finally:
                with contextlib.suppress(p11e.PKCS11Error):
                    session.close()

    # --- keys --------------------------------------------------------------------------------

    def random_id(self) -> bytes:
        """16 random bytes from the HSM's RNG, for a CKA_ID planned before generation."""
        with LOCK:
            rnd: bytes = self._run(
                "drawing a random id", lambda s: s.generate_random(CKA_ID_BYTES * 8)
            )
            return rnd

    def generate_keypair(
        self,
        alg: str,
        *,
        label: str,
        rsa_bits: int | None = None,
        cka_id: bytes | None = None,
    ) -> GeneratedKey:
        """Generate a signing key pair on the token, audit it, self-test it, return its public half.

        The private key is TOKEN, PRIVATE, SENSITIVE, not EXTRACTABLE, and may only SIGN. A key
        failing any check is destroyed and KeyAuditError is raised. `cka_id` defaults to 16 bytes
        from the HSM's RNG (pass the one recorded in the ceremony's intent).

        Raises: ObjectExistsError, MechanismNotSupportedError, KeyAuditError,
        HsmUnavailableError (outcome unknown: reconcile), HsmError.
        """
        jws_alg = check_alg(alg)
        _check_label(label)
        kind = _KIND_FOR_ALG[jws_alg]
        if kind == "RSA":
            bits = DEFAULT_RSA_BITS if rsa_bits is None else rsa_bits
            if bits not in RSA_SIZES:
                raise HsmError(
                    f"RSA key size {bits} is not allowed",
                    f"use one of {', '.join(map(str, RSA_SIZES))}",
                )
        elif rsa_bits is not None:
            raise HsmError(f"{jws_alg} keys have no RSA size", "leave rsa_bits unset")
        else:
            bits = 0
        if cka_id is not None and not 1 <= len(cka_id) <= 64:
            raise HsmError("a CKA_ID must be 1 to 64 bytes", "use Hsm.random_id()")
        with LOCK:
            self._require_login("generating a key")
            support = self.mechanisms()[jws_alg]
            if not support.available:
                raise MechanismNotSupportedError(
                    support.note, "choose another algorithm for this keyset, or another token"
                )
            new_id = cka_id if cka_id is not None else self.random_id()
            self._refuse_existing(label, new_id)
            pub, priv = self._run(
                f"generating a {jws_alg} key",
                lambda s: _generate(s, kind, bits, label, new_id),
                mutating=True,
            )
            try:
                audit, public_key = self._audit(jws_alg, kind, pub, priv)
            except CONNECTION_LOST as e:
                self._drop_session()
                raise HsmUnavailableError(
                    f"the HSM went away while auditing new key {label!r}; it may exist "
                    "unaudited on the token",
                    RECONCILE_HINT,
                ) from e
            except p11e.PKCS11Error as e:
                problem = translate(e, "auditing the new key")
                self._destroy_failed(pub, priv)
                raise KeyAuditError(
                    f"new key {label!r} could not be audited ({problem.message}); it was destroyed",
                    "run `ceremony doctor`; do not use this token for ceremonies until it passes",
                ) from e
            problems = audit.problems()
            if problems:
                destroyed = self._destroy_failed(pub, priv)
                raise KeyAuditError(
                    f"new key {label!r} failed its audit: {'; '.join(problems)}; "
                    + ("it was destroyed" if destroyed else "DESTROYING IT FAILED, never use it"),
                    "this token does not keep keys safe enough for a ceremony",
                )
            self._keys[new_id] = _KeyRef(
                self._generation, priv, kind, (bits + 7) // 8 if kind == "RSA" else 0
            )
            return GeneratedKey(
                label=label, cka_id=new_id, alg=jws_alg, public_key=public_key, audit=audit
            )

    def sign(self, cka_id: bytes, alg: str, data: bytes) -> bytes:
        """A JWS signature over `data` by the private key with `cka_id` (raw r||s for ES*).

        Raises: ObjectNotFoundError, MechanismNotSupportedError, HsmError (key does not match
        the algorithm), HsmUnavailableError.
        """
        jws_alg = check_alg(alg)
        with LOCK:
            mech = sign_mechanism(jws_alg, self._offered)
            if mech is None:
                raise MechanismNotSupportedError(
                    self.mechanisms()[jws_alg].note, "choose another algorithm or token"
                )

            def op(session: Any) -> bytes:
                ref = self._private_key(session, cka_id)
                if ref.kind != _KIND_FOR_ALG[jws_alg]:
                    raise HsmError(
                        f"key {cka_id.hex()} is a {ref.kind or 'unknown'} key and cannot sign "
                        f"{jws_alg}",
                        "sign with the algorithm recorded for this key in the ledger",
                    )
                sig = _sign(ref.obj, jws_alg, mech, data)
                if len(sig) != _expected_sig_len(jws_alg, ref.rsa_bytes):
                    raise HsmError(
                        f"the token returned a {len(sig)}-byte {jws_alg} signature",
                        "run `ceremony doctor`; this token's signatures are not JWS-ready",
                    )
                return sig

            sig: bytes = self._run(f"signing with {jws_alg}", op)
            return sig

    def audit_key(self, cka_id: bytes, alg: str) -> KeyAudit:
        """Audit a key already on the token (attributes, unreadable private value, self-test):
        the check a key left by an interrupted ceremony must pass before it is adopted."""
        jws_alg = check_alg(alg)
        with LOCK:
            self._require_login("auditing a key")
            ref = self._run("finding the key", lambda s: self._private_key(s, cka_id))

            def find_public(session: Any) -> Any:
                found = find_objects(
                    session, {Attribute.ID: cka_id, Attribute.CLASS: ObjectClass.PUBLIC_KEY})
                if len(found) != 1:
                    raise ObjectNotFoundError(
                        f"{len(found)} public keys with CKA_ID {cka_id.hex()}",
                        "run `ceremony reconcile`")
                return found[0]

            pub = self._run("finding the public key", find_public)
            audit, _ = self._run("auditing the key",
                                 lambda _s: self._audit(jws_alg, ref.kind, pub, ref.obj))
            return audit

    def public_key(self, cka_id: bytes) -> PublicKey:
        """The public half of the key pair `cka_id`, as a `cryptography` object."""
        with LOCK:
            return self._run("reading a public key", lambda s: _read_public(s, cka_id))

    def inventory(self) -> list[HsmObject]:
        """Every object this session can see (private ones only after login)."""
        with LOCK:
            return self._run("listing the token's objects", lambda s: _inventory(s, None))

    def find(self, cka_id: bytes) -> list[HsmObject]:
        """The objects with this CKA_ID (normally a private and a public key); may be empty."""
        with LOCK:
            return self._run("looking up a key", lambda s: _inventory(s, cka_id))

    def destroy_keypair(self, cka_id: bytes) -> None:
        """DANGER: destroy both halves of a key pair; see `console.hsm._destroy`."""
        from console.hsm._destroy import destroy_keypair

        destroy_keypair(self, cka_id)

    # --- identity and capabilities -------------------------------------------------------------

    def token_uri(self) -> str:
        info = self.token_info()
        return uri.token_uri(
            label=info.label, serial=info.serial, manufacturer=info.manufacturer, model=info.model
        )

    def key_uri(self, cka_id: bytes, label: str) -> str:
        info = self.token_info()
        return uri.key_uri(
            label=info.label,
            serial=info.serial,
            manufacturer=info.manufacturer,
            model=info.model,
            cka_id=cka_id,
            object_label=label,
        )

    def mechanisms(self) -> dict[Algorithm, MechanismSupport]:
        """For each JWS algorithm: can this token do it, with which mechanism, what is missing."""
        with LOCK:
            self._require_open()
            slot = self._token.slot

            def sizes(m: int) -> tuple[int, int] | None:
                try:
                    info = slot.get_mechanism_info(m)
                except p11e.PKCS11Error:
                    return None
                return (int(info.min_key_length), int(info.max_key_length))

            return support_table(self._offered, sizes, network_path=self._network_path)

    # --- internals (all called with LOCK held) --------------------------------------------------

    def _require_open(self) -> None:
        if self._closed:
            raise HsmError("this HSM handle is closed", "open the workspace's HSM again")

    def _require_login(self, doing: str) -> None:
        self._require_open()
        if self._pin is None:
            raise HsmError(
                f"not logged in to the token for {doing}",
                "unlock the PIN with the officers' quorum first",
            )

    def _fresh_token(self) -> Any:
        return self._token.slot.get_token()

    def _login_locked(self, pin: bytes) -> None:
        pin_text = _pin_text(pin)
        try:
            info = _token_info(self._fresh_token())
        except p11e.PKCS11Error as e:
            raise translate(e, "reading the token flags before login") from e
        _refuse_unsafe_pin_state(info)
        self.login_calls += 1
        try:
            # python-pkcs11 logs in only through Token.open; a failed C_Login leaves that new
            # session handle open inside the module (it is freed at C_Finalize).
            logged_in = self._token.open(rw=True, user_pin=pin_text)
        except p11e.PKCS11Error as e:
            raise translate(e, "logging in") from e
        old, self._session = self._session, logged_in
        self._pin = bytes(pin)
        self._generation += 1
        self._keys.clear()
        if old is not None:
            with contextlib.suppress(p11e.PKCS11Error):  # public session: no C_Logout
                old.close()

    def _drop_session(self) -> None:
        old, self._session = self._session, None
        self._generation += 1
        self._keys.clear()
        if old is not None:
            with contextlib.suppress(p11e.PKCS11Error):
                old.close()

    def _reopen(self, cause: BaseException | None, *, relogin: bool = True) -> None:
        """Replace a dead session: find the token again, open a session, log in again."""
        self._drop_session()
        if not relogin:
            self._pin = None
        # A lost device (or an earlier failed reopen, cause None) may need the module
        # finalised and initialised again: that reconnects p11-kit's client to a restarted
        # server. Only done when this handle is the module's only user.
        rescanned = (cause is None or isinstance(cause, DEVICE_LOST)) and Modules.rescan(
            self._module, self._lib, allowed_handles=1
        )
        while True:
            try:
                token = _find_token(self._lib, self._label, self._serial.decode("ascii", "replace"))
                self._offered = frozenset(token.slot.get_mechanisms())
                session = None if self._pin is not None else token.open(rw=True)
                break
            except (TokenNotFoundError, p11e.PKCS11Error) as e:
                if not rescanned and (
                    isinstance(e, (TokenNotFoundError, *DEVICE_LOST))
                    and Modules.rescan(self._module, self._lib, allowed_handles=1)
                ):
                    rescanned = True
                    continue
                raise HsmUnavailableError(
                    f"HSM unavailable: token {self._label!r} cannot be reached again "
                    f"({type(cause or e).__name__})",
                    RECONCILE_HINT,
                ) from e
        self._token = token
        self._session = session
        if self._pin is not None:
            # Straight to a logged-in session (flags checked first, like any login).
            pin, self._pin = self._pin, None
            self._login_locked(pin)

    def _run(
        self, doing: str, op: Callable[[Any], T], *, mutating: bool = False, relogin: bool = True
    ) -> T:
        """Run `op(session)`; on a dead session reopen once and, unless mutating, run it again."""
        self._require_open()
        cause: BaseException | None = None
        if self._session is None:
            self._reopen(None)
        else:
            try:
                return op(self._session)
            except CONNECTION_LOST as e:
                cause = e
            except p11e.UserNotLoggedIn as e:
                if self._pin is None:
                    raise translate(e, doing) from e
                cause = e  # the login was lost with the session (reaped, or device reset)
            except p11e.PKCS11Error as e:
                raise translate(e, doing) from e
            self._reopen(cause, relogin=relogin)
            if mutating:
                raise HsmUnavailableError(
                    f"{doing} was interrupted ({type(cause).__name__}); its outcome on the token "
                    "is unknown",
                    "the session was reopened; run `ceremony reconcile` before continuing",
                ) from cause
        try:
            return op(self._session)
        except CONNECTION_LOST as e:
            self._drop_session()
            raise HsmUnavailableError(
                f"HSM unavailable while {doing} ({type(e).__name__})", RECONCILE_HINT
            ) from e
        except p11e.PKCS11Error as e:
            raise translate(e, doing) from e

    def _private_key(self, session: Any, cka_id: bytes) -> _KeyRef:
        ref = self._keys.get(cka_id)
        if ref is not None and ref.generation == self._generation:
            return ref
        found = find_objects(
            session, {Attribute.ID: cka_id, Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        if not found:
            raise ObjectNotFoundError(
                f"no private key with CKA_ID {cka_id.hex()} on token {self._label!r}",
                "run `ceremony reconcile` to compare the token with the ledger",
            )
        if len(found) > 1:
            raise HsmError(
                f"{len(found)} private keys share CKA_ID {cka_id.hex()}",
                "run `ceremony reconcile`; the token holds objects the console did not make",
            )
        obj = found[0]
        key_type = obj[Attribute.KEY_TYPE]
        rsa_bytes = 0
        ec_params: bytes | None = None
        if key_type == KeyType.RSA:
            rsa_bytes = len(bytes(obj[Attribute.MODULUS]).lstrip(b"\x00"))
        elif key_type in (KeyType.EC, KeyType.EC_EDWARDS):
            ec_params = obj[Attribute.EC_PARAMS]
        ref = _KeyRef(self._generation, obj, _kind_of(key_type, ec_params), rsa_bytes)
        self._keys[cka_id] = ref
        return ref

    def _refuse_existing(self, label: str, cka_id: bytes) -> None:
        def op(session: Any) -> tuple[int, int]:
            by_label = find_objects(session, {Attribute.LABEL: label})
            by_id = find_objects(session, {Attribute.ID: cka_id})
            return len(by_label), len(by_id)

        n_label, n_id = self._run("checking for existing objects", op)
        if n_label:
            raise ObjectExistsError(
                f"the token already holds {n_label} object(s) labelled {label!r}",
                "labels are never reused: choose a new label",
            )
        if n_id:
            raise ObjectExistsError(
                f"the token already holds {n_id} object(s) with CKA_ID {cka_id.hex()}",
                "draw a new id (Hsm.random_id) and record it in a new intent",
            )

    def _audit(self, alg: Algorithm, kind: str, pub: Any, priv: Any) -> tuple[KeyAudit, PublicKey]:
        values = priv.get_attributes(list(_PRIVATE_BOOLS))
        missing = [a.name for a in _PRIVATE_BOOLS if a not in values]

        def flag(a: Attribute, default: bool) -> bool:
            v = values.get(a)
            return default if v is None else bool(v)

        secret_attr = Attribute.PRIVATE_EXPONENT if kind == "RSA" else Attribute.VALUE
        try:
            priv[secret_attr]
            readable = True
        except p11e.AttributeSensitive:
            readable = False
        public_key = public_key_from_attributes(kind, _public_attrs(pub, kind))
        nonce = self._session.generate_random(256)
        mech = sign_mechanism(alg, self._offered)
        self_test = False
        if mech is not None:
            sig = _sign(priv, alg, mech, nonce)
            try:
                verify_jws_signature(public_key, alg, nonce, sig)
                self_test = True
            except InvalidSignature:
                self_test = False
        # An attribute the token would not report counts against the key (fail closed).
        audit = KeyAudit(
            sensitive=flag(Attribute.SENSITIVE, False),
            always_sensitive=flag(Attribute.ALWAYS_SENSITIVE, False),
            extractable=flag(Attribute.EXTRACTABLE, True),
            never_extractable=flag(Attribute.NEVER_EXTRACTABLE, False),
            local=flag(Attribute.LOCAL, False),
            private=flag(Attribute.PRIVATE, False),
            token=flag(Attribute.TOKEN, False),
            sign=flag(Attribute.SIGN, False),
            decrypt=flag(Attribute.DECRYPT, True),
            unwrap=flag(Attribute.UNWRAP, True),
            derive=flag(Attribute.DERIVE, True),
            private_value_readable=readable,
            self_test=self_test,
        )
        del missing  # reflected in the fail-closed defaults above
        return audit, public_key

    def _destroy_failed(self, pub: Any, priv: Any) -> bool:
        ok = True
        for obj in (priv, pub):
            try:
                obj.destroy()
            except p11e.PKCS11Error:
                ok = False
        return ok


# --- helpers that touch pkcs11 objects (called with LOCK held) ------------------------------


def _pin_text(pin: bytes) -> str:
    # python-pkcs11 takes PINs as str and encodes them as UTF-8 itself.
    try:
        return bytes(pin).decode("utf-8")
    except UnicodeDecodeError:
        raise PinIncorrectError(
            "the PIN is not valid UTF-8", "check how the PIN was entered or unsealed"
        ) from None


def _refuse_unsafe_pin_state(info: TokenInfo) -> None:
    if info.pin_state is PinState.LOCKED:
        raise PinLockedError(
            f"the user PIN of token {info.label!r} is locked; the console did not try it",
            "the security officer must unblock the PIN before any ceremony",
        )
    if info.pin_state is PinState.FINAL_TRY:
        raise PinLockedError(
            f"token {info.label!r} is on its final PIN try; the console will not risk locking it",
            "have the security officer reset the retry counter (SO login) before trying again",
        )
    if info.pin_state is PinState.NOT_INITIALISED:
        raise PinLockedError(
            f"token {info.label!r} has no user PIN yet", "initialise the user PIN with the SO"
        )


def _token_info(token: Any) -> TokenInfo:
    flags = int(token.flags)
    if flags & TokenFlag.USER_PIN_LOCKED:
        state = PinState.LOCKED
    elif flags & TokenFlag.USER_PIN_FINAL_TRY:
        state = PinState.FINAL_TRY
    elif not flags & TokenFlag.USER_PIN_INITIALIZED:
        state = PinState.NOT_INITIALISED
    elif flags & TokenFlag.USER_PIN_COUNT_LOW:
        state = PinState.COUNT_LOW
    else:
        state = PinState.OK
    return TokenInfo(
        label=token.label,
        serial=token.serial.decode("ascii", "replace"),
        manufacturer=token.manufacturer_id,
        model=token.model,
        flags=token_flag_words(flags),
        pin_state=state,
        slot_id=int(token.slot.slot_id),
    )


def _find_token(lib: Pkcs11Library, label: str | None, serial: str | None) -> Any:
    seen: list[str] = []
    matches: list[Any] = []
    for slot in lib.get_slots(token_present=True):
        try:
            token = slot.get_token()
        except (p11e.TokenNotPresent, p11e.TokenNotRecognised):
            continue
        if not token.flags & TokenFlag.TOKEN_INITIALIZED:
            continue
        token_serial = token.serial.decode("ascii", "replace")
        seen.append(f"{token.label!r} (serial {token_serial})")
        if label is not None and token.label != label:
            continue
        if serial is not None and token_serial != serial:
            continue
        matches.append(token)
    wanted = (
        " and ".join(
            part
            for part in (
                f"label {label!r}" if label is not None else "",
                f"serial {serial!r}" if serial is not None else "",
            )
            if part
        )
        or "any label"
    )
    if not matches and not seen:
        raise TokenNotFoundError(
            f"no token is visible through the PKCS#11 module (looking for {wanted})",
            "connect the HSM (for a network HSM: start the p11-kit server and set "
            "P11_KIT_SERVER_ADDRESS), then run `ceremony doctor`",
        )
    if not matches:
        raise TokenNotFoundError(
            f"no token with {wanted}; tokens seen: {', '.join(seen)}",
            "check the token label/serial in ceremony.toml and run `ceremony doctor`",
        )
    if len(matches) > 1:
        raise TokenNotFoundError(
            f"{len(matches)} tokens match {wanted}: {', '.join(seen)}",
            "name the token by its serial as well",
        )
    return matches[0]


def _generate(session: Any, kind: str, bits: int, label: str, cka_id: bytes) -> tuple[Any, Any]:
    caps = MechanismFlag.SIGN | MechanismFlag.VERIFY
    public = {
        Attribute.TOKEN: True,
        Attribute.VERIFY: True,
        Attribute.ENCRYPT: False,
        Attribute.WRAP: False,
    }
    private = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
    }
    common: dict[str, Any] = {
        "id": cka_id,
        "label": label,
        "store": True,
        "capabilities": caps,
        "private_template": private,
    }
    if kind == "RSA":
        return tuple(session.generate_keypair(KeyType.RSA, bits, public_template=public, **common))
    if kind == "Ed25519":
        return tuple(
            session.generate_keypair(
                KeyType.EC_EDWARDS,
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                public_template={**public, Attribute.EC_PARAMS: _ED25519},
                **common,
            )
        )
    params = _P256 if kind == "P-256" else _P384
    return tuple(
        session.generate_keypair(
            KeyType.EC, public_template={**public, Attribute.EC_PARAMS: params}, **common
        )
    )


def _sign(priv: Any, alg: Algorithm, mech: Mechanism, data: bytes) -> bytes:
    if alg == "RS256":
        sig: bytes = priv.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
    elif alg == "PS256":
        params = (Mechanism.SHA256, MGF.SHA256, 32)
        if mech == Mechanism.SHA256_RSA_PKCS_PSS:
            sig = priv.sign(data, mechanism=mech, mechanism_param=params)
        else:
            digest = hashlib.sha256(data).digest()
            sig = priv.sign(digest, mechanism=Mechanism.RSA_PKCS_PSS, mechanism_param=params)
    elif alg == "ES256":
        sig = priv.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
    elif alg == "ES384":
        sig = priv.sign(hashlib.sha384(data).digest(), mechanism=Mechanism.ECDSA)
    else:
        sig = priv.sign(data, mechanism=Mechanism.EDDSA)
    return bytes(sig)


def _public_attrs(pub: Any, kind: str) -> dict[Attribute, Any]:
    if kind == "RSA":
        return {
            Attribute.MODULUS: pub[Attribute.MODULUS],
            Attribute.PUBLIC_EXPONENT: pub[Attribute.PUBLIC_EXPONENT],
        }
    return {Attribute.EC_POINT: pub[Attribute.EC_POINT]}


def _read_public(session: Any, cka_id: bytes) -> PublicKey:
    found = find_objects(session, {Attribute.ID: cka_id, Attribute.CLASS: ObjectClass.PUBLIC_KEY})
    if len(found) != 1:
        raise ObjectNotFoundError(
            f"{'no' if not found else len(found)} public key(s) with CKA_ID {cka_id.hex()}",
            "run `ceremony reconcile` to compare the token with the ledger",
        )
    pub = found[0]
    key_type = pub[Attribute.KEY_TYPE]
    ec_params = None if key_type == KeyType.RSA else pub[Attribute.EC_PARAMS]
    kind = _kind_of(key_type, ec_params)
    if not kind:
        raise HsmError(
            f"key {cka_id.hex()} is of a type the console does not use", "run `ceremony reconcile`"
        )
    return public_key_from_attributes(kind, _public_attrs(pub, kind))


_CLASS_WORDS: Final = {
    ObjectClass.PRIVATE_KEY: "private key",
    ObjectClass.PUBLIC_KEY: "public key",
    ObjectClass.SECRET_KEY: "secret key",
    ObjectClass.CERTIFICATE: "certificate",
    ObjectClass.DATA: "data",
}


def _inventory(session: Any, cka_id: bytes | None) -> list[HsmObject]:
    template = {} if cka_id is None else {Attribute.ID: cka_id}
    out: list[HsmObject] = []
    for obj in find_objects(session, template):
        base = obj.get_attributes([Attribute.CLASS, Attribute.LABEL, Attribute.ID])
        cls_ = base.get(Attribute.CLASS)
        key_type = None
        size = None
        bools: tuple[Attribute, ...] = ()
        if cls_ in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            bools = _PRIVATE_BOOLS if cls_ == ObjectClass.PRIVATE_KEY else _PUBLIC_BOOLS
            kt = obj[Attribute.KEY_TYPE]
            key_type = getattr(kt, "name", str(kt))
            if kt == KeyType.RSA:
                size = f"{int.from_bytes(bytes(obj[Attribute.MODULUS]), 'big').bit_length()}-bit"
            elif kt in (KeyType.EC, KeyType.EC_EDWARDS):
                size = curve_of(obj[Attribute.EC_PARAMS]) or "unknown curve"
        values = obj.get_attributes(list(bools)) if bools else {}
        out.append(
            HsmObject(
                label=str(base.get(Attribute.LABEL, "")),
                cka_id=bytes(base.get(Attribute.ID, b"")),
                object_class=_CLASS_WORDS.get(cls_, str(cls_)),
                key_type=key_type,
                size=size,
                attributes=tuple((a.name, bool(values[a])) for a in bools if a in values),
            )
        )
    return out

"""`Hsm`: the one object the console uses to reach a PKCS#11 token.

A thin facade. It takes `_pkcs11.LOCK` around every call, checks the caller's arguments, and
hands the work to the module that owns each concern:

* `_session.TokenSession`: the kept-alive session, login, PIN changes, reopening after a loss;
* `_objects`: generating key pairs, auditing them, finding keys, reading public keys;
* `_signing`: the mechanism for each algorithm, host hashing, the size of what comes back,
  and the `Signer` kept for a key's next signatures (see `Hsm.sign`);
* `_inventory`: listing the token's objects;
* `_destroy`: DANGER, destroying key pairs;
* `_support`: which algorithms the token can serve.

Operations that change the token (generate, destroy, C_SetPIN) are never repeated after a lost
session: their outcome is unknown, and the caller is told to reconcile.

Raises (every public method): `HsmError` subclasses from `console.errors`, never pkcs11 errors.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from functools import partial
from typing import TYPE_CHECKING, Final

import pkcs11.exceptions as p11e

from console import jose
from console.errors import (
    HsmError,
    HsmUnavailableError,
    KeyAuditError,
    MechanismNotSupportedError,
)
from console.hsm import _destroy, _inventory, _objects, _signing, uri
from console.hsm._pkcs11 import (
    CONNECTION_LOST,
    LOCK,
    RECONCILE_HINT,
    Modules,
    Pkcs11Library,
    translate,
)
from console.hsm._session import TokenSession
from console.hsm._support import support_table
from console.hsm.values import (
    Algorithm,
    GeneratedKey,
    HsmObject,
    KeyAudit,
    MechanismSupport,
    PublicKey,
    TokenInfo,
)

if TYPE_CHECKING:
    from pkcs11 import Object as P11Object
    from pkcs11 import Session as P11Session

NAMES_MAX_AGE: Final = 10.0
"""Seconds a listing of the token's labels and ids serves key generation (`_refuse_existing`)."""


class Hsm:
    """A handle on one token of one PKCS#11 module (see the module docstring).

    Build it with `Hsm.open`. Use it from any thread: every call is serialised by the
    module-level lock. `login_calls` counts the C_Login calls this handle made (the quorum tests
    assert that bad shares cause none); tests inject a fault-raising library with `_lib=`.
    """

    def __init__(self, token: TokenSession) -> None:
        self._token = token
        self._keys = _inventory.KeyCache()
        # (cka_id, alg, mechanism asked for) -> its resolved signer; see `sign`.
        self._signers: dict[tuple[bytes, str, jose.SignMechanism | None], _signing.Signer] = {}
        self._names: _inventory.TokenNames | None = None

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
            return cls(TokenSession.open(module, lib, token_label, token_serial))

    def close(self) -> None:
        """Log out and close the session. Safe to call twice; never raises for a dead device."""
        with LOCK:
            self._keys.clear()
            self._signers.clear()
            self._token.close()

    def __enter__(self) -> Hsm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        t = self._token
        state = "closed" if t.closed else ("logged in" if t.logged_in else "public")
        return f"<Hsm module={t.module!r} token={t.label!r} {state}>"

    @property
    def module(self) -> str:
        return self._token.module

    @property
    def logged_in(self) -> bool:
        return self._token.logged_in

    @property
    def network_path(self) -> bool:
        """True when the module is p11-kit's client (the token sits behind `p11-kit server`)."""
        return self._token.network_path

    @property
    def login_calls(self) -> int:
        return self._token.login_calls

    # --- token and PIN ---------------------------------------------------------------------

    def token_info(self) -> TokenInfo:
        """Fresh C_GetTokenInfo: label, serial, manufacturer, model, flags, PIN state."""
        with LOCK:
            return self._token.token_info()

    def login(self, pin: bytes) -> None:
        """Log in as the user. Reads the token flags first and never tries a PIN on its last try.

        Raises: PinLockedError (locked, or final try: no C_Login is made), PinIncorrectError,
        HsmError (already logged in on another handle), HsmUnavailableError.
        """
        with LOCK:
            self._token.login(pin)

    def logout(self) -> None:
        """End the login (C_Logout) and keep a public session open."""
        with LOCK:
            self._token.logout()

    def set_pin(self, old: bytes, new: bytes) -> None:
        """C_SetPIN on the logged-in R/W session; refuses on a final try like `login`."""
        with LOCK:
            self._token.set_pin(old, new)

    def set_so_pin(self, old: bytes, new: bytes) -> None:
        """C_SetPIN as the security officer (for rehearsal tokens whose SO PIN nobody keeps).

        Needs a handle that is not logged in as the user (login state is per token).
        """
        with LOCK:
            self._token.set_so_pin(old, new)

    # --- keys --------------------------------------------------------------------------------

    def random_id(self) -> bytes:
        """16 random bytes from the HSM's RNG, for a CKA_ID planned before generation."""
        with LOCK:
            rnd: bytes = self._token.run(
                "drawing a random id", lambda s: s.generate_random(_objects.CKA_ID_BYTES * 8)
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
        name = _objects.check_algorithm(alg)
        spec = jose.algorithm(name)
        bits = _objects.check_key_request(spec, label, rsa_bits, cka_id)
        with LOCK:
            t = self._token
            t.require_login("generating a key")
            support = self.mechanisms()[name]
            if not support.available:
                raise MechanismNotSupportedError(
                    support.note, "choose another algorithm for this keyset, or another token"
                )
            new_id = cka_id if cka_id is not None else self.random_id()
            self._refuse_existing(label, new_id)
            names, self._names = self._names, None  # back only once the pair passed its audit
            with LOCK.slow():
                pub, priv = t.run(
                    f"generating a {spec.name} key",
                    lambda s: _objects.generate(s, spec, bits, label, new_id),
                    mutating=True,
                )
            audit, public_key = self._audit_new_key(spec, label, pub, priv)
            if names is not None:
                names.labels[label] += 2
                names.ids[new_id] += 2
                self._names = names
            self._forget(new_id)
            self._keys.remember(
                new_id, _inventory.KeyRef(t.generation, priv, spec.key_kind, (bits + 7) // 8)
            )
            return GeneratedKey(
                label=label, cka_id=new_id, alg=name, public_key=public_key, audit=audit
            )

    def sign(
        self, cka_id: bytes, alg: str, data: bytes, *, mechanism: jose.SignMechanism | None = None
    ) -> bytes:
        """A JWS signature over `data` by the private key with `cka_id` (raw r||s for ES*).

        `mechanism` (one of the algorithm's `console.jose` mechanisms) is used instead of the
        token's preferred one: a signing service signs the way its `signer.json` says.

        The first signature with a key, algorithm and mechanism checks them all and keeps the
        result (`_signing.Signer`) for the session: the next ones are the lock, the token call
        and the size check (issue 16: within 10 % of python-pkcs11 alone, tests/bench/bench_hsm).

        Raises: ObjectNotFoundError, MechanismNotSupportedError, HsmError (key does not match
        the algorithm, or `mechanism` is not one of its mechanisms), HsmUnavailableError.
        """
        with LOCK:
            t = self._token
            try:
                signer = self._signers[cka_id, alg, mechanism]
            except (KeyError, TypeError):  # TypeError: an unhashable argument, refused below
                signer = None
            # A signer of the current generation means the session it was made in is open and
            # current (closing, logging in or out and reopening all start a new generation):
            # the checks of `TokenSession.run` before a first try hold, so try here, and let
            # the session recover from a failure (or translate it) exactly as `run` would.
            if signer is None or signer.generation != t.generation:
                return self._sign_first(cka_id, alg, data, mechanism)
            try:
                return signer.sign(data)
            except p11e.PKCS11Error as e:
                error = e
            return t.run_again(signer.doing, partial(self._sign_again, signer, data), error)

    def audit_key(self, cka_id: bytes, alg: str) -> KeyAudit:
        """Audit a key already on the token (attributes, unreadable private value, self-test):
        the check a key left by an interrupted ceremony must pass before it is adopted."""
        spec = jose.algorithm(_objects.check_algorithm(alg))
        with LOCK:
            t = self._token
            t.require_login("auditing a key")
            ref = t.run("finding the key", lambda s: self._key_for(s, cka_id, spec, "audit"))
            pub = t.run("finding the public key", lambda s: _inventory.find_public(s, cka_id))
            audit, _ = t.run(
                "auditing the key", lambda s: _objects.audit(s, spec, pub, ref.obj, t.offered)
            )
            return audit

    def public_key(self, cka_id: bytes) -> PublicKey:
        """The public half of the key pair `cka_id`, as a `cryptography` object."""
        with LOCK:
            return self._token.run(
                "reading a public key", lambda s: _objects.read_public(s, cka_id)
            )

    def public_keys(self, cka_ids: Collection[bytes]) -> dict[bytes, PublicKey]:
        """The public halves of the key pairs `cka_ids` that are on the token, read in one
        search (a reconciliation compares every key the ledger knows).

        Raises: ObjectNotFoundError (several public keys share a CKA_ID), HsmError.
        """
        with LOCK:
            return self._token.run(
                "reading the public keys", lambda s: _objects.read_publics(s, cka_ids)
            )

    def inventory(self) -> list[HsmObject]:
        """Every object this session can see (private ones only after login)."""
        with LOCK:
            return self._token.run(
                "listing the token's objects", lambda s: _inventory.inventory(s, None)
            )

    def find(self, cka_id: bytes) -> list[HsmObject]:
        """The objects with this CKA_ID (normally a private and a public key); may be empty."""
        with LOCK:
            return self._token.run("looking up a key", lambda s: _inventory.inventory(s, cka_id))

    def remove_unfinished(self, cka_id: bytes, label: str) -> list[HsmObject]:
        """DANGER: remove what an interrupted generation of (`cka_id`, `label`) left half-made;
        see `console.hsm._destroy.remove_unfinished`. A whole pair is never touched."""
        with LOCK:
            self._names = None
            try:
                return _destroy.remove_unfinished(self._token, cka_id, label)
            finally:
                self._forget(cka_id)

    def destroy_keypair(self, cka_id: bytes) -> None:
        """DANGER: destroy both halves of a key pair; see `console.hsm._destroy`."""
        with LOCK:
            self._names = None
            try:
                _destroy.destroy_keypair(self._token, cka_id)
            finally:
                self._forget(cka_id)

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
            t = self._token
            t.require_open()
            return support_table(t.offered, t.key_sizes, network_path=t.network_path)

    # --- internals (called with LOCK held) -----------------------------------------------------

    def _key_for(
        self, session: P11Session, cka_id: bytes, spec: jose.JoseAlgorithm, verb: str
    ) -> _inventory.KeyRef:
        """The private key `cka_id`, refused unless it is of the kind `spec` signs with."""
        t = self._token
        ref = self._keys.private_key(session, t.generation, cka_id, t.label)
        if ref.kind != spec.key_kind:
            raise HsmError(
                f"key {cka_id.hex()} is a {ref.kind or 'unknown'} key and cannot {verb} "
                f"{spec.name}",
                f"{verb} with the algorithm recorded for this key in the ledger",
            )
        return ref

    def _sign_first(
        self, cka_id: bytes, alg: str, data: bytes, mechanism: jose.SignMechanism | None
    ) -> bytes:
        """`sign` with every check made, keeping the `Signer` once it has signed."""
        name = _objects.check_algorithm(alg)
        spec = jose.algorithm(name)
        if mechanism is not None and mechanism not in spec.sign_mechanisms:
            raise HsmError(f"{mechanism.ckm} cannot make {spec.name} signatures",
                           f"use one of {', '.join(m.ckm for m in spec.sign_mechanisms)}")
        t = self._token
        if mechanism is not None:
            if _signing.pkcs11_mechanism(mechanism.name) not in t.offered:
                raise MechanismNotSupportedError(
                    f"the token does not offer {mechanism.ckm}",
                    "sign with a mechanism this token offers (`ceremony doctor` lists them)",
                )
            how: jose.SignMechanism | None = mechanism
        else:
            how = _signing.choose_mechanism(spec, t.offered)
        if how is None:
            raise MechanismNotSupportedError(
                self.mechanisms()[name].note, "choose another algorithm or token"
            )
        chosen = how

        def op(session: P11Session) -> bytes:
            signer = self._signer(session, cka_id, spec, chosen)
            sig = signer.sign(data)
            self._signers[cka_id, name, mechanism] = signer
            return sig

        sig: bytes = t.run(f"signing with {spec.name}", op)
        return sig

    def _sign_again(self, signer: _signing.Signer, data: bytes, session: P11Session) -> bytes:
        """`signer`'s signature; in a session `run` reopened, the key is found again first."""
        if signer.generation != self._token.generation:
            signer = self._signer(session, signer.cka_id, signer.spec, signer.how)
        return signer.sign(data)

    def _signer(self, session: P11Session, cka_id: bytes, spec: jose.JoseAlgorithm,
                how: jose.SignMechanism) -> _signing.Signer:
        ref = self._key_for(session, cka_id, spec, "sign")
        return _signing.Signer.prepare(ref.generation, cka_id, ref.obj, ref.rsa_bytes or None,
                                       spec, how)

    def _forget(self, cka_id: bytes) -> None:
        """Drop what is kept about the key pair `cka_id` (it is being destroyed)."""
        self._keys.forget(cka_id)
        for kept in [k for k in self._signers if k[0] == cka_id]:
            del self._signers[kept]

    def _refuse_existing(self, label: str, cka_id: bytes) -> None:
        """Refuse a label or CKA_ID already on the token (labels and ids are never reused).

        Checked against one listing of the token's names (`_inventory.TokenNames`) instead of
        two searches per key: a rotation of many keysets generated each key after two full
        scans of a growing token. The listing counts only in the session (and login) it was
        made in, and for `NAMES_MAX_AGE` seconds: within that, only this handle changes the
        token's objects during a ceremony (the workspace lock keeps other consoles out; signing
        services sign and never create), and this handle records what it generates and drops
        the listing when it destroys or when a generation fails.
        """
        t = self._token
        now = time.monotonic()
        names = self._names
        if names is None or names.generation != t.generation or \
                now - names.taken_at > NAMES_MAX_AGE:
            generation = t.generation
            names = t.run("checking for existing objects",
                          lambda s: _inventory.names(s, generation, now))
            self._names = names if names.generation == t.generation else None
        _objects.refuse_names(names.labels[label], names.ids[cka_id], label, cka_id)

    def _audit_new_key(
        self, spec: jose.JoseAlgorithm, label: str, pub: P11Object, priv: P11Object
    ) -> tuple[KeyAudit, PublicKey]:
        """Audit a key pair just generated; destroy it and raise KeyAuditError if it fails."""
        t = self._token
        try:
            audit, public_key = _objects.audit(t.session, spec, pub, priv, t.offered)
        except CONNECTION_LOST as e:
            t.drop_after_loss()
            raise HsmUnavailableError(
                f"the HSM went away while auditing new key {label!r}; it may exist unaudited "
                "on the token",
                RECONCILE_HINT,
            ) from e
        except p11e.PKCS11Error as e:
            problem = translate(e, "auditing the new key")
            _destroy.destroy_unaudited(pub, priv)
            raise KeyAuditError(
                f"new key {label!r} could not be audited ({problem.message}); it was destroyed",
                "run `ceremony doctor`; do not use this token for ceremonies until it passes",
            ) from e
        problems = audit.problems()
        if problems:
            destroyed = _destroy.destroy_unaudited(pub, priv)
            raise KeyAuditError(
                f"new key {label!r} failed its audit: {'; '.join(problems)}; "
                + ("it was destroyed" if destroyed else "DESTROYING IT FAILED, never use it"),
                "this token does not keep keys safe enough for a ceremony",
            )
        return audit, public_key

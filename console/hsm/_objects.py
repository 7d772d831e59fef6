"""Key pairs on the token: generating them, auditing them, reading their public halves.

* Generation: every private key is TOKEN, PRIVATE, SENSITIVE, not EXTRACTABLE and may only SIGN
  (no DECRYPT, UNWRAP, DERIVE); its public half may only VERIFY. Both carry the planned CKA_ID
  and CKA_LABEL, and a label or id already on the token is refused first (never reused).
* Audit: the attributes are read back from the token, the private value must be unreadable
  (AttributeSensitive), and a random message signed in the HSM must verify in software. An
  attribute the token does not report counts against the key (fail closed).
* Reading: public keys are rebuilt as pyca/cryptography objects from CKA_MODULUS and
  CKA_PUBLIC_EXPONENT, or from CKA_EC_POINT in the encodings tokens actually use.

Functions taking a `session` are called with `_pkcs11.LOCK` held, through `TokenSession.run`,
which translates the pkcs11 errors they let through. Finding objects is `_inventory`'s;
destroying them is `_destroy`'s.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

import pkcs11.exceptions as p11e
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass

from console import jose
from console.errors import (
    HsmError,
    MechanismNotSupportedError,
    ObjectExistsError,
    ObjectNotFoundError,
    UnknownAlgorithmError,
)
from console.hsm._inventory import EC_PARAMS, PRIVATE_BOOLS, find_public, kind_of
from console.hsm._pkcs11 import RECONCILE_HINT, find_objects
from console.hsm._signing import choose_mechanism, pkcs11_mechanism, sign, verify
from console.hsm.values import Algorithm, KeyAudit, PublicKey

if TYPE_CHECKING:
    from pkcs11 import Object as P11Object
    from pkcs11 import Session as P11Session

CKA_ID_BYTES: Final = 16
_MAX_LABEL: Final = 128

# --- checking a request (pure) ----------------------------------------------------------------


def check_algorithm(alg: str) -> Algorithm:
    """`alg` as a policy algorithm; an unknown one is a mechanism this console does not have."""
    try:
        return jose.check_algorithm(alg)
    except UnknownAlgorithmError as e:
        raise MechanismNotSupportedError(e.message, e.hint) from e


def check_key_request(
    spec: jose.JoseAlgorithm, label: str, rsa_bits: int | None, cka_id: bytes | None
) -> int:
    """Validate a key generation request before any PKCS#11 call; return the RSA size (or 0)."""
    if not label or len(label) > _MAX_LABEL or any(ord(c) < 0x20 or ord(c) == 0x7F for c in label):
        raise HsmError(
            "a key label must be 1 to 128 printable characters",
            "choose a label like 'api-prod-2027q1'",
        )
    bits = 0
    if spec.is_rsa:
        bits = jose.DEFAULT_RSA_BITS if rsa_bits is None else rsa_bits
        if bits not in jose.RSA_SIZES:
            raise HsmError(
                f"RSA key size {bits} is not allowed",
                f"use one of {', '.join(map(str, jose.RSA_SIZES))}",
            )
    elif rsa_bits is not None:
        raise HsmError(f"{spec.name} keys have no RSA size", "leave rsa_bits unset")
    if cka_id is not None and not 1 <= len(cka_id) <= 64:
        raise HsmError("a CKA_ID must be 1 to 64 bytes", "use Hsm.random_id()")
    return bits


# --- generating and auditing --------------------------------------------------------------------


def refuse_existing(session: P11Session, label: str, cka_id: bytes) -> None:
    """Raise ObjectExistsError if any object already has `label` or `cka_id`."""
    refuse_names(len(find_objects(session, {Attribute.LABEL: label})),
                 len(find_objects(session, {Attribute.ID: cka_id})), label, cka_id)


def refuse_names(n_label: int, n_id: int, label: str, cka_id: bytes) -> None:
    """Raise ObjectExistsError if `n_label` objects carry `label` or `n_id` carry `cka_id`."""
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


def generate(
    session: P11Session, spec: jose.JoseAlgorithm, bits: int, label: str, cka_id: bytes
) -> tuple[P11Object, P11Object]:
    """C_GenerateKeyPair for `spec` on the token; returns (public, private) key objects."""
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
        # python-pkcs11's defaults would add DERIVE (EC) or ENCRYPT/DECRYPT/WRAP/UNWRAP (RSA).
        "capabilities": MechanismFlag.SIGN | MechanismFlag.VERIFY,
        "private_template": private,
    }
    assert spec.keygen_mechanism is not None  # every policy algorithm has one (jose invariant)
    mechanism = pkcs11_mechanism(spec.keygen_mechanism)
    if spec.is_rsa:
        pub, priv = session.generate_keypair(
            KeyType.RSA, bits, mechanism=mechanism, public_template=public, **common
        )
        return pub, priv
    key_type = KeyType.EC_EDWARDS if spec.kty == "OKP" else KeyType.EC
    # CKA_EC_PARAMS names the curve; it belongs in the public template.
    curve = {**public, Attribute.EC_PARAMS: EC_PARAMS[spec.key_kind]}
    pub, priv = session.generate_keypair(
        key_type, mechanism=mechanism, public_template=curve, **common
    )
    return pub, priv


def audit(
    session: P11Session, spec: jose.JoseAlgorithm, pub: P11Object, priv: P11Object,
    offered: frozenset[int],
) -> tuple[KeyAudit, PublicKey]:
    """Read back a key pair's attributes, prove the private value unreadable, self-test it."""
    values = priv.get_attributes(list(PRIVATE_BOOLS))

    def flag(a: Attribute, default: bool) -> bool:
        v = values.get(a)
        return default if v is None else bool(v)

    secret_attr = Attribute.PRIVATE_EXPONENT if spec.is_rsa else Attribute.VALUE
    try:
        priv[secret_attr]
        readable = True
    except p11e.AttributeSensitive:
        readable = False
    public_key = public_key_from_attributes(spec.key_kind, _public_attrs(pub, spec.is_rsa))
    nonce = session.generate_random(256)
    how = choose_mechanism(spec, offered)
    self_test = False
    if how is not None:
        sig = sign(priv, spec, how, nonce)
        try:
            verify(public_key, spec, nonce, sig)
            self_test = True
        except InvalidSignature:
            self_test = False
    # The defaults are the unsafe answer: an attribute the token would not report fails.
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
    return audit, public_key


# --- reading public keys --------------------------------------------------------------------------


def read_public(session: P11Session, cka_id: bytes) -> PublicKey:
    """The public key with `cka_id` as a pyca/cryptography object."""
    return _public_of(find_public(session, cka_id), cka_id)


def read_publics(session: P11Session, cka_ids: Collection[bytes]) -> dict[bytes, PublicKey]:
    """The public keys with these CKA_IDs, found in one search of every public key (instead
    of a search per key); a CKA_ID with no public key is left out.

    Raises:
        ObjectNotFoundError: several public keys share one of the CKA_IDs (as `read_public`).
        HsmError: one is of a type the console does not use.
    """
    wanted = set(cka_ids)
    by_id: dict[bytes, list[P11Object]] = {}
    for obj in find_objects(session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY}):
        cka_id = bytes(obj[Attribute.ID])
        if cka_id in wanted:
            by_id.setdefault(cka_id, []).append(obj)
    out: dict[bytes, PublicKey] = {}
    for cka_id, found in by_id.items():
        if len(found) != 1:
            raise ObjectNotFoundError(
                f"{len(found)} public key(s) with CKA_ID {cka_id.hex()}",
                "run `ceremony reconcile` to compare the token with the ledger",
            )
        out[cka_id] = _public_of(found[0], cka_id)
    return out


def _public_of(pub: P11Object, cka_id: bytes) -> PublicKey:
    key_type = pub[Attribute.KEY_TYPE]
    ec_params = None if key_type == KeyType.RSA else pub[Attribute.EC_PARAMS]
    kind = kind_of(key_type, ec_params)
    if not kind:
        raise HsmError(
            f"key {cka_id.hex()} is of a type the console does not use", "run `ceremony reconcile`"
        )
    return public_key_from_attributes(kind, _public_attrs(pub, kind == "RSA"))


def public_key_from_attributes(kind: str, attrs: Mapping[Attribute, object]) -> PublicKey:
    """Build a pyca/cryptography public key from a public key object's attributes."""
    if kind == "RSA":
        n = attrs[Attribute.MODULUS]
        e = attrs[Attribute.PUBLIC_EXPONENT]
        n_int = _big_integer(n)
        e_int = _big_integer(e)
        return rsa.RSAPublicNumbers(e_int, n_int).public_key()
    point = attrs[Attribute.EC_POINT]
    if not isinstance(point, bytes):
        raise HsmError(f"the token returned a malformed {kind} public key", RECONCILE_HINT)
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


def _public_attrs(pub: P11Object, is_rsa: bool) -> dict[Attribute, object]:
    if is_rsa:
        return {
            Attribute.MODULUS: pub[Attribute.MODULUS],
            Attribute.PUBLIC_EXPONENT: pub[Attribute.PUBLIC_EXPONENT],
        }
    return {Attribute.EC_POINT: pub[Attribute.EC_POINT]}


def _big_integer(value: object) -> int:
    """An RSA modulus or exponent as python-pkcs11 returns it (bytes, big-endian, or an int)."""
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    raise HsmError("the token returned a malformed RSA public key", RECONCILE_HINT)


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

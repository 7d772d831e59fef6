"""Searching the token: naming what is on it, finding keys, and the inventory.

* Naming: the key kind of an object (`JoseAlgorithm.key_kind`: "RSA", "P-256", "P-384",
  "Ed25519") from its CKA_KEY_TYPE and CKA_EC_PARAMS, and the boolean attributes the audit and
  the inventory read.
* Finding: private key handles are cached per CKA_ID in a `KeyCache`, valid only in the session
  generation they were found in (`TokenSession.generation`); a public key is found by CKA_ID.
* Inventory: every object a session can see, as public `HsmObject` values. Reconciliation
  compares it with the ledger, so it reports what the token says and judges nothing; it never
  reads a private value. Private objects are visible only after login.
* Names: the CKA_LABELs and CKA_IDs on the token, read in one search (`TokenNames`), which key
  generation checks a new key's label and id against instead of searching for each.

Functions taking a `session` are called with `_pkcs11.LOCK` held, through `TokenSession.run`,
which translates the pkcs11 errors they let through.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from pkcs11 import Attribute, KeyType, ObjectClass

from console.errors import HsmError, ObjectNotFoundError
from console.hsm._pkcs11 import find_objects, find_objects_counting
from console.hsm.values import HsmObject

if TYPE_CHECKING:
    from pkcs11 import Object as P11Object
    from pkcs11 import Session as P11Session

# CKA_EC_PARAMS per key kind: the DER OID of the named curve. Some tokens spell Ed25519 as the
# printable string "edwards25519" instead; both are read, the OID is written.
EC_PARAMS: Final[dict[str, bytes]] = {
    "P-256": bytes.fromhex("06082a8648ce3d030107"),
    "P-384": bytes.fromhex("06052b81040022"),
    "Ed25519": bytes.fromhex("06032b6570"),
}
_ED25519_NAMES: Final = (EC_PARAMS["Ed25519"], bytes.fromhex("130c") + b"edwards25519")

# The boolean attributes audited on private keys and listed by the inventory.
PRIVATE_BOOLS: Final = (
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
PUBLIC_BOOLS: Final = (
    Attribute.TOKEN,
    Attribute.PRIVATE,
    Attribute.LOCAL,
    Attribute.VERIFY,
    Attribute.ENCRYPT,
    Attribute.WRAP,
    Attribute.MODIFIABLE,
)


# --- key kinds ----------------------------------------------------------------------------------


def curve_of(ec_params: bytes) -> str | None:
    """"P-256", "P-384" or "Ed25519" for a CKA_EC_PARAMS value, None for any other curve."""
    if ec_params in _ED25519_NAMES:
        return "Ed25519"
    for kind in ("P-256", "P-384"):
        if ec_params == EC_PARAMS[kind]:
            return kind
    return None


def kind_of(key_type: object, ec_params: bytes | None) -> str:
    """The key's `JoseAlgorithm.key_kind` ("RSA", "P-256", ...), "" if the console has none."""
    if key_type == KeyType.RSA:
        return "RSA"
    if key_type in (KeyType.EC, KeyType.EC_EDWARDS) and ec_params is not None:
        return curve_of(ec_params) or ""
    return ""


# --- finding private keys -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A private key found in one session; valid only while `generation` is current."""

    generation: int
    obj: P11Object  # a pkcs11 PrivateKey in the session of that generation
    kind: str  # "RSA", "P-256", "P-384", "Ed25519", or "" if unknown
    rsa_bytes: int  # modulus length in bytes for RSA, else 0


class KeyCache:
    """Private key handles by CKA_ID. A handle from an older session generation is dead."""

    def __init__(self) -> None:
        self._refs: dict[bytes, KeyRef] = {}

    def remember(self, cka_id: bytes, ref: KeyRef) -> None:
        self._refs[cka_id] = ref

    def forget(self, cka_id: bytes) -> None:
        self._refs.pop(cka_id, None)

    def clear(self) -> None:
        self._refs.clear()

    def private_key(self, session: P11Session, generation: int, cka_id: bytes,
                    token: str) -> KeyRef:
        """The one private key with `cka_id` (cached, or searched for in `session`)."""
        ref = self._refs.get(cka_id)
        if ref is not None and ref.generation == generation:
            return ref
        found = find_objects(
            session, {Attribute.ID: cka_id, Attribute.CLASS: ObjectClass.PRIVATE_KEY}
        )
        if not found:
            raise ObjectNotFoundError(
                f"no private key with CKA_ID {cka_id.hex()} on token {token!r}",
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
        ref = KeyRef(generation, obj, kind_of(key_type, ec_params), rsa_bytes)
        self._refs[cka_id] = ref
        return ref


# --- finding public keys, and the inventory ----------------------------------------------------


def find_public(session: P11Session, cka_id: bytes) -> P11Object:
    """The one public key object with `cka_id`."""
    found = find_objects(session, {Attribute.ID: cka_id, Attribute.CLASS: ObjectClass.PUBLIC_KEY})
    if len(found) != 1:
        raise ObjectNotFoundError(
            f"{'no' if not found else len(found)} public key(s) with CKA_ID {cka_id.hex()}",
            "run `ceremony reconcile` to compare the token with the ledger",
        )
    return found[0]


_CLASS_WORDS: Final[dict[object, str]] = {
    ObjectClass.PRIVATE_KEY: "private key",
    ObjectClass.PUBLIC_KEY: "public key",
    ObjectClass.SECRET_KEY: "secret key",
    ObjectClass.CERTIFICATE: "certificate",
    ObjectClass.DATA: "data",
}


def inventory(session: P11Session, cka_id: bytes | None) -> list[HsmObject]:
    """Every object in `session`, or only those with `cka_id`."""
    template = {} if cka_id is None else {Attribute.ID: cka_id}
    found, unreadable = find_objects_counting(session, template)
    return [describe(obj) for obj in found] + [UNREADABLE_OBJECT] * unreadable


UNREADABLE_OBJECT: Final = HsmObject(label="", cka_id=b"", object_class="unreadable",
                                     key_type=None, size=None, attributes=())
"""An object the token lists but cannot describe (not even its class): no key, nothing the
console made or can use (see `_pkcs11.UNREADABLE`). Inventory shows it; reconciliation, which
compares keys, passes it by."""


def describe(obj: P11Object) -> HsmObject:
    base = obj.get_attributes([Attribute.CLASS, Attribute.LABEL, Attribute.ID])
    cls_ = base.get(Attribute.CLASS)
    key_type = None
    size = None
    bools: tuple[Attribute, ...] = ()
    if cls_ in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        bools = PRIVATE_BOOLS if cls_ == ObjectClass.PRIVATE_KEY else PUBLIC_BOOLS
        kt = obj[Attribute.KEY_TYPE]
        key_type = getattr(kt, "name", str(kt))
        if kt == KeyType.RSA:
            size = f"{int.from_bytes(bytes(obj[Attribute.MODULUS]), 'big').bit_length()}-bit"
        elif kt in (KeyType.EC, KeyType.EC_EDWARDS):
            size = curve_of(obj[Attribute.EC_PARAMS]) or "unknown curve"
    values = obj.get_attributes(list(bools)) if bools else {}
    return HsmObject(
        label=str(base.get(Attribute.LABEL, "")),
        cka_id=bytes(base.get(Attribute.ID, b"")),
        object_class=_CLASS_WORDS.get(cls_, str(cls_)),
        key_type=key_type,
        size=size,
        attributes=tuple((a.name, bool(values[a])) for a in bools if a in values),
    )


# --- names ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class TokenNames:
    """How many objects carry each CKA_LABEL and CKA_ID, as one search of a logged-in session
    saw them at `taken_at` (monotonic seconds), kept current by the generations this handle
    made since; valid only in session `generation` (see `Hsm._refuse_existing`)."""

    generation: int
    taken_at: float
    labels: Counter[str] = field(default_factory=Counter)
    ids: Counter[bytes] = field(default_factory=Counter)


def names(session: P11Session, generation: int, taken_at: float) -> TokenNames:
    """Every object's CKA_LABEL and CKA_ID, in one search (unreadable objects have neither)."""
    found, _unreadable = find_objects_counting(session, {})
    out = TokenNames(generation, taken_at)
    for obj in found:
        base = obj.get_attributes([Attribute.LABEL, Attribute.ID])
        out.labels[str(base.get(Attribute.LABEL, ""))] += 1
        out.ids[bytes(base.get(Attribute.ID, b""))] += 1
    return out

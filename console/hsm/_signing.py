"""Signing on the token: which mechanism, what the host hashes, and checking the result.

The vocabulary (which mechanisms an algorithm may use, in which order, and whether the host
hashes first) is `console.jose`'s; this module maps its mechanism names to python-pkcs11 values
and does the work:

* `choose_mechanism`: the first of the algorithm's mechanisms the token offers;
* `sign`: one signature with a private key object, hashing on the host when the mechanism says
  so and passing the PSS parameters (hash, MGF1 with the same hash, salt = hash length; python-
  pkcs11's default for PSS is SHA-1, which SoftHSM2 rejects with ArgumentsBad);
* `Signer`: one key's signatures with one algorithm and mechanism, resolved once and checked
  each time: a token must return exactly the JWS size (raw `r||s` for ES*, never DER), or its
  signatures are not JWS-ready;
* `verify_jws_signature` (public as `console.hsm.verify_jws_signature`) and `verify`: the
  software check (pyca/cryptography) of the self-test every new key passes.

Called with `_pkcs11.LOCK` held; pkcs11 errors pass through to `TokenSession.run` (or
`run_again`), which translates them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import MGF, Mechanism

from console import jose
from console.errors import HsmError
from console.hsm.values import Algorithm, PublicKey

if TYPE_CHECKING:
    from hashlib import _Hash

    from pkcs11 import Object as P11Object
    from pkcs11.types import SignMixin

PssParams: TypeAlias = "tuple[Mechanism, MGF, int]"
"""CK_RSA_PKCS_PSS_PARAMS as python-pkcs11 takes it: hash, MGF1 function, salt length."""

# hashlib name -> (PKCS#11 hash mechanism, MGF1 function) for CK_RSA_PKCS_PSS_PARAMS.
_PSS_HASH: Final[dict[str, tuple[Mechanism, MGF]]] = {
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}
# hashlib name -> its constructor (faster than `hashlib.new(name)` on every signature).
_HOST_HASHES: Final[dict[str, Callable[[bytes], _Hash]]] = {
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
# hashlib name -> the same hash in pyca/cryptography, for software verification.
_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def pkcs11_mechanism(name: str) -> Mechanism:
    """python-pkcs11's value for a `console.jose` mechanism name (e.g. "ECDSA")."""
    return Mechanism[name]


def describe(spec: jose.JoseAlgorithm, how: jose.SignMechanism) -> str:
    """How `spec` is signed with `how`, for an officer (`ceremony doctor`, MechanismSupport)."""
    hash_text = (spec.hash_name or "").upper().replace("SHA", "SHA-")
    if how.host_hashes:
        return f"{how.ckm} on a host {hash_text} digest"
    if spec.scheme == "RSASSA-PSS":
        return f"{how.ckm} ({hash_text}, MGF1-{hash_text}, salt {spec.digest_size})"
    return how.ckm


def choose_mechanism(
    spec: jose.JoseAlgorithm, offered: frozenset[int]
) -> jose.SignMechanism | None:
    """The first of `spec`'s mechanisms, in its order of preference, that the token offers."""
    for how in spec.sign_mechanisms:
        if pkcs11_mechanism(how.name) in offered:
            return how
    return None


def sign(priv: P11Object, spec: jose.JoseAlgorithm, how: jose.SignMechanism, data: bytes) -> bytes:
    """A JWS signature over `data` by the python-pkcs11 private key `priv`, as the token made it."""
    mechanism, param, prehash = _call(spec, how)
    payload = data if prehash is None else prehash(data).digest()
    # A private key found with CKA_CLASS=PRIVATE_KEY (or just generated) is a signing key.
    return bytes(cast("SignMixin", priv).sign(payload, mechanism=mechanism, mechanism_param=param))


@dataclass(frozen=True, slots=True)
class Signer:
    """One private key signing with one algorithm and mechanism, everything resolved once.

    A ceremony and a signing service sign many times with the same key: the algorithm check,
    the mechanism's python-pkcs11 value and parameters, the host hash and the exact signature
    size are worked out when the key is first used (`prepare`), so that `sign` is the token call
    and the size check alone. Valid only while the session `generation` it was made in is
    current: its key handle dies with the session.
    """

    generation: int
    cka_id: bytes
    spec: jose.JoseAlgorithm
    how: jose.SignMechanism
    doing: str  # what the signature is, in an error message
    key_sign: Callable[..., bytes]  # the private key's python-pkcs11 `sign`
    mechanism: Mechanism
    param: PssParams | None
    prehash: Callable[[bytes], _Hash] | None  # the host's hash, when the mechanism wants a digest
    size: int  # the one length a JWS signature from this key has

    @classmethod
    def prepare(cls, generation: int, cka_id: bytes, priv: P11Object,
                rsa_modulus_bytes: int | None, spec: jose.JoseAlgorithm,
                how: jose.SignMechanism) -> Signer:
        """The signer of `priv` (the private key `cka_id`, found in session `generation`); the
        caller has checked that it is a key of `spec`'s kind and that the token offers `how`.

        Raises: HsmError (an RSA key whose modulus the token does not report).
        """
        mechanism, param, prehash = _call(spec, how)
        try:
            size = spec.signature_size(rsa_modulus_bytes=rsa_modulus_bytes)
        except ValueError as e:
            raise HsmError(
                f"the token reports no modulus for RSA key {cka_id.hex()}",
                "run `ceremony doctor`; this token's keys cannot be checked",
            ) from e
        # A private key found with CKA_CLASS=PRIVATE_KEY (or just generated) is a signing key.
        key_sign = cast("SignMixin", priv).sign
        return cls(generation, cka_id, spec, how, f"signing with {spec.name}", key_sign,
                   mechanism, param, prehash, size)

    def sign(self, data: bytes) -> bytes:
        """A JWS signature over `data` (raw r||s for ES*), exactly the size a JWS needs.

        Raises: HsmError (the token returned another size); pkcs11 errors pass through.
        """
        payload = data if self.prehash is None else self.prehash(data).digest()
        sig = bytes(self.key_sign(payload, mechanism=self.mechanism, mechanism_param=self.param))
        if len(sig) != self.size:
            raise _size_error(self.spec, sig)
        return sig


def _call(
    spec: jose.JoseAlgorithm, how: jose.SignMechanism
) -> tuple[Mechanism, PssParams | None, Callable[[bytes], _Hash] | None]:
    """python-pkcs11's mechanism and parameters for signing `spec` with `how`, and the host
    hash to apply first (None: the token gets the whole signing input)."""
    prehash = None
    if how.host_hashes:
        assert spec.hash_name is not None  # jose: only EdDSA has no hash, and it never host-hashes
        prehash = _HOST_HASHES[spec.hash_name]
    param = None
    if spec.scheme == "RSASSA-PSS":
        assert spec.hash_name is not None and spec.digest_size is not None
        hash_mech, mgf = _PSS_HASH[spec.hash_name]
        param = (hash_mech, mgf, spec.digest_size)
    return pkcs11_mechanism(how.name), param, prehash


def _size_error(spec: jose.JoseAlgorithm, signature: bytes) -> HsmError:
    return HsmError(
        f"the token returned a {len(signature)}-byte {spec.name} signature",
        "run `ceremony doctor`; this token's signatures are not JWS-ready",
    )


def verify_jws_signature(public_key: PublicKey, alg: Algorithm, data: bytes, sig: bytes) -> None:
    """Check a JWS signature in software (pyca/cryptography).

    Raises: cryptography's InvalidSignature (the signature does not verify, or the key is not of
    the type the algorithm needs), UnknownAlgorithmError (`alg` is not a policy algorithm).
    """
    verify(public_key, jose.algorithm(alg), data, sig)


def verify(public_key: PublicKey, spec: jose.JoseAlgorithm, data: bytes, sig: bytes) -> None:
    """`verify_jws_signature` for an algorithm already looked up."""
    if spec.scheme == "EdDSA":
        if not isinstance(public_key, ed25519.Ed25519PublicKey):
            raise _wrong_key_type(spec)
        public_key.verify(sig, data)
        return
    assert spec.hash_name is not None and spec.digest_size is not None  # jose row invariant
    digest = _HASHES[spec.hash_name]()
    if spec.scheme == "ECDSA":
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise _wrong_key_type(spec)
        half = len(sig) // 2  # raw r||s (RFC 7518 section 3.4); cryptography wants DER
        der = encode_dss_signature(
            int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")
        )
        public_key.verify(der, data, ec.ECDSA(digest))
        return
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise _wrong_key_type(spec)
    pad: padding.AsymmetricPadding = (
        padding.PSS(mgf=padding.MGF1(_HASHES[spec.hash_name]()), salt_length=spec.digest_size)
        if spec.scheme == "RSASSA-PSS"
        else padding.PKCS1v15()
    )
    public_key.verify(sig, data, pad, digest)


def _wrong_key_type(spec: jose.JoseAlgorithm) -> InvalidSignature:
    return InvalidSignature(f"only a {spec.key_kind} key can verify an {spec.name} signature")

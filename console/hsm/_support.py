"""Which JWS algorithms a token can serve, and through which PKCS#11 mechanisms.

Shared by `Hsm.mechanisms()` and `ceremony doctor`. The rules, per algorithm:

* RS256: `CKM_SHA256_RSA_PKCS` (hashing in the HSM).
* PS256: `CKM_SHA256_RSA_PKCS_PSS` with (SHA-256, MGF1-SHA-256, salt 32); when the token does not
  offer it (p11-kit 0.24's RPC layer cannot carry its parameters and drops it from the list), the
  host hashes and the HSM runs `CKM_RSA_PKCS_PSS` on the digest: same signature, same key.
* ES256 / ES384: the host hashes and the HSM runs `CKM_ECDSA`; its raw `r||s` output is exactly
  the JWS signature (RFC 7518 section 3.4). SoftHSM2 has no `CKM_ECDSA_SHA256`.
* EdDSA: `CKM_EDDSA` with Ed25519 keys from `CKM_EC_EDWARDS_KEY_PAIR_GEN`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from pkcs11 import Mechanism

from console.hsm._pkcs11 import mechanism_name
from console.hsm.values import ALGORITHMS, Algorithm, MechanismSupport

# alg -> (key generation mechanism, minimum key size in the unit the token reports)
_KEYGEN: Final[dict[Algorithm, tuple[Mechanism, int]]] = {
    "RS256": (Mechanism.RSA_PKCS_KEY_PAIR_GEN, 2048),
    "PS256": (Mechanism.RSA_PKCS_KEY_PAIR_GEN, 2048),
    "ES256": (Mechanism.EC_KEY_PAIR_GEN, 256),
    "ES384": (Mechanism.EC_KEY_PAIR_GEN, 384),
    "EdDSA": (Mechanism.EC_EDWARDS_KEY_PAIR_GEN, 255),
}

# alg -> sign mechanisms in order of preference, each with how it is used
_SIGN: Final[dict[Algorithm, tuple[tuple[Mechanism, str], ...]]] = {
    "RS256": ((Mechanism.SHA256_RSA_PKCS, "CKM_SHA256_RSA_PKCS"),),
    "PS256": (
        (Mechanism.SHA256_RSA_PKCS_PSS, "CKM_SHA256_RSA_PKCS_PSS (SHA-256, MGF1-SHA-256, salt 32)"),
        (Mechanism.RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS on a host SHA-256 digest"),
    ),
    "ES256": ((Mechanism.ECDSA, "CKM_ECDSA on a host SHA-256 digest"),),
    "ES384": ((Mechanism.ECDSA, "CKM_ECDSA on a host SHA-384 digest"),),
    "EdDSA": ((Mechanism.EDDSA, "CKM_EDDSA"),),
}

KeySizes = Callable[[int], tuple[int, int] | None]  # mechanism -> (min, max) or None if unknown


def sign_mechanism(alg: Algorithm, offered: frozenset[int]) -> Mechanism | None:
    """The mechanism `Hsm.sign` uses for `alg` on a token offering `offered`, if any."""
    for mech, _ in _SIGN[alg]:
        if mech in offered:
            return mech
    return None


def support(
    alg: Algorithm, offered: frozenset[int], key_sizes: KeySizes, *, network_path: bool
) -> MechanismSupport:
    keygen, min_size = _KEYGEN[alg]
    missing: list[str] = []
    keygen_ok = keygen in offered
    if not keygen_ok:
        missing.append(mechanism_name(keygen))
    chosen = next(((m, how) for m, how in _SIGN[alg] if m in offered), None)
    if chosen is None:
        missing.extend(mechanism_name(m) for m, _ in _SIGN[alg])
    size_problem = ""
    if keygen_ok:
        sizes = key_sizes(keygen)
        if sizes is not None and sizes[1] and sizes[1] < min_size:
            size_problem = f"the token's largest {alg} key is {sizes[1]} bits"
    available = keygen_ok and chosen is not None and not size_problem
    if available:
        assert chosen is not None
        note = f"{alg}: offered, signing with {chosen[1]}"
        if alg == "PS256" and chosen[0] == Mechanism.RSA_PKCS_PSS:
            note += " (the token does not offer CKM_SHA256_RSA_PKCS_PSS)"
    elif size_problem:
        note = f"{alg}: not usable ({size_problem})"
    else:
        note = f"{alg}: not offered by this token (missing {', '.join(missing)})"
        if network_path and alg == "EdDSA":
            note = (
                "EdDSA: not offered by this token (the p11-kit network path does not carry Ed25519)"
            )
    return MechanismSupport(
        alg=alg,
        available=available,
        keygen_mechanism=mechanism_name(keygen) if keygen_ok else None,
        sign_mechanism=chosen[1] if chosen is not None else None,
        missing=tuple(missing),
        note=note,
    )


def support_table(
    offered: frozenset[int], key_sizes: KeySizes, *, network_path: bool
) -> dict[Algorithm, MechanismSupport]:
    return {alg: support(alg, offered, key_sizes, network_path=network_path) for alg in ALGORITHMS}

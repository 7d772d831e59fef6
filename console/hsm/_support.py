"""Which JWS algorithms a token can serve, and through which PKCS#11 mechanisms.

Shared by `Hsm.mechanisms()` and `ceremony doctor`. The mechanisms per algorithm, their order of
preference and whether the host hashes first are `console.jose`'s rows (see its docstring for
why: SoftHSM2 has no `CKM_ECDSA_SHA256`, p11-kit 0.24 cannot forward `CKM_SHA256_RSA_PKCS_PSS`).
This module adds what only a token can tell: whether it lists those mechanisms, and whether the
key sizes it reports are large enough.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from console import jose
from console.hsm._pkcs11 import mechanism_name
from console.hsm._signing import choose_mechanism, describe, pkcs11_mechanism
from console.hsm.values import ALGORITHMS, Algorithm, MechanismSupport

# The smallest key a keyset may ask for, per key kind, in the unit tokens report in
# CK_MECHANISM_INFO (bits; Ed25519's field is 255 bits, and SoftHSM2 reports 256).
_MIN_KEY_SIZE: Final[dict[str, int]] = {
    "RSA": jose.MIN_RSA_BITS,
    "P-256": 256,
    "P-384": 384,
    "Ed25519": 255,
}

KeySizes = Callable[[int], tuple[int, int] | None]  # mechanism -> (min, max) or None if unknown


def support(
    alg: Algorithm, offered: frozenset[int], key_sizes: KeySizes, *, network_path: bool
) -> MechanismSupport:
    spec = jose.algorithm(alg)
    assert spec.keygen_mechanism is not None  # every policy algorithm has one (jose invariant)
    keygen = pkcs11_mechanism(spec.keygen_mechanism)
    missing: list[str] = []
    keygen_ok = keygen in offered
    if not keygen_ok:
        missing.append(mechanism_name(keygen))
    chosen = choose_mechanism(spec, offered)
    if chosen is None:
        missing.extend(how.ckm for how in spec.sign_mechanisms)
    size_problem = ""
    if keygen_ok:
        sizes = key_sizes(keygen)
        if sizes is not None and sizes[1] and sizes[1] < _MIN_KEY_SIZE[spec.key_kind]:
            size_problem = f"the token's largest {alg} key is {sizes[1]} bits"
    if keygen_ok and chosen is not None and not size_problem:
        note = f"{alg}: offered, signing with {describe(spec, chosen)}"
        if chosen != spec.sign_mechanisms[0]:
            note += f" (the token does not offer {spec.sign_mechanisms[0].ckm})"
    elif size_problem:
        note = f"{alg}: not usable ({size_problem})"
    elif network_path and alg == "EdDSA":
        note = "EdDSA: not offered by this token (the p11-kit network path does not carry Ed25519)"
    else:
        note = f"{alg}: not offered by this token (missing {', '.join(missing)})"
    return MechanismSupport(
        alg=alg,
        available=keygen_ok and chosen is not None and not size_problem,
        keygen_mechanism=mechanism_name(keygen) if keygen_ok else None,
        sign_mechanism=describe(spec, chosen) if chosen is not None else None,
        missing=tuple(missing),
        note=note,
    )


def support_table(
    offered: frozenset[int], key_sizes: KeySizes, *, network_path: bool
) -> dict[Algorithm, MechanismSupport]:
    return {alg: support(alg, offered, key_sizes, network_path=network_path) for alg in ALGORITHMS}

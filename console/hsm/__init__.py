"""PKCS#11: the console's only way to a token (sessions, keygen, signing, inventory, destroy).

`Hsm` is the facade; the value types it returns carry no PKCS#11 objects. python-pkcs11 is
confined to the private modules (`_pkcs11`, `_hsm`, `_support`, `_destroy`); every error they
meet reaches callers as a `console.errors.HsmError` subclass. `console.hsm.doctor` explains
what a machine's modules and tokens can do.
"""

from __future__ import annotations

from console.hsm._hsm import Hsm, verify_jws_signature
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

__all__ = [
    "ALGORITHMS",
    "DEFAULT_RSA_BITS",
    "RSA_SIZES",
    "Algorithm",
    "GeneratedKey",
    "Hsm",
    "HsmObject",
    "KeyAudit",
    "MechanismSupport",
    "PinState",
    "PublicKey",
    "TokenInfo",
    "verify_jws_signature",
]

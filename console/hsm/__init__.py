"""PKCS#11: the console's only way to a token (sessions, keygen, signing, inventory, destroy).

`Hsm` is the facade; the value types it returns carry no PKCS#11 objects. python-pkcs11 is
confined to the private modules, one per concern:

    _pkcs11     the process-wide lock, module loading, pkcs11 error translation
    _token      finding a token, its flags and PIN state
    _session    the kept-alive session: login, PIN changes, reopening after a loss
    _objects    key generation, attribute audit, finding keys, reading public keys
    _signing    mechanism choice, host hashing, signature checks
    _inventory  listing the token's objects
    _destroy    DANGER: destroying key pairs
    _support    which JWS algorithms a token can serve
    _hsm        `Hsm`, the facade over all of them

Every error they meet reaches callers as a `console.errors.HsmError` subclass. The algorithm
vocabulary is `console.jose`'s. `console.hsm.doctor` explains what a machine's modules and
tokens can do.
"""

from __future__ import annotations

from console.hsm._hsm import Hsm
from console.hsm._signing import verify_jws_signature
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

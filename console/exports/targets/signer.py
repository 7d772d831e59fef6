"""`signer.json`: what the token-signing service needs to sign with the active key.

Exactly these members (format `v: 1`; `ceremony sign-token` and other signing services read
them by these names, and refuse a file with members they do not know):

- `iss`: the keyset's issuer, the `iss` of every token signed with this key;
- `alg`, `kid`: the active key's JWS algorithm and RFC 7638 thumbprint;
- `pkcs11_uri`: the RFC 7512 URI of its private key on the token (never a PIN attribute);
- `mechanism`: the PKCS#11 mechanism to sign with (`CKM_…`, from `console.jose`;
  `portable_mechanism` says which one and why);
- `host_hash`: null when the token hashes, else the hash the host applies first (`sha256`,
  `sha384`): SoftHSM2 has no `CKM_ECDSA_SHA256`, so ES* hash on the host, and PS256 is a host
  SHA-256 digest signed with `CKM_RSA_PKCS_PSS` (parameters: SHA-256, MGF1-SHA-256, salt 32);
- `valid_from`: RFC 3339, the bundle's issue time. The signer must not sign with this key
  before then: consumers learn the key from this bundle.
"""

from __future__ import annotations

from console import jose
from console.clock import format_time
from console.errors import TargetLintError
from console.exports.targets._common import (
    ShapeInput,
    Target,
    TargetFile,
    TargetInput,
    json_bytes,
)

NAME = "signer.json"
FORMAT = 1


def portable_mechanism(alg: str) -> jose.SignMechanism:
    """The mechanism a signing service uses for `alg`: the host-hashing one when
    `console.jose` lists one, else the only one.

    Why not the token's first choice: the service may reach the token through `p11-kit
    server`, and p11-kit 0.24 cannot forward `CKM_SHA256_RSA_PKCS_PSS`; a SHA-256 digest made
    on the host and signed with `CKM_RSA_PKCS_PSS` (hash SHA-256, MGF1-SHA-256, salt 32 bytes)
    is the same PS256 signature and works on SoftHSM2 directly too. ES* have no choice:
    SoftHSM2 2.6 offers no `CKM_ECDSA_SHA256`, so the host hashes and the token runs
    `CKM_ECDSA`.
    """
    mechanisms = jose.algorithm(alg).sign_mechanisms
    return next((m for m in mechanisms if m.host_hashes), mechanisms[0])


def lint_shape(shape: ShapeInput, target: Target | None = None) -> None:
    """Which key is active, and where it lives, is known only when the bundle is written."""


def lint(inp: TargetInput, target: Target | None = None) -> None:
    if inp.active_kid is None or inp.pkcs11_uri is None:
        raise TargetLintError("signer.json needs the active kid and its PKCS#11 URI", "")
    if not inp.pkcs11_uri.startswith("pkcs11:") or any(c.isspace() for c in inp.pkcs11_uri):
        raise TargetLintError(
            f"{inp.pkcs11_uri!r} is not an RFC 7512 PKCS#11 URI", "it must start with 'pkcs11:'"
        )
    if "pin-value" in inp.pkcs11_uri or "pin-source" in inp.pkcs11_uri:
        raise TargetLintError("the PKCS#11 URI carries a PIN attribute", "never export a PIN")
    if not any(k["kid"] == inp.active_kid for k in inp.keys):
        raise TargetLintError(
            f"active kid {inp.active_kid} is not in the published key set",
            "a key must be published before it signs",
        )
    if inp.issued_at is None:
        raise TargetLintError("signer.json needs the bundle's issue time (valid_from)",
                              "report this bug")


def render(inp: TargetInput, target: Target | None = None) -> list[TargetFile]:
    lint(inp, target)
    assert inp.issued_at is not None  # lint refused it otherwise
    alg = next(k["alg"] for k in inp.keys if k["kid"] == inp.active_kid)
    spec = jose.algorithm(alg)
    how = portable_mechanism(alg)
    body = {
        "v": FORMAT,
        "iss": inp.issuer,
        "alg": alg,
        "kid": inp.active_kid,
        "pkcs11_uri": inp.pkcs11_uri,
        "mechanism": how.ckm,
        "host_hash": spec.hash_name if how.host_hashes else None,
        "valid_from": format_time(inp.issued_at),
    }
    return [
        TargetFile(
            NAME,
            json_bytes(body),
            "for the token-signing service: sign with this kid and alg through this PKCS#11 "
            "URI and mechanism, not before valid_from (the PIN is configured there, never here)",
        )
    ]

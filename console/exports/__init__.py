"""Exports: public JWKs and JWK Sets, the signed bundle, gateway/IdP files, QR codes, the writer,
and the offline bundle verifier (DESIGN.md §9).

Nothing here imports the HSM layer, Textual or Rich: the bundle signer is a Protocol, and the
verifier runs on an auditor's machine with `cryptography` alone.
"""

from console.exports.bundle import BundleSigner, bundle_claims, make_bundle
from console.exports.jwks import (
    ALGORITHMS,
    build_jwks,
    jwk_to_pem,
    public_jwk,
    sanitize_public_jwk,
    thumbprint,
)
from console.exports.qr import qr_svg, qr_text
from console.exports.targets import CONSUMER_TYPES, TargetInput, lint_targets, render_targets
from console.exports.verify_bundle import (
    BUNDLE_TYP,
    CLOCK_LEEWAY,
    VerifiedBundle,
    VerifiedJws,
    bundle_digest,
    verify_bundle,
    verify_jws,
    verify_jws_with_jwks,
)
from console.exports.writer import (
    ExportResult,
    export_bundle,
    manifest,
    write_bundle,
    write_signing_key,
)

__all__ = [
    "ALGORITHMS",
    "BUNDLE_TYP",
    "CLOCK_LEEWAY",
    "CONSUMER_TYPES",
    "BundleSigner",
    "ExportResult",
    "TargetInput",
    "VerifiedBundle",
    "VerifiedJws",
    "build_jwks",
    "bundle_claims",
    "bundle_digest",
    "export_bundle",
    "jwk_to_pem",
    "lint_targets",
    "make_bundle",
    "manifest",
    "public_jwk",
    "qr_svg",
    "qr_text",
    "render_targets",
    "sanitize_public_jwk",
    "thumbprint",
    "verify_bundle",
    "verify_jws",
    "verify_jws_with_jwks",
    "write_bundle",
    "write_signing_key",
]

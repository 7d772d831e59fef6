"""Exports: public JWKs and JWK Sets, the signed bundle, gateway/IdP files, QR codes, the writer,
and the offline bundle verifier (DESIGN.md §9).

Nothing here imports the HSM layer, Textual or Rich: the bundle signer is a Protocol, and the
verifier runs on an auditor's machine with `cryptography` alone.

Importing the package loads only the verifier (`verify_bundle`, needed by the auditor's path);
every other public name is imported from its module on first use (PEP 562), so `console.verify`
runs without the QR encoder (`qrcode`) and the target writers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Eager, and not only because it is light: importing the submodule `verify_bundle` binds that
# name on the package, and this import then rebinds it to the function, as callers expect.
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
from console.lazy import lazy_getattr

if TYPE_CHECKING:
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
    from console.exports.targets import (
        CONSUMER_TYPES,
        TargetInput,
        lint_targets,
        render_targets,
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

# The module of each lazily imported name; the typing-only imports above list the same names.
_MODULE_OF: dict[str, str] = {
    name: f"{__name__}.{module}"
    for module, names in {
        "bundle": ("BundleSigner", "bundle_claims", "make_bundle"),
        "jwks": (
            "ALGORITHMS", "build_jwks", "jwk_to_pem", "public_jwk", "sanitize_public_jwk",
            "thumbprint",
        ),
        "qr": ("qr_svg", "qr_text"),
        "targets": ("CONSUMER_TYPES", "TargetInput", "lint_targets", "render_targets"),
        "writer": (
            "ExportResult", "export_bundle", "manifest", "write_bundle", "write_signing_key",
        ),
    }.items()
    for name in names
}


__getattr__ = lazy_getattr(__name__, _MODULE_OF, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""RFC 7512 PKCS#11 URIs for tokens and keys (pure functions, no PKCS#11 calls).

A token-signing service finds the active key from `signer.json` by this URI, so it must name
the token unambiguously (label, serial, manufacturer, model) and the key by CKA_ID (every byte
percent-encoded, as RFC 7512 section 2.3 recommends for `id`) and CKA_LABEL.
"""

from __future__ import annotations

from urllib.parse import quote

# RFC 7512 pk11-pchar = unreserved / pk11-res-avail / pct-encoded. ";", "/", "?", "#", "%"
# must be encoded; "=" and "&" are legal but we encode them too, because naive parsers split on
# them.
_SAFE = "-._~:[]@!$'()*+,"


def _pchar(value: str) -> str:
    return quote(value, safe=_SAFE, encoding="utf-8", errors="strict")


def _pct_bytes(value: bytes) -> str:
    return "".join(f"%{b:02X}" for b in value)


def token_uri(*, label: str, serial: str, manufacturer: str, model: str) -> str:
    """`pkcs11:token=...;serial=...;manufacturer=...;model=...`."""
    parts = [
        f"model={_pchar(model)}",
        f"manufacturer={_pchar(manufacturer)}",
        f"serial={_pchar(serial)}",
        f"token={_pchar(label)}",
    ]
    return "pkcs11:" + ";".join(parts)


def key_uri(
    *,
    label: str,
    serial: str,
    manufacturer: str,
    model: str,
    cka_id: bytes,
    object_label: str,
    object_type: str = "private",
) -> str:
    """The token URI plus `id`, `object` and `type` for one key."""
    if not cka_id:
        raise ValueError("a key URI needs a non-empty CKA_ID")
    if object_type not in ("private", "public"):
        raise ValueError(f"object type must be 'private' or 'public', not {object_type!r}")
    return (
        token_uri(label=label, serial=serial, manufacturer=manufacturer, model=model)
        + f";id={_pct_bytes(cka_id)};object={_pchar(object_label)};type={object_type}"
    )

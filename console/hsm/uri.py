"""RFC 7512 PKCS#11 URIs for tokens and keys (pure functions, no PKCS#11 calls).

A token-signing service finds the active key from `signer.json` by this URI, so it must name
the token unambiguously (label, serial, manufacturer, model) and the key by CKA_ID (every byte
percent-encoded, as RFC 7512 section 2.3 recommends for `id`) and CKA_LABEL.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

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


_TOKEN_ATTRIBUTES = ("token", "serial", "manufacturer", "model")
_KEY_ATTRIBUTES = (*_TOKEN_ATTRIBUTES, "id", "object", "type")


@dataclass(frozen=True, slots=True)
class KeyUri:
    """The parts of an RFC 7512 key URI a signer needs to find one private key."""

    token: str | None
    serial: str | None
    manufacturer: str | None
    model: str | None
    cka_id: bytes
    label: str | None  # `object`, the key's CKA_LABEL

    def token_mismatch(self, *, label: str, serial: str, manufacturer: str,
                       model: str) -> str | None:
        """The first token attribute of the URI that the given token does not have, or None."""
        have = {"token": label, "serial": serial, "manufacturer": manufacturer, "model": model}
        for name in _TOKEN_ATTRIBUTES:
            wanted = getattr(self, name)
            if wanted is not None and wanted != have[name]:
                return f"{name}={wanted!r} (the token has {have[name]!r})"
        return None


def parse_key_uri(text: str) -> KeyUri:
    """Parse a private-key URI as `key_uri` writes it (the inverse of `key_uri`).

    Strict, because a signer that ignored an attribute could sign with another token's key:
    only `token`, `serial`, `manufacturer`, `model`, `id`, `object` and `type=private` are
    understood, each at most once; `id` and one of `token`/`serial` are required; a query part
    (where `pin-value`, `pin-source` and `module-path` would live) is refused.

    Raises:
        ValueError: naming what is wrong (never echoing a PIN: a query is refused unread).
    """
    if not text.startswith("pkcs11:"):
        raise ValueError("it does not start with 'pkcs11:'")
    body = text[len("pkcs11:"):]
    if "?" in body:
        raise ValueError("it has a query part (pin-value, pin-source, module-…): a PIN or "
                         "module never travels in a key URI")
    if any(c.isspace() or ord(c) < 0x20 for c in body):
        raise ValueError("it contains white space or control characters")
    values: dict[str, bytes] = {}
    for part in body.split(";"):
        name, sep, raw = part.partition("=")
        if not sep:
            raise ValueError(f"attribute {name[:20]!r} has no '='")
        if name not in _KEY_ATTRIBUTES:
            raise ValueError(f"attribute {name[:20]!r} is not one a signer understands "
                             f"({', '.join(_KEY_ATTRIBUTES)})")
        if name in values:
            raise ValueError(f"attribute {name!r} appears twice")
        values[name] = unquote_to_bytes(raw)

    def text_value(name: str) -> str | None:
        raw = values.get(name)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"attribute {name!r} is not UTF-8 text") from e

    if values.get("type", b"private") != b"private":
        raise ValueError("it names a public key (type must be private)")
    if not values.get("id"):
        raise ValueError("it has no id (the key's CKA_ID)")
    if "token" not in values and "serial" not in values:
        raise ValueError("it names no token (token= or serial=)")
    return KeyUri(token=text_value("token"), serial=text_value("serial"),
                  manufacturer=text_value("manufacturer"), model=text_value("model"),
                  cka_id=values["id"], label=text_value("object"))

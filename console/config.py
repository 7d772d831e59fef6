"""Workspace configuration: `ceremony.toml` and `policy.toml` parsed into frozen dataclasses.

This module owns the two TOML formats of DESIGN.md sections 4, 6 and 7 and their validation.
Parsing is strict: an unknown key, a wrong type or an impossible value is a `ConfigError` whose
one line reads `<file>:<line>: <what is wrong> — <what to write instead>`. `tomllib` gives no line
numbers for values, so `_Locator` finds the line of a key by scanning the source for its table
header and key (best effort: the file is always named, the line whenever it can be found).

Durations are strings such as "90d", "20m", "1h30m", "45s" (units d, h, m, s in that order, whole
numbers only): floats and bare integers are refused so that nobody wonders about the unit.
In the canonical dictionary form (`Policy.to_dict`, stored in `policy.changed` ledger entries)
durations are integer seconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from console.errors import ConfigError
from console.jcs import canonicalize

__all__ = [
    "ALGORITHMS",
    "CONSUMER_TYPES",
    "Consumer",
    "HsmConfig",
    "KeysetPolicy",
    "Officer",
    "Policy",
    "Quorum",
    "QuorumRule",
    "WorkspaceConfig",
    "c_max",
    "format_duration_text",
    "load_policy",
    "load_workspace_config",
    "parse_duration",
    "render_workspace_config",
    "slowest_consumer",
]

ALGORITHMS: tuple[str, ...] = ("RS256", "PS256", "ES256", "ES384", "EdDSA")
RSA_ALGORITHMS = frozenset({"RS256", "PS256"})
# The curve each non-RSA algorithm implies; a `curve` key, when given, must agree.
CURVE_OF_ALG: Mapping[str, str] = {"ES256": "P-256", "ES384": "P-384", "EdDSA": "Ed25519"}
CONSUMER_TYPES: tuple[str, ...] = (
    "envoy", "istio", "kong", "nginx", "apim", "auth0", "aws-apigw", "generic",
)
# Azure APIM issuer-signing-keys and Auth0 client credentials take RSA keys only (DESIGN.md §9).
RSA_ONLY_CONSUMERS = frozenset({"apim", "auth0"})

SOFTHSM_MODULE_PATHS: tuple[str, ...] = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
P11KIT_CLIENT_PATHS: tuple[str, ...] = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/pkcs11/p11-kit-client.so",
    "/usr/lib64/pkcs11/p11-kit-client.so",
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")  # as console.quorum.cards
_KEYSET_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,39})$")
_CONSUMER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_QUORUM_TEXT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_MAX_DURATION = timedelta(days=36500)

_DEFAULTS: Mapping[str, str] = {
    "cryptoperiod": "90d",
    "clock_skew": "5m",
    "margin": "1d",
    "destruction_wait": "30d",
    "bundle_lifetime": "120d",
}


# --- durations -----------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """Parse "90d", "1h30m", "45s", "0s" into a timedelta.

    Raises:
        ValueError: not a duration in this strict form (the caller turns it into a ConfigError).
    """
    if not isinstance(text, str):
        raise ValueError("not a string")
    m = _DURATION.match(text)
    if not text or m is None:
        raise ValueError(f"{text!r} is not a duration")
    if any(g and len(g) > 9 for g in m.groups()):
        raise ValueError(f"{text!r} is longer than 100 years")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    total = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if total > _MAX_DURATION:
        raise ValueError(f"{text!r} is longer than 100 years")
    return total


def format_duration_text(delta: timedelta) -> str:
    """The inverse of `parse_duration`: the shortest text that parses back to `delta`."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        raise ValueError("negative duration")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(
        f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v
    )
    return text or "0s"


# --- locating lines ------------------------------------------------------------------------

PathPart = str | int


def _split_dotted(text: str) -> tuple[str, ...] | None:
    """Split a TOML key ("a.b", '"x y".z') into its parts; None when it is not a key."""
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        if text[i] in "\"'":
            quote = text[i]
            end = text.find(quote, i + 1)
            if end < 0:
                return None
            parts.append(text[i + 1 : end])
            i = end + 1
        else:
            m = re.match(r"[A-Za-z0-9_-]+", text[i:])
            if m is None:
                return None
            parts.append(m.group(0))
            i += m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return tuple(parts)
        if text[i] != ".":
            return None
        i += 1


class _Locator:
    """Best-effort map from a value's path, e.g. ("keysets", "api", "consumers", 1), to a line."""

    def __init__(self, source: str) -> None:
        self._lines = source.splitlines()
        # (first line index, header path as element path) for each table header, in order.
        self._sections: list[tuple[int, tuple[PathPart, ...]]] = [(0, ())]
        counts: dict[tuple[str, ...], int] = {}
        in_multiline: str | None = None
        for idx, raw in enumerate(self._lines):
            line = raw.strip()
            if in_multiline is not None:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_multiline = quote
            if line.startswith("[["):
                end = line.find("]]")
                key = _split_dotted(line[2:end]) if end > 0 else None
                if key is not None:
                    index = counts.get(key, 0)
                    counts[key] = index + 1
                    self._sections.append((idx, (*key, index)))
            elif line.startswith("["):
                end = line.find("]")
                key = _split_dotted(line[1:end]) if end > 0 else None
                if key is not None:
                    self._sections.append((idx, key))

    def line_of(self, path: Sequence[PathPart]) -> int | None:
        path = tuple(path)
        best: tuple[int, int] | None = None  # (section number, header length)
        for number, (_, header) in enumerate(self._sections):
            if len(header) <= len(path) and path[: len(header)] == header and (
                best is None or len(header) >= best[1]
            ):
                best = (number, len(header))
        if best is None:
            return None
        number, size = best
        start = self._sections[number][0]
        stop = (
            self._sections[number + 1][0] if number + 1 < len(self._sections) else len(self._lines)
        )
        rest = path[size:]
        if rest and isinstance(rest[0], str):
            first = start + 1 if size else start
            for idx in range(first, stop):
                line = self._lines[idx]
                if "=" not in line or line.lstrip().startswith("#"):
                    continue
                key = _split_dotted(line.split("=", 1)[0])
                if key is not None and tuple(rest[: len(key)]) == key[: len(rest)]:
                    return idx + 1
                if key is not None and key[0] == rest[0]:
                    return idx + 1
        # A table written as its own header ([keysets.api]) when the path names its parent.
        for line_index, header in self._sections[1:]:
            if len(header) > len(path) and header[: len(path)] == path:
                return line_index + 1
        return start + 1 if size else None


# --- the strict reader ---------------------------------------------------------------------


class _Reader:
    """Typed access to a parsed TOML document that reports errors as `file:line: what — fix`."""

    def __init__(self, where: str, locator: _Locator | None) -> None:
        self.where = where
        self.locator = locator

    def fail(self, path: Sequence[PathPart], what: str, fix: str) -> NoReturn:
        line = self.locator.line_of(path) if self.locator is not None else None
        if line is None and self.locator is not None:
            line = 1  # about the file as a whole
        prefix = f"{self.where}:{line}" if line is not None else self.where
        if self.locator is None and path:
            what = f"{_dotted(path)}: {what}"
        raise ConfigError(f"{prefix}: {what}", fix)

    def table(
        self,
        value: object,
        path: Sequence[PathPart],
        allowed: Sequence[str],
        required: Sequence[str] = (),
    ) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, f"{_describe(path)} must be a table", f"write [{_dotted(path)}]")
        for key in value:
            if key not in allowed:
                self.fail(
                    (*path, key),
                    f"unknown key {key!r} in {_describe(path)}",
                    f"remove it; allowed keys: {', '.join(allowed)}",
                )
        for key in required:
            if key not in value:
                self.fail(
                    path,
                    f"{_describe(path)} has no {key!r}",
                    f"add a [{key}] table" if not path else f"add {key} = … to {_describe(path)}",
                )
        return value

    def string(self, table: Mapping[str, Any], path: Sequence[PathPart], key: str) -> str:
        value = table[key]
        if not isinstance(value, str):
            self.fail((*path, key), f"{key} must be a string", f'write {key} = "…"')
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            self.fail((*path, key), f"{key} contains control characters", "remove them")
        return value

    def boolean(self, table: Mapping[str, Any], path: Sequence[PathPart], key: str) -> bool:
        value = table[key]
        if not isinstance(value, bool):
            self.fail((*path, key), f"{key} must be true or false", f"write {key} = true")
        return value

    def integer(self, table: Mapping[str, Any], path: Sequence[PathPart], key: str) -> int:
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail((*path, key), f"{key} must be a whole number", f"write {key} = 3072")
        return value


def _dotted(path: Sequence[PathPart]) -> str:
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")


def _describe(path: Sequence[PathPart]) -> str:
    return f"[{_dotted(path)}]" if path else "the file"


def _load_toml(path: Path) -> tuple[dict[str, Any], _Locator]:
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"{where}: cannot read the file ({e.strerror or e})",
            "check the path, or run `ceremony init` / `ceremony demo`",
        ) from e
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{where}:{line}: not valid UTF-8", "save the file as UTF-8") from e
    try:
        data = tomllib.loads(source)
    except RecursionError as e:
        raise ConfigError(f"{where}: TOML nested too deeply", "flatten the file") from e
    except tomllib.TOMLDecodeError as e:
        text = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", text)
        if m is None:
            m_end = re.search(r"\(at end of document\)", text)
            line = source.count("\n") + 1
            what = text.replace(m_end.group(0), "").strip() if m_end else text
            raise ConfigError(
                f"{where}:{line}: malformed TOML: {what} (at end of file)",
                "fix the TOML syntax (see https://toml.io)",
            ) from e
        what = text[: m.start()].strip()
        raise ConfigError(
            f"{where}:{m.group(1)}: malformed TOML: {what} (column {m.group(2)})",
            "fix the TOML syntax (see https://toml.io)",
        ) from e
    return data, _Locator(source)


# --- ceremony.toml -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuorumRule:
    """M of N officers."""

    m: int
    n: int

    def __post_init__(self) -> None:
        if not 1 <= self.m <= self.n:
            raise ConfigError(f"quorum {self.m}/{self.n} is impossible", "write M/N with 1 ≤ M ≤ N")

    def __str__(self) -> str:
        return f"{self.m}/{self.n}"


@dataclass(frozen=True, slots=True)
class Quorum:
    """Quorum per ceremony class (DESIGN.md §6)."""

    routine: QuorumRule
    destructive: QuorumRule
    emergency: QuorumRule

    def for_class(self, name: str) -> QuorumRule:
        if name == "routine":
            return self.routine
        if name == "destructive":
            return self.destructive
        if name == "emergency":
            return self.emergency
        raise ConfigError(
            f"unknown ceremony class {name!r}", "use routine, destructive or emergency"
        )


@dataclass(frozen=True, slots=True)
class HsmConfig:
    """Which PKCS#11 module and token the workspace uses."""

    module: str
    token_label: str | None = None
    token_serial: str | None = None
    softhsm_conf: str | None = None
    uri: str | None = None

    def module_path(self) -> Path:
        """The module file: `module` itself, or the first usual path for "softhsm"/"p11-kit".

        Raises:
            ConfigError: the module file does not exist.
        """
        if self.module in ("softhsm", "p11-kit"):
            candidates = SOFTHSM_MODULE_PATHS if self.module == "softhsm" else P11KIT_CLIENT_PATHS
            for candidate in candidates:
                if Path(candidate).is_file():
                    return Path(candidate)
            raise ConfigError(
                f"no {self.module} PKCS#11 module found (looked in {', '.join(candidates)})",
                f"install {self.module} or give module = \"/path/to/module.so\" in [hsm]",
            )
        path = Path(self.module)
        if not path.is_file():
            raise ConfigError(
                f"PKCS#11 module {self.module} does not exist",
                "give the module's full path in [hsm] module, or run `ceremony doctor`",
            )
        return path


@dataclass(frozen=True, slots=True)
class Officer:
    """An officer's public keys as written in ceremony.toml (raw 32-byte keys)."""

    name: str
    ed25519: bytes
    x25519: bytes

    @property
    def ed25519_b64(self) -> str:
        return _b64url(self.ed25519)

    @property
    def x25519_b64(self) -> str:
        return _b64url(self.x25519)


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    """ceremony.toml."""

    org: str
    id: str
    rehearsal: bool
    hsm: HsmConfig
    quorum: Quorum
    officers: tuple[Officer, ...] = ()

    @property
    def origin(self) -> str:
        """The checkpoint origin line `<org>/ceremony-ledger/<uuid>` (DESIGN.md §5)."""
        return f"{self.org}/ceremony-ledger/{self.id}"

    def officer(self, name: str) -> Officer:
        for officer in self.officers:
            if officer.name == name:
                return officer
        raise ConfigError(
            f"no officer named {name!r} in ceremony.toml",
            f"use one of: {', '.join(o.name for o in self.officers) or '(none enrolled)'}",
        )


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _quorum_rule(reader: _Reader, value: object, path: tuple[PathPart, ...]) -> QuorumRule:
    fix = 'write "2/3" or {m = 2, n = 3} with 1 ≤ M ≤ N'
    if isinstance(value, str):
        m = _QUORUM_TEXT.match(value)
        if m is None:
            reader.fail(path, f"quorum {value!r} is not M/N", fix)
        mm, nn = int(m.group(1)), int(m.group(2))
    elif isinstance(value, Mapping):
        table = reader.table(value, path, ("m", "n"), ("m", "n"))
        mm, nn = reader.integer(table, path, "m"), reader.integer(table, path, "n")
    else:
        reader.fail(path, f"quorum {path[-1]} must be \"M/N\" or a table", fix)
    if not 1 <= mm <= nn:
        reader.fail(path, f"quorum {path[-1]} {mm}/{nn} is impossible (need 1 ≤ M ≤ N)", fix)
    if nn > 255:
        reader.fail(path, f"quorum {path[-1]} has N = {nn} officers", "use at most 255 officers")
    return QuorumRule(mm, nn)


def _public_key(reader: _Reader, table: Mapping[str, Any], path: tuple[PathPart, ...],
                key: str) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

    text = reader.string(table, path, key)
    fix = f"paste the officer's {key} public key: base64url of the raw 32 bytes, no padding"
    try:
        raw = _b64url_decode(text)
    except (ValueError, binascii.Error):
        reader.fail((*path, key), f"{key} key is not base64url", fix)
    if len(raw) != 32:
        reader.fail((*path, key), f"{key} key is {len(raw)} bytes, not 32", fix)
    try:
        if key == "ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(raw)
        else:
            x25519.X25519PublicKey.from_public_bytes(raw)
    except ValueError:
        reader.fail((*path, key), f"{key} key is not a valid public key", fix)
    return raw


def _workspace_from_toml(reader: _Reader, data: Mapping[str, Any]) -> WorkspaceConfig:
    top = reader.table(data, (), ("workspace", "hsm", "quorum", "officers"),
                       ("workspace", "hsm", "quorum"))

    ws = reader.table(top["workspace"], ("workspace",), ("org", "id", "rehearsal"),
                      ("org", "id"))
    org = reader.string(ws, ("workspace",), "org")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", org):
        reader.fail(("workspace", "org"), f"org {org!r} is not a plain name",
                    "use 1-64 letters, digits, '.', '_' or '-' (it names the checkpoint origin)")
    id_text = reader.string(ws, ("workspace",), "id")
    try:
        ws_id = str(uuid.UUID(id_text))
    except ValueError:
        reader.fail(("workspace", "id"), f"id {id_text!r} is not a UUID",
                    f'write id = "{uuid.UUID(int=0)}" style (ceremony init makes one)')
    if ws_id != id_text:
        reader.fail(("workspace", "id"), f"id {id_text!r} is not in canonical form",
                    f'write id = "{ws_id}"')
    rehearsal = reader.boolean(ws, ("workspace",), "rehearsal") if "rehearsal" in ws else False

    hp: tuple[PathPart, ...] = ("hsm",)
    hsm = reader.table(top["hsm"], hp,
                       ("module", "token_label", "token_serial", "softhsm_conf", "uri"),
                       ("module",))
    module = reader.string(hsm, hp, "module")
    if module not in ("softhsm", "p11-kit") and not module.startswith("/"):
        reader.fail((*hp, "module"), f"module {module!r} is not an absolute path or known name",
                    'write module = "softhsm", "p11-kit" or "/absolute/path/to/module.so"')
    label = reader.string(hsm, hp, "token_label") if "token_label" in hsm else None
    serial = reader.string(hsm, hp, "token_serial") if "token_serial" in hsm else None
    if (label is None) == (serial is None):
        reader.fail(hp, "[hsm] needs exactly one of token_label and token_serial",
                    'write token_label = "…" or token_serial = "…", not both')
    if label is not None and not 1 <= len(label.encode()) <= 32:
        reader.fail((*hp, "token_label"), "token_label must be 1-32 bytes (PKCS#11 limit)",
                    "shorten the label")
    if serial is not None and not 1 <= len(serial.encode()) <= 16:
        reader.fail((*hp, "token_serial"), "token_serial must be 1-16 bytes (PKCS#11 limit)",
                    "copy the serial shown by `ceremony doctor`")
    softhsm_conf = reader.string(hsm, hp, "softhsm_conf") if "softhsm_conf" in hsm else None
    if softhsm_conf is not None and (
        softhsm_conf.startswith("/") or ".." in Path(softhsm_conf).parts or not softhsm_conf
    ):
        reader.fail((*hp, "softhsm_conf"), "softhsm_conf must be a path inside the workspace",
                    'write softhsm_conf = "softhsm/softhsm2.conf"')
    uri = reader.string(hsm, hp, "uri") if "uri" in hsm else None
    if uri is not None and not uri.startswith("pkcs11:"):
        reader.fail((*hp, "uri"), "uri is not an RFC 7512 PKCS#11 URI",
                    'write uri = "pkcs11:token=…"')

    qp: tuple[PathPart, ...] = ("quorum",)
    q = reader.table(top["quorum"], qp, ("routine", "destructive", "emergency"),
                     ("routine", "destructive", "emergency"))
    quorum = Quorum(*(_quorum_rule(reader, q[k], (*qp, k))
                      for k in ("routine", "destructive", "emergency")))

    officers: list[Officer] = []
    raw_officers = top.get("officers", [])
    if not isinstance(raw_officers, list):
        reader.fail(("officers",), "officers must be [[officers]] tables",
                    'write [[officers]] name = "…" ed25519 = "…" x25519 = "…"')
    seen_keys: set[bytes] = set()
    for index, raw in enumerate(raw_officers):
        op: tuple[PathPart, ...] = ("officers", index)
        table = reader.table(raw, op, ("name", "ed25519", "x25519"),
                             ("name", "ed25519", "x25519"))
        name = reader.string(table, op, "name")
        if not _NAME.match(name):
            reader.fail((*op, "name"), f"officer name {name!r} is not allowed",
                        "use 1-32 letters, digits, '-', '_' or '.', starting with a letter or "
                        "digit")
        if any(o.name == name for o in officers):
            reader.fail((*op, "name"), f"officer {name!r} is listed twice",
                        "give each officer one [[officers]] table")
        ed = _public_key(reader, table, op, "ed25519")
        xk = _public_key(reader, table, op, "x25519")
        for raw_key, key in ((ed, "ed25519"), (xk, "x25519")):
            if raw_key in seen_keys:
                reader.fail((*op, key), f"officer {name!r} reuses another officer's key",
                            "each officer needs their own card")
            seen_keys.add(raw_key)
        officers.append(Officer(name, ed, xk))
    if officers:
        for cls in ("routine", "destructive", "emergency"):
            rule = quorum.for_class(cls)
            if rule.m > len(officers):
                reader.fail((*qp, cls), f"quorum {cls} needs {rule.m} officers but only "
                            f"{len(officers)} are listed", "lower M or add [[officers]]")
    return WorkspaceConfig(org=org, id=ws_id, rehearsal=rehearsal,
                           hsm=HsmConfig(module, label, serial, softhsm_conf, uri),
                           quorum=quorum, officers=tuple(officers))


def load_workspace_config(path: str | Path) -> WorkspaceConfig:
    """Read and validate ceremony.toml.

    Raises:
        ConfigError: unreadable, malformed or invalid; one line naming file and line.
    """
    path = Path(path)
    data, locator = _load_toml(path)
    return _workspace_from_toml(_Reader(str(path), locator), data)


def _toml_str(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def render_workspace_config(cfg: WorkspaceConfig) -> str:
    """The ceremony.toml text `ceremony init` writes; `load_workspace_config` reads it back."""
    lines = [
        "# Key Ceremony Console workspace (DESIGN.md section 4). Edit with care: officers and",
        "# quorum changes belong in an officer-change ceremony.",
        "",
        "[workspace]",
        f"org = {_toml_str(cfg.org)}",
        f"id = {_toml_str(cfg.id)}",
        f"rehearsal = {'true' if cfg.rehearsal else 'false'}",
        "",
        "[hsm]",
        f"module = {_toml_str(cfg.hsm.module)}",
    ]
    for key in ("token_label", "token_serial", "softhsm_conf", "uri"):
        value = getattr(cfg.hsm, key)
        if value is not None:
            lines.append(f"{key} = {_toml_str(value)}")
    lines += ["", "[quorum]"]
    for cls in ("routine", "destructive", "emergency"):
        lines.append(f'{cls} = "{cfg.quorum.for_class(cls)}"')
    for officer in cfg.officers:
        lines += [
            "",
            "[[officers]]",
            f"name = {_toml_str(officer.name)}",
            f"ed25519 = {_toml_str(officer.ed25519_b64)}",
            f"x25519 = {_toml_str(officer.x25519_b64)}",
        ]
    return "\n".join(lines) + "\n"


# --- policy.toml ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Consumer:
    """A gateway or IdP that caches the keyset's JWKS."""

    name: str
    type: str
    cache_lifetime: timedelta
    install_delay: timedelta = timedelta(0)

    @property
    def propagation(self) -> timedelta:
        """Worst-case time from publication until this consumer surely trusts a key."""
        return self.cache_lifetime + self.install_delay


@dataclass(frozen=True, slots=True)
class KeysetPolicy:
    """One issuer's signing slot (DESIGN.md §7)."""

    name: str
    issuer: str
    alg: str
    max_token_lifetime: timedelta
    rsa_bits: int | None = None
    cryptoperiod: timedelta = timedelta(days=90)
    clock_skew: timedelta = timedelta(minutes=5)
    margin: timedelta = timedelta(days=1)
    destruction_wait: timedelta = timedelta(days=30)
    bundle_lifetime: timedelta = timedelta(days=120)
    consumers: tuple[Consumer, ...] = ()

    @property
    def c_max(self) -> timedelta:
        return c_max(self)

    @property
    def curve(self) -> str | None:
        return CURVE_OF_ALG.get(self.alg)

    def to_dict(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "alg": self.alg,
            "rsa_bits": self.rsa_bits,
            "cryptoperiod": _secs(self.cryptoperiod),
            "max_token_lifetime": _secs(self.max_token_lifetime),
            "clock_skew": _secs(self.clock_skew),
            "margin": _secs(self.margin),
            "destruction_wait": _secs(self.destruction_wait),
            "bundle_lifetime": _secs(self.bundle_lifetime),
            "consumers": [
                {
                    "name": c.name,
                    "type": c.type,
                    "cache_lifetime": _secs(c.cache_lifetime),
                    "install_delay": _secs(c.install_delay),
                }
                for c in self.consumers
            ],
        }


def _secs(delta: timedelta) -> int:
    return int(delta.total_seconds())


def c_max(keyset_policy: KeysetPolicy) -> timedelta:
    """The largest consumer propagation time (cache + install delay); 0 without consumers."""
    return max((c.propagation for c in keyset_policy.consumers), default=timedelta(0))


def slowest_consumer(keyset_policy: KeysetPolicy) -> Consumer | None:
    """The consumer whose propagation time is C_max (the first listed on a tie)."""
    best: Consumer | None = None
    for consumer in keyset_policy.consumers:
        if best is None or consumer.propagation > best.propagation:
            best = consumer
    return best


@dataclass(frozen=True, slots=True)
class Policy:
    """policy.toml: every keyset's policy, in file order."""

    keysets: tuple[KeysetPolicy, ...]

    def keyset(self, name: str) -> KeysetPolicy:
        """Raises ConfigError when the keyset is not in the policy."""
        for ks in self.keysets:
            if ks.name == name:
                return ks
        raise ConfigError(
            f"no keyset {name!r} in policy.toml",
            f"use one of: {', '.join(k.name for k in self.keysets)}, or add [keysets.{name}]",
        )

    def get(self, name: str) -> KeysetPolicy | None:
        return next((ks for ks in self.keysets if ks.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(ks.name for ks in self.keysets)

    def to_dict(self) -> dict[str, Any]:
        """Canonical form for a `policy.changed` entry: integers only, durations in seconds."""
        return {"v": 1, "keysets": {ks.name: ks.to_dict() for ks in self.keysets}}

    def sha256(self) -> str:
        """Hex SHA-256 of the JCS bytes of `to_dict()`."""
        return hashlib.sha256(canonicalize(self.to_dict())).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "policy in ledger") -> Policy:
        """Rebuild (and re-validate) a policy from `to_dict()` output.

        Raises:
            ConfigError: the dictionary is not a valid canonical policy.
        """
        reader = _Reader(where, None)
        top = reader.table(data, (), ("v", "keysets"), ("v", "keysets"))
        if top["v"] != 1:
            reader.fail(("v",), f"policy version {top['v']!r} is not supported",
                        "upgrade the console")

        def seconds(path: tuple[PathPart, ...], value: object) -> timedelta:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                reader.fail(path, "must be whole seconds ≥ 0", "store integers")
            if value > _MAX_DURATION.total_seconds():
                reader.fail(path, "is longer than 100 years", "store a sane duration")
            return timedelta(seconds=value)

        return _build_policy(reader, top["keysets"], seconds, canonical=True)


_KEYSET_KEYS = (
    "issuer", "alg", "rsa_bits", "curve", "cryptoperiod", "max_token_lifetime", "clock_skew",
    "margin", "destruction_wait", "bundle_lifetime", "consumers",
)
_DURATION_KEYS = (
    "cryptoperiod", "max_token_lifetime", "clock_skew", "margin", "destruction_wait",
    "bundle_lifetime",
)


def _build_policy(
    reader: _Reader,
    keysets: object,
    duration: Callable[[tuple[PathPart, ...], object], timedelta],
    *,
    canonical: bool,
) -> Policy:
    if not isinstance(keysets, Mapping) or not keysets:
        reader.fail(("keysets",), "the policy has no keysets",
                    "add a [keysets.<name>] table with issuer, alg and max_token_lifetime")
    return Policy(tuple(_build_keyset(reader, name, raw, duration, canonical=canonical)
                        for name, raw in keysets.items()))


def _build_keyset(
    reader: _Reader,
    name: str,
    raw: object,
    duration: Callable[[tuple[PathPart, ...], object], timedelta],
    *,
    canonical: bool,
) -> KeysetPolicy:
    kp: tuple[PathPart, ...] = ("keysets", name)
    if not _KEYSET_NAME.match(name):
        reader.fail(kp, f"keyset name {name!r} is not allowed",
                    "use 1-40 lowercase letters, digits and '-', starting with a letter or digit")
    allowed = tuple(k for k in _KEYSET_KEYS if not (canonical and k == "curve"))
    table = reader.table(raw, kp, allowed, ("issuer", "alg", "max_token_lifetime"))
    issuer = reader.string(table, kp, "issuer")
    if not issuer or issuer != issuer.strip():
        reader.fail((*kp, "issuer"), "issuer is empty or has surrounding spaces",
                    'write the exact iss value, e.g. issuer = "https://id.example.com"')

    alg = table["alg"]
    if not isinstance(alg, str):
        reader.fail((*kp, "alg"), "alg must be a string", 'write alg = "ES256"')
    allowed_algs = ", ".join(ALGORITHMS)
    if alg not in ALGORITHMS:
        upper = alg.upper()
        if upper == "NONE":
            why = "alg 'none' means unsigned tokens"
        elif upper.startswith("HS"):
            why = f"{alg} is a shared-secret (HMAC) algorithm: consumers could forge tokens"
        elif upper == "ES256K":
            why = "ES256K (secp256k1) is not accepted by the gateways this console targets"
        elif upper in ("RS384", "RS512", "PS384", "PS512", "ES512"):
            why = f"{alg} is not supported by every target gateway"
        else:
            why = f"alg {alg!r} is not a supported JWS algorithm"
        reader.fail((*kp, "alg"), why, f"use one of {allowed_algs}")

    if "curve" in table:
        curve = reader.string(table, kp, "curve")
        if alg in RSA_ALGORITHMS:
            reader.fail((*kp, "curve"), f"curve is meaningless for RSA alg {alg}",
                        "remove curve (use rsa_bits for RSA)")
        if curve in ("P-224", "secp224r1"):
            reader.fail((*kp, "curve"), "curve P-224 is too weak",
                        "use ES256 (P-256), ES384 (P-384) or EdDSA (Ed25519)")
        if curve.lower() in ("secp256k1", "p-256k"):
            reader.fail((*kp, "curve"), "curve secp256k1 is not accepted by target gateways",
                        "use ES256 (P-256), ES384 (P-384) or EdDSA (Ed25519)")
        if curve != CURVE_OF_ALG[alg]:
            reader.fail((*kp, "curve"), f"alg {alg} does not use curve {curve}",
                        f'write curve = "{CURVE_OF_ALG[alg]}" or remove curve')

    rsa_bits: int | None = None
    if alg in RSA_ALGORITHMS:
        rsa_bits = reader.integer(table, kp, "rsa_bits") if table.get("rsa_bits") is not None \
            else 3072
        if rsa_bits < 2048:
            reader.fail((*kp, "rsa_bits"), f"RSA-{rsa_bits} is too weak",
                        "write rsa_bits = 3072 (at least 2048)")
        if rsa_bits > 8192 or rsa_bits % 1024:
            reader.fail((*kp, "rsa_bits"), f"rsa_bits = {rsa_bits} is not a usual RSA size",
                        "write rsa_bits = 2048, 3072 or 4096")
    elif table.get("rsa_bits") is not None:
        reader.fail((*kp, "rsa_bits"), f"rsa_bits is given for the non-RSA alg {alg}",
                    "remove rsa_bits (the curve follows from alg)")

    times: dict[str, timedelta] = {}
    for key in _DURATION_KEYS:
        value = table.get(key, None if canonical else _DEFAULTS.get(key))
        if value is None:
            reader.fail(kp, f"{_describe(kp)} has no {key!r}", f"add {key} = …")
        times[key] = duration((*kp, key), value)

    def at_least(key: str, low: timedelta, fix: str) -> None:
        if times[key] < low:
            reader.fail((*kp, key), f"{key} {format_duration_text(times[key])} is too short "
                        f"(minimum {format_duration_text(low)})", fix)

    at_least("cryptoperiod", timedelta(days=1), 'write e.g. cryptoperiod = "90d"')
    at_least("max_token_lifetime", timedelta(seconds=1), 'write e.g. max_token_lifetime = "1h"')
    at_least("margin", timedelta(hours=1), 'write margin = "1h" or more (e.g. "1d")')
    at_least("bundle_lifetime", timedelta(days=1), 'write e.g. bundle_lifetime = "120d"')

    consumers: list[Consumer] = []
    raw_consumers = table.get("consumers", [])
    if not isinstance(raw_consumers, list):
        reader.fail((*kp, "consumers"), "consumers must be [[keysets.<name>.consumers]] tables",
                    f'write [[keysets.{name}.consumers]] name = "…" type = "envoy" …')
    for index, raw_consumer in enumerate(raw_consumers):
        cp: tuple[PathPart, ...] = (*kp, "consumers", index)
        ct = reader.table(raw_consumer, cp, ("name", "type", "cache_lifetime", "install_delay"),
                          ("name", "type", "cache_lifetime"))
        cname = reader.string(ct, cp, "name")
        if not _CONSUMER_NAME.match(cname):
            reader.fail((*cp, "name"), f"consumer name {cname!r} is not allowed",
                        "use 1-40 letters, digits, '.', '_' or '-'")
        if any(c.name == cname for c in consumers):
            reader.fail((*cp, "name"), f"consumer {cname!r} is listed twice in keyset {name}",
                        "give each consumer a distinct name")
        ctype = reader.string(ct, cp, "type")
        if ctype not in CONSUMER_TYPES:
            reader.fail((*cp, "type"), f"consumer type {ctype!r} is unknown",
                        f"use one of {', '.join(CONSUMER_TYPES)}")
        if ctype in RSA_ONLY_CONSUMERS and alg not in RSA_ALGORITHMS:
            target = "Azure APIM" if ctype == "apim" else "Auth0"
            reader.fail((*cp, "type"), f"{target} takes RSA keys only, but keyset {name} is {alg}",
                        f'use alg = "RS256" or "PS256" for keyset {name}, or a keyset of its own')
        cache = duration((*cp, "cache_lifetime"), ct["cache_lifetime"])
        install = duration((*cp, "install_delay"), ct.get("install_delay", 0 if canonical
                                                          else "0s"))
        consumers.append(Consumer(cname, ctype, cache, install))

    policy = KeysetPolicy(
        name=name, issuer=issuer, alg=alg, rsa_bits=rsa_bits, consumers=tuple(consumers),
        **times,
    )
    if policy.cryptoperiod < policy.c_max + policy.margin:
        slow = slowest_consumer(policy)
        reader.fail((*kp, "cryptoperiod"),
                    f"cryptoperiod {format_duration_text(policy.cryptoperiod)} is shorter than the "
                    f"slowest consumer ({slow.name if slow else '-'}: "
                    f"{format_duration_text(policy.c_max)}) + margin "
                    f"{format_duration_text(policy.margin)}, so no successor could be activated "
                    "in time",
                    "lengthen cryptoperiod or shorten the consumer's cache/install delay")
    if policy.bundle_lifetime < policy.cryptoperiod:
        reader.fail((*kp, "bundle_lifetime"),
                    f"bundle_lifetime {format_duration_text(policy.bundle_lifetime)} is shorter "
                    f"than cryptoperiod {format_duration_text(policy.cryptoperiod)}: bundles "
                    "would expire between ceremonies",
                    "write bundle_lifetime = "
                    f'"{format_duration_text(policy.cryptoperiod + timedelta(days=30))}" or more')
    return policy


def load_policy(path: str | Path) -> Policy:
    """Read and validate policy.toml.

    Raises:
        ConfigError: unreadable, malformed or invalid; one line naming file and line.
    """
    path = Path(path)
    data, locator = _load_toml(path)
    reader = _Reader(str(path), locator)
    top = reader.table(data, (), ("keysets",))

    def text_duration(p: tuple[PathPart, ...], value: object) -> timedelta:
        key = str(p[-1])
        if not isinstance(value, str):
            reader.fail(p, f"{key} must be a duration string, not {type(value).__name__} "
                        f"{value!r}", f'write {key} = "90d" (units d, h, m, s; e.g. "1h30m")')
        try:
            return parse_duration(value)
        except ValueError:
            reader.fail(p, f"{key} {value!r} is not a duration",
                        f'write {key} = "90d" (whole numbers, units d h m s in that order, '
                        'e.g. "1h30m")')

    return _build_policy(reader, top.get("keysets"), text_duration, canonical=False)

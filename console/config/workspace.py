"""ceremony.toml (DESIGN.md sections 4 and 6): the workspace, its HSM, quorum and officers.

This module owns the workspace file's dataclasses, its strict parser (`load_workspace_config`) and
the text `ceremony init` writes (`render_workspace_config`), which the parser reads back.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from console import b64
from console.config._toml import PathPart, Reader, load_toml
from console.errors import ConfigError
from console.jsontypes import JsonMapping
from console.names import OFFICER_NAME

__all__ = [
    "P11KIT_CLIENT_PATHS",
    "SOFTHSM_MODULE_PATHS",
    "HsmConfig",
    "Officer",
    "Quorum",
    "QuorumRule",
    "WorkspaceConfig",
    "load_workspace_config",
    "network_hsm_address",
    "render_workspace_config",
]

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


def network_hsm_address(module: Path) -> str | None:
    """Where the p11-kit client `module` sends its calls, the PIN among them: the
    P11_KIT_SERVER_ADDRESS it reads when loaded, or "default" (its runtime-dir socket). None for
    any other module. It comes from the environment, not the workspace, so plans record it."""
    if not module.name.startswith("p11-kit-client"):
        return None
    return os.environ.get("P11_KIT_SERVER_ADDRESS") or "default"

_QUORUM_TEXT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


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
        return b64.encode(self.ed25519)

    @property
    def x25519_b64(self) -> str:
        return b64.encode(self.x25519)


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


def _quorum_rule(reader: Reader, value: object, path: tuple[PathPart, ...]) -> QuorumRule:
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


def _public_key(reader: Reader, table: JsonMapping, path: tuple[PathPart, ...],
                key: str) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

    text = reader.string(table, path, key)
    fix = f"paste the officer's {key} public key: base64url of the raw 32 bytes, no padding"
    try:
        raw = b64.decode(text)
    except b64.Base64urlError:
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


def _workspace_from_toml(reader: Reader, data: JsonMapping) -> WorkspaceConfig:
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
        if not OFFICER_NAME.fullmatch(name):
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
    data, locator = load_toml(path)
    return _workspace_from_toml(Reader(str(path), locator), data)


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

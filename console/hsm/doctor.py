"""`ceremony doctor`: which PKCS#11 modules, tokens and JWS algorithms this machine offers.

`diagnose` looks at each module (SoftHSM2's and p11-kit's client at their usual Debian, Ubuntu
and Homebrew paths, or the paths given), reads the library information, every slot and token
(label, serial, manufacturer, model, flags, PIN state) and, per JWS algorithm, which mechanisms
the token offers and what is missing, in words an officer can act on. It opens no session and
never logs in. `render_text` turns the report into the text the CLI prints.

Two things a reader of the report must know, both caused by how modules are loaded:

* SoftHSM2 reads `SOFTHSM2_CONF` (else `~/.config/softhsm2/softhsm2.conf`, else
  `/etc/softhsm/softhsm2.conf`) once per process; the report names the file and token directory
  in use. A token created after the module was loaded is only seen after a rescan, which the
  doctor does when no console handle has the module open.
* p11-kit's client reads `P11_KIT_SERVER_ADDRESS` when it is loaded (default:
  `$XDG_RUNTIME_DIR/p11-kit/pkcs11`); the report names the address and whether its socket exists.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pkcs11 import Mechanism

from console.clock import format_time
from console.errors import HsmError
from console.hsm._pkcs11 import (
    LOCK,
    Modules,
    PKCS11Error,
    Pkcs11Library,
    is_p11kit_client,
    key_length_range,
)
from console.hsm._support import support_table
from console.hsm._token import token_info
from console.hsm.values import MechanismSupport, TokenInfo

if TYPE_CHECKING:
    from pkcs11 import Slot as P11Slot

SOFTHSM_PATHS: Final = (
    "/usr/lib/softhsm/libsofthsm2.so",  # Debian, Ubuntu
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",  # Homebrew, Apple silicon
    "/usr/local/opt/softhsm/lib/softhsm/libsofthsm2.so",  # Homebrew, Intel
)
P11KIT_CLIENT_PATHS: Final = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",  # Debian, Ubuntu
    "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/pkcs11/p11-kit-client.so",
    "/usr/lib64/pkcs11/p11-kit-client.so",
    "/opt/homebrew/lib/pkcs11/p11-kit-client.so",
    "/usr/local/lib/pkcs11/p11-kit-client.so",
)


@dataclass(frozen=True, slots=True)
class SoftHsmConfig:
    """Which SoftHSM2 configuration a module loaded in this process reads."""

    conf_path: str
    source: str  # "SOFTHSM2_CONF", "user config" or "system default"
    exists: bool
    token_dir: str | None
    token_dir_exists: bool


@dataclass(frozen=True, slots=True)
class NetworkHsmConfig:
    """Where p11-kit's client looks for its server."""

    address: str
    source: str  # "P11_KIT_SERVER_ADDRESS" or "default"
    socket_exists: bool | None  # None when the address is not a unix path


@dataclass(frozen=True, slots=True)
class TokenReport:
    info: TokenInfo
    algorithms: tuple[MechanismSupport, ...]


@dataclass(frozen=True, slots=True)
class SlotReport:
    slot_id: int
    description: str
    manufacturer: str
    flags: tuple[str, ...]
    token: TokenReport | None  # None: empty slot, or a token that is not initialised
    note: str


@dataclass(frozen=True, slots=True)
class ModuleReport:
    path: str
    kind: str  # "SoftHSM2", "p11-kit client (network HSM)", "PKCS#11 module"
    loaded: bool
    manufacturer: str
    description: str
    cryptoki_version: str
    library_version: str
    slots: tuple[SlotReport, ...]
    softhsm: SoftHsmConfig | None
    network: NetworkHsmConfig | None
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DoctorReport:
    generated_at: datetime
    modules: tuple[ModuleReport, ...]
    problems: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        """At least one usable token, and no module-level problem."""
        return not self.problems and any(s.token is not None for m in self.modules for s in m.slots)


def softhsm_config(env: dict[str, str] | None = None) -> SoftHsmConfig:
    """The configuration SoftHSM2 2.6 would read, in its own order of precedence."""
    env = dict(os.environ) if env is None else env
    if env.get("SOFTHSM2_CONF"):
        path, source = env["SOFTHSM2_CONF"], "SOFTHSM2_CONF"
    else:
        user = Path(env.get("HOME", "~")).expanduser() / ".config/softhsm2/softhsm2.conf"
        if user.exists():
            path, source = str(user), "user config"
        else:
            path, source = "/etc/softhsm/softhsm2.conf", "system default"
    token_dir: str | None = None
    exists = Path(path).is_file()
    if exists:
        try:
            for line in Path(path).read_text(errors="replace").splitlines():
                key, sep, value = line.split("#", 1)[0].partition("=")
                if sep and key.strip() == "directories.tokendir":
                    token_dir = value.strip()
        except OSError:
            exists = False
    return SoftHsmConfig(
        conf_path=path,
        source=source,
        exists=exists,
        token_dir=token_dir,
        token_dir_exists=bool(token_dir) and Path(token_dir or "").is_dir(),
    )


def network_config(env: dict[str, str] | None = None) -> NetworkHsmConfig:
    env = dict(os.environ) if env is None else env
    if env.get("P11_KIT_SERVER_ADDRESS"):
        address, source = env["P11_KIT_SERVER_ADDRESS"], "P11_KIT_SERVER_ADDRESS"
    else:
        runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
        address, source = f"unix:path={runtime}/p11-kit/pkcs11", "default"
    socket_exists: bool | None = None
    if address.startswith("unix:path="):
        socket_exists = Path(address.removeprefix("unix:path=")).exists()
    return NetworkHsmConfig(address=address, source=source, socket_exists=socket_exists)


def default_module_paths() -> list[str]:
    """The usual module paths that exist here, one per module file (symlinks collapsed)."""
    seen: set[str] = set()
    out: list[str] = []
    for p in (*SOFTHSM_PATHS, *P11KIT_CLIENT_PATHS):
        if Path(p).exists() and os.path.realpath(p) not in seen:
            seen.add(os.path.realpath(p))
            out.append(p)
    return out


def diagnose(module_paths: Sequence[str] | None = None, *, now: datetime) -> DoctorReport:
    """Probe each module; never raises for a broken module (the report says what is wrong)."""
    paths = list(module_paths) if module_paths is not None else default_module_paths()
    problems: list[str] = []
    if not paths:
        problems.append(
            "no PKCS#11 module found at the usual paths "
            f"({', '.join((*SOFTHSM_PATHS[:1], *P11KIT_CLIENT_PATHS[:1]))}, ...): install "
            "softhsm2 for rehearsals, or give your HSM vendor's module path"
        )
    modules = tuple(_probe(path) for path in paths)
    return DoctorReport(generated_at=now, modules=modules, problems=tuple(problems))


def _kind(path: str, lib: Pkcs11Library | None) -> str:
    name = Path(path).name
    if "softhsm" in name:
        return "SoftHSM2"
    if "p11-kit-client" in name or (lib is not None and is_p11kit_client(lib)):
        return "p11-kit client (network HSM)"
    return "PKCS#11 module"


def _probe(path: str) -> ModuleReport:
    kind = _kind(path, None)
    softhsm = softhsm_config() if kind == "SoftHSM2" else None
    network = network_config() if kind.startswith("p11-kit") else None
    problems: list[str] = []
    if softhsm is not None:
        if not softhsm.exists:
            problems.append(f"SoftHSM2 config {softhsm.conf_path} does not exist")
        elif not softhsm.token_dir_exists:
            problems.append(f"SoftHSM2 token directory {softhsm.token_dir} does not exist")
    if network is not None and network.socket_exists is False:
        problems.append(
            f"no p11-kit server socket at {network.address} "
            "(start `p11-kit server` or set P11_KIT_SERVER_ADDRESS)"
        )
    empty = ModuleReport(path, kind, False, "", "", "", "", (), softhsm, network, ())
    if not Path(path).exists():
        return _with(empty, [*problems, f"module file {path} does not exist"])
    with LOCK:
        try:
            lib = Modules.load(path)
        except HsmError as e:
            return _with(empty, [*problems, e.user_message()])
        kind = _kind(path, lib)
        network_path = is_p11kit_client(lib)
        # Fresh view: new SoftHSM2 tokens, a restarted p11-kit server. Skipped (harmlessly)
        # while a console handle has the module open.
        Modules.rescan(path, lib)
        try:
            slots = tuple(_probe_slot(slot, network_path) for slot in lib.get_slots())
        except PKCS11Error as e:
            slots = ()
            problems.append(
                f"cannot list slots ({type(e).__name__}): the module or server is not answering"
            )
        if not slots and not problems:
            problems.append(
                "the module reports no slots"
                + (
                    ": the p11-kit server is not reachable or exports no token"
                    if network_path
                    else ""
                )
            )
        return ModuleReport(
            path=path,
            kind=kind,
            loaded=True,
            manufacturer=lib.manufacturer_id.strip(),
            description=lib.library_description.strip(),
            cryptoki_version="{}.{}".format(*lib.cryptoki_version),
            library_version="{}.{}".format(*lib.library_version),
            slots=slots,
            softhsm=softhsm,
            network=network,
            problems=tuple(problems),
        )


def _with(report: ModuleReport, problems: list[str]) -> ModuleReport:
    return ModuleReport(
        report.path,
        report.kind,
        report.loaded,
        report.manufacturer,
        report.description,
        report.cryptoki_version,
        report.library_version,
        report.slots,
        report.softhsm,
        report.network,
        tuple(problems),
    )


def _probe_slot(slot: P11Slot, network_path: bool) -> SlotReport:
    flags = tuple(f.name for f in type(slot.flags) if f.name and slot.flags & f.value)
    base = (int(slot.slot_id), slot.slot_description.strip(), slot.manufacturer_id.strip(), flags)
    try:
        token = slot.get_token()
    except PKCS11Error as e:
        return SlotReport(*base, None, f"no token ({type(e).__name__})")
    info = token_info(token)
    if "TOKEN_INITIALIZED" not in info.flags:
        return SlotReport(*base, None, "empty slot: an uninitialised token (free for a new one)")
    try:
        offered = frozenset(slot.get_mechanisms())
    except PKCS11Error as e:
        note = f"mechanisms unreadable ({type(e).__name__})"
        return SlotReport(*base, TokenReport(info, ()), note)

    def sizes(m: int) -> tuple[int, int] | None:
        try:
            mi = slot.get_mechanism_info(Mechanism(m))
        except (PKCS11Error, ValueError):  # ValueError: a vendor mechanism's number
            return None
        return key_length_range(mi)

    table = support_table(offered, sizes, network_path=network_path)
    note = "" if info.pin_state.value == "ok" else f"user PIN: {info.pin_state.value}"
    return SlotReport(*base, TokenReport(info, tuple(table.values())), note)


def render_text(report: DoctorReport) -> str:
    """The report as plain text for the terminal (one fact per line, problems marked '!')."""
    out = [f"ceremony doctor — {format_time(report.generated_at)}"]
    for problem in report.problems:
        out.append(f"! {problem}")
    for m in report.modules:
        out.append("")
        out.append(f"Module {m.path} — {m.kind}")
        if m.loaded:
            out.append(
                f"  library: {m.manufacturer} / {m.description}, library {m.library_version}, "
                f"Cryptoki {m.cryptoki_version}"
            )
        if m.softhsm is not None:
            c = m.softhsm
            out.append(f"  config: {c.conf_path} (from {c.source}); tokens in {c.token_dir}")
        if m.network is not None:
            n = m.network
            state = {True: "socket present", False: "socket missing", None: "not a unix path"}
            out.append(f"  server: {n.address} (from {n.source}; {state[n.socket_exists]})")
        for problem in m.problems:
            out.append(f"  ! {problem}")
        for s in m.slots:
            if s.token is None:
                out.append(f"  slot {s.slot_id}: {s.note}")
                continue
            t = s.token.info
            out.append(
                f"  slot {s.slot_id}: token {t.label!r} serial {t.serial} — {t.manufacturer} "
                f"{t.model}; user PIN {t.pin_state.value}"
            )
            out.append(f"    flags: {', '.join(t.flags) or 'none'}")
            for alg in s.token.algorithms:
                out.append(f"    {'ok ' if alg.available else ' - '} {alg.note}")
    return "\n".join(out) + "\n"

"""The workspace configuration under the quorum: what the ledger records, and what changed since.

`init` records, and every `config-change` ceremony records anew, a `config.recorded` entry:

    {"quorum": {...}, "files": {"ceremony.toml": sha256, "policy.toml": sha256},
     "config": <ceremony.toml, canonical>, "policy": <policy, canonical>,
     "module": {"path", "sha256"}, "scripts": {name: sha256 of the script in effect}}

Every command compares the files as they are now with the last record that a checkpoint covers
(`drift`); a difference refuses every command that could touch the HSM or append to the ledger
(`Workspace.require_sealed`) until a `config-change` ceremony, approved with the destructive
quorum after seeing `changes`, records the new state. `status` still works and names each
difference. Rehearsal is not part of this: it is fixed by the ledger's first entry for good.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.ceremony.script import SCRIPT_SUFFIX, shipped_script_paths
from console.clock import format_duration
from console.config import Policy, WorkspaceConfig
from console.errors import ConfigError, WorkspaceError
from console.files import file_kind
from console.jsontypes import JsonObject
from console.ledger.trust import quorum_record

CEREMONY_TOML = "ceremony.toml"
POLICY_TOML = "policy.toml"
WORKSPACE_SCRIPTS = "ceremonies"


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    """One `config.recorded` entry's data, as a value."""

    data: Mapping[str, Any]

    @property
    def module_path(self) -> str:
        return str(self.data["module"]["path"])

    @property
    def module_sha256(self) -> str:
        return str(self.data["module"]["sha256"])

    @property
    def scripts(self) -> Mapping[str, str]:
        scripts: Mapping[str, str] = self.data["scripts"]
        return scripts


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference between the recorded configuration and the files now."""

    what: str
    detail: str

    def __str__(self) -> str:
        return f"{self.what}: {self.detail}"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read once (for the module, a few MB at most).

    Raises:
        WorkspaceError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        # Never blocking, only a regular file: an insider may swap in a FIFO or a device.
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise WorkspaceError(f"cannot read {path}: {file_kind(mode)[3:]}",
                                     "restore the file")
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise WorkspaceError(f"cannot read {path}: {e.strerror or e}",
                             "check that the file exists and is readable") from e
    return digest.hexdigest()


def canonical_config(config: WorkspaceConfig) -> JsonObject:
    """What of ceremony.toml decides a ceremony, as JSON (for records and diffs)."""
    hsm = config.hsm
    return {
        "org": config.org,
        "id": config.id,
        "rehearsal": config.rehearsal,
        "hsm": {"module": hsm.module, "token_label": hsm.token_label,
                "token_serial": hsm.token_serial, "softhsm_conf": hsm.softhsm_conf,
                "uri": hsm.uri},
        "quorum": quorum_record(config.quorum),
    }


def scripts_in_effect(root: Path) -> dict[str, Path]:
    """Every script by name: a workspace script in `ceremonies/` shadows the shipped one."""
    scripts = dict(shipped_script_paths())
    folder = root / WORKSPACE_SCRIPTS
    if folder.is_dir():
        for path in sorted(folder.glob(f"*{SCRIPT_SUFFIX}")):
            scripts[path.stem] = path
    return scripts


def current_record(root: Path, config: WorkspaceConfig, policy: Policy) -> ConfigRecord:
    """The record the files as they are now would make.

    Raises:
        ConfigError: the PKCS#11 module file does not exist. WorkspaceError: a file is unreadable.
    """
    module = config.hsm.module_path()
    return ConfigRecord({
        "quorum": quorum_record(config.quorum),
        "files": {CEREMONY_TOML: file_sha256(root / CEREMONY_TOML),
                  POLICY_TOML: file_sha256(root / POLICY_TOML)},
        "config": canonical_config(config),
        "policy": policy.to_dict(),
        "module": {"path": str(module), "sha256": file_sha256(module)},
        "scripts": {name: file_sha256(path) for name, path in scripts_in_effect(root).items()},
    })


def drift(recorded: ConfigRecord, root: Path, config: WorkspaceConfig,
          policy: Policy) -> tuple[Drift, ...]:
    """How the files differ from `recorded` (empty when they do not)."""
    try:
        now = current_record(root, config, policy)
    except (ConfigError, WorkspaceError) as e:
        return (Drift("the PKCS#11 module", e.message),)
    return tuple(changes(recorded, now))


def changes(old: ConfigRecord, new: ConfigRecord) -> list[Drift]:
    """Each difference between two records, worded for the officers who approve it."""
    out: list[Drift] = []
    for name in (CEREMONY_TOML, POLICY_TOML):
        before, after = old.data["files"].get(name), new.data["files"].get(name)
        if before != after:
            out.append(Drift(name, f"sha256 {str(before)[:12]}… → {str(after)[:12]}…"))
    out += [Drift(CEREMONY_TOML, line)
            for line in _diff(old.data["config"], new.data["config"], "")]
    out += [Drift(POLICY_TOML, line)
            for line in _diff(old.data["policy"], new.data["policy"], "")]
    if old.module_path != new.module_path:
        out.append(Drift("the PKCS#11 module", f"{old.module_path} → {new.module_path}"))
    elif old.module_sha256 != new.module_sha256:
        out.append(Drift("the PKCS#11 module", f"{new.module_path} changed (sha256 "
                         f"{old.module_sha256[:12]}… → {new.module_sha256[:12]}…)"))
    for name in sorted(set(old.scripts) | set(new.scripts)):
        before, after = old.scripts.get(name), new.scripts.get(name)
        if before == after:
            continue
        if before is None:
            out.append(Drift(f"script {name}", "new"))
        elif after is None:
            out.append(Drift(f"script {name}", "removed"))
        else:
            out.append(Drift(f"script {name}", f"sha256 {before[:12]}… → {after[:12]}…"))
    return out


def _diff(old: object, new: object, path: str) -> list[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        lines: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                lines.append(f"{where} added: {_show(key, new[key])}")
            elif key not in new:
                lines.append(f"{where} removed (was {_show(key, old[key])})")
            else:
                lines += _diff(old[key], new[key], where)
        return lines
    if isinstance(old, list) and isinstance(new, list) and all(
            isinstance(v, Mapping) and "name" in v for v in (*old, *new)):
        by_old = {v["name"]: v for v in old}
        by_new = {v["name"]: v for v in new}
        return _diff(by_old, by_new, path)
    if old != new:
        key = path.rsplit(".", 1)[-1]
        return [f"{path}: {_show(key, old)} → {_show(key, new)}"]
    return []


_DURATION_KEYS = frozenset({"cryptoperiod", "max_token_lifetime", "clock_skew", "margin",
                            "destruction_wait", "bundle_lifetime", "cache_lifetime",
                            "install_delay"})


def _show(key: object, value: object) -> str:
    if key in _DURATION_KEYS and isinstance(value, int) and not isinstance(value, bool):
        from datetime import timedelta

        return format_duration(timedelta(seconds=value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_show(k, v)}" for k, v in value.items()) + "}"
    return "none" if value is None else str(value)


__all__ = [
    "CEREMONY_TOML",
    "POLICY_TOML",
    "ConfigRecord",
    "Drift",
    "canonical_config",
    "changes",
    "current_record",
    "drift",
    "file_sha256",
    "scripts_in_effect",
]

"""Ceremony scripts: TOML files naming a class, parameters and steps from a fixed vocabulary.

A script says *what kind* of ceremony runs; the planner (`ceremony.planner`) turns it into a
concrete plan for the workspace's keysets at a given time. Loading is strict: an unknown step,
key or parameter is a `ScriptError` with the file, the line and what to write instead.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from console.errors import ScriptError


def _shipped_dir() -> Path:
    """The folder of the shipped scripts: package data of `console.shipped_ceremonies`, which
    pyproject.toml maps to the repository's ceremonies/ (checkout, editable install or wheel)."""
    folder = resources.files("console.shipped_ceremonies")
    # The console is installed as files, never run from a zip: the resource is a real folder.
    if not isinstance(folder, Path):
        raise ScriptError(f"the shipped ceremony scripts are not a folder ({folder})",
                          "reinstall the console with pip")
    return folder


SHIPPED_DIR = _shipped_dir()

SCRIPT_SUFFIX = ".toml"
ACTIONS = (
    "reconcile", "generate", "self_test", "publish", "activate", "retire", "unpublish",
    "destroy", "suspend", "compromise", "export_bundle", "export_audit", "enroll_officer",
    "revoke_officer", "resplit_pin", "checkpoint", "note", "record_config", "release_signer",
    "revoke_signer",
)
BUNDLE_CHANGES = frozenset({"publish", "activate", "retire", "unpublish", "suspend",
                            "compromise"})
"""Steps that change what consumers see: they take effect with the script's export_bundle."""
CLASSES = ("routine", "destructive", "emergency")
PARAMETER_TYPES = ("cards", "officers", "text")

# Which keys each step may carry besides `action`, and the values they accept.
_STEP_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "generate": {"purpose": ("token", "bundle")},
    "note": {"text": ()},
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True, slots=True)
class Step:
    action: str
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: str = "") -> str:
        return dict(self.options).get(key, default)


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    default: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Script:
    """A validated ceremony script and the SHA-256 of the exact file it came from."""

    name: str
    ceremony_class: str
    description: str
    steps: tuple[Step, ...]
    parameters: tuple[Parameter, ...] = ()
    sha256: str = ""
    path: str = field(default="", compare=False)

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> Script:
        """Parse and validate a script.

        Raises:
            ScriptError: malformed TOML, unknown key, unknown action, missing value.
        """
        try:
            text = data.decode("utf-8")
            doc = tomllib.loads(text)
        except UnicodeDecodeError as e:
            raise ScriptError(f"{source}: not UTF-8 text", "save the script as UTF-8") from e
        except tomllib.TOMLDecodeError as e:
            raise ScriptError(f"{source}: malformed TOML: {e}", "fix the TOML syntax") from e
        except RecursionError as e:
            raise ScriptError(f"{source}: TOML nested too deeply", "flatten the script") from e
        where = _Locator(source, text)
        _only(doc, {"script", "parameters", "steps"}, where, "the top level")
        head = doc.get("script")
        if not isinstance(head, dict):
            raise ScriptError(f"{source}: no [script] table", 'start with [script] name = "..."')
        _only(head, {"name", "class", "description"}, where, "[script]")
        name = _text(head, "name", where, "[script]")
        if not _NAME.match(name):
            raise ScriptError(
                f"{where.at('name')}: script name {name!r} is not allowed",
                "use lower-case letters, digits and '-'",
            )
        klass = _text(head, "class", where, "[script]")
        if klass not in CLASSES:
            raise ScriptError(
                f"{where.at('class')}: unknown class {klass!r}",
                f"write one of {', '.join(CLASSES)}",
            )
        description = head.get("description", "")
        if not isinstance(description, str):
            raise ScriptError(f"{where.at('description')}: description must be text", "quote it")
        parameters = _parameters(doc.get("parameters", {}), where)
        raw_steps = doc.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise ScriptError(f"{source}: no [[steps]]", 'add [[steps]] action = "reconcile"')
        steps = tuple(_step(raw, i, where) for i, raw in enumerate(raw_steps))
        kinds = {step.action for step in steps}
        if kinds & BUNDLE_CHANGES and "export_bundle" not in kinds:
            changes = ", ".join(sorted(kinds & BUNDLE_CHANGES))
            raise ScriptError(
                f"{source}: {changes} take effect only with a signed bundle, and the script has "
                "no export_bundle step",
                'add [[steps]] action = "export_bundle" after them')
        return cls(
            name=name,
            ceremony_class=klass,
            description=description,
            steps=steps,
            parameters=parameters,
            sha256=hashlib.sha256(data).hexdigest(),
            path=source,
        )


def load_script(name: str, *, workspace: Path | None = None) -> Script:
    """Find a script by name: the workspace's `ceremonies/NAME.toml`, else the shipped one.

    Scripts are named, never given as paths: a workspace script is used only when the ledger's
    recorded configuration includes it (`console.sealing`), which the caller checks.

    Raises:
        ScriptError: no such script, or it does not validate.
    """
    if not _NAME.match(name):
        raise ScriptError(f"unknown script {name!r}",
                          f"scripts are named, not paths: choose one of {_shipped()}")
    candidates: list[Path] = []
    if workspace is not None:
        candidates.append(workspace / "ceremonies" / f"{name}{SCRIPT_SUFFIX}")
    candidates.append(SHIPPED_DIR / f"{name}{SCRIPT_SUFFIX}")
    for path in candidates:
        if path.is_file():
            try:
                data = path.read_bytes()
            except OSError as e:
                raise ScriptError(f"cannot read {path}: {e.strerror}", "check the path") from e
            return Script.from_bytes(data, str(path))
    raise ScriptError(f"unknown script {name!r}", f"choose one of {_shipped()}")


def shipped_script_paths() -> dict[str, Path]:
    """Every shipped script by name."""
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob(f"*{SCRIPT_SUFFIX}"))}


def shipped_scripts() -> list[str]:
    return sorted(shipped_script_paths())


def _shipped() -> str:
    return ", ".join(shipped_scripts())


class _Locator:
    """Finds the line of a key in the TOML source, so that errors can say file:line."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()

    def at(self, key: str, occurrence: int = 0) -> str:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        seen = 0
        for number, line in enumerate(self.lines, start=1):
            if pattern.match(line):
                if seen == occurrence:
                    return f"{self.source}:{number}"
                seen += 1
        return self.source

    def step(self, index: int) -> str:
        seen = 0
        for number, line in enumerate(self.lines, start=1):
            if line.strip() == "[[steps]]":
                if seen == index:
                    return f"{self.source}:{number}"
                seen += 1
        return self.source


def _only(table: Mapping[str, object], allowed: set[str], where: _Locator, context: str) -> None:
    for key in table:
        if key not in allowed:
            raise ScriptError(
                f"{where.at(key)}: unknown key {key!r} in {context}",
                f"allowed keys: {', '.join(sorted(allowed))}",
            )


def _text(table: Mapping[str, object], key: str, where: _Locator, context: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ScriptError(f"{where.source}: {context} needs {key} = \"...\"", f"add {key}")
    return value


def _step(raw: object, index: int, where: _Locator) -> Step:
    place = where.step(index)
    if not isinstance(raw, dict):
        raise ScriptError(f"{place}: a step must be a table", 'write [[steps]] action = "..."')
    action = raw.get("action")
    if not isinstance(action, str):
        raise ScriptError(f"{place}: step {index + 1} has no action", 'add action = "reconcile"')
    if action not in ACTIONS:
        raise ScriptError(
            f"{place}: unknown step {action!r}", f"write one of {', '.join(ACTIONS)}"
        )
    allowed = _STEP_KEYS.get(action, {})
    options: list[tuple[str, str]] = []
    for key, value in raw.items():
        if key == "action":
            continue
        if key not in allowed:
            hint = f"allowed: {', '.join(sorted(allowed))}" if allowed else "remove it"
            raise ScriptError(f"{place}: step {action!r} takes no key {key!r}", hint)
        values = allowed[key]
        if not isinstance(value, str) or (values and value not in values):
            raise ScriptError(
                f"{place}: {action}.{key} = {value!r} is not allowed",
                f"write one of {', '.join(values)}" if values else "write text in quotes",
            )
        options.append((key, value))
    if action == "note" and not dict(options).get("text"):
        raise ScriptError(f"{place}: a note step needs text", 'add text = "..."')
    return Step(action=action, options=tuple(sorted(options)))


def _parameters(raw: object, where: _Locator) -> tuple[Parameter, ...]:
    if not isinstance(raw, dict):
        raise ScriptError(f"{where.source}: [parameters] must be a table",
                          "see the shipped scripts")
    out = []
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise ScriptError(f"{where.at(name)}: parameter {name!r} must be a table", "")
        _only(spec, {"type", "default"}, where, f"parameter {name!r}")
        kind = spec.get("type")
        if kind not in PARAMETER_TYPES:
            raise ScriptError(
                f"{where.at(name)}: parameter {name!r} has unknown type {kind!r}",
                f"write one of {', '.join(PARAMETER_TYPES)}",
            )
        default = spec.get("default", [])
        if not isinstance(default, list) or not all(isinstance(v, str) for v in default):
            raise ScriptError(f"{where.at(name)}: default of {name!r} must be a list of text", "")
        out.append(Parameter(name=name, type=str(kind), default=tuple(default)))
    return tuple(out)

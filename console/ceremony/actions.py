"""The typed actions of a plan: one frozen dataclass per kind, parsed from and written to JSON.

A plan's `actions` are what officers approve and what the engine runs; nothing downstream of
`Action.from_dict` reads a raw dict. Every action has `n` (its step number) and `description`
(the line officers read), plus its own members. Parsing is strict: an unknown kind, an unknown
or missing member, or a value of the wrong type is a `PlanError` naming the action.

`required_class` fixes in code the quorum class an action kind needs (DESIGN.md §6): destroying
keys, changing officers, the PIN, the configuration or what a signing service holds needs the
destructive quorum whatever the script says; a script can raise a class, never lower it.

State changes that consumers see (publish, activate, retire, unpublish, suspend, compromise)
are not steps of their own: they are `Change`s of the `ExportBundle` step that writes the first
signed bundle showing them, so a key is "published" exactly when a bundle carrying it exists and
"active" exactly when an exported `signer.json` names it (see `console.ceremony.engine`).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from console.errors import PlanError
from console.jsontypes import JsonMapping, JsonObject

CHANGE_VERBS: tuple[str, ...] = (
    "publish", "activate", "retire", "unpublish", "suspend", "resume", "compromise", "withdraw",
)
"""What a bundle step may do to a key (the lifecycle's edges that change the JWKS or signer)."""


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A key an action targets: an existing key by kid, or a key this plan generates by label."""

    kid: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if (self.kid is None) == (self.label is None):
            raise PlanError("a key reference needs exactly one of kid and label")

    def to_dict(self) -> dict[str, str]:
        return {"kid": self.kid} if self.kid is not None else {"label": str(self.label)}

    @property
    def text(self) -> str:
        return self.kid[:6] + "…" if self.kid is not None else str(self.label)


@dataclass(frozen=True, slots=True)
class Change:
    """One state change a bundle step makes, and why it is allowed now."""

    verb: str
    key: KeyRef
    why: str
    waived: str | None = None  # the timing rule an emergency waives
    paired_with: str | None = None  # for retire/activate: the kid taking over / handing over

    def __post_init__(self) -> None:
        if self.verb not in CHANGE_VERBS:
            raise PlanError(f"unknown key change {self.verb!r}",
                            f"use one of {', '.join(CHANGE_VERBS)}")

    def to_dict(self) -> JsonObject:
        out: JsonObject = {"verb": self.verb, "key": self.key.to_dict(), "why": self.why}
        if self.waived is not None:
            out["waived"] = self.waived
        if self.paired_with is not None:
            out["paired_with"] = self.paired_with
        return out


@dataclass(frozen=True, slots=True)
class Recipient:
    """An officer a re-split PIN is sealed to (the X25519 key comes from the ledger or the
    plan's own enrolment, never from a file)."""

    officer: str
    x25519: str

    def to_dict(self) -> dict[str, str]:
        return {"officer": self.officer, "x25519": self.x25519}


@dataclass(frozen=True, slots=True)
class Action:
    """Base of every action kind."""

    n: int
    description: str

    kind: ClassVar[str] = ""
    required_class: ClassVar[str | None] = None
    touches_hsm: ClassVar[bool] = False

    def to_dict(self) -> JsonObject:
        out: JsonObject = {"n": self.n, "action": self.kind}
        for f in dataclasses.fields(self):
            if f.name == "n":
                continue
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue  # optional members are left out when unset
            out[f.name] = _to_json(value)
        return out

    @staticmethod
    def from_dict(data: object) -> Action:
        """Parse one action (strict).

        Raises:
            PlanError: an unknown kind, member or type (naming the action).
        """
        if not isinstance(data, Mapping):
            raise PlanError("a plan action is not an object")
        kind = data.get("action")
        cls = ACTION_KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise PlanError(f"unknown plan action {kind!r}")
        where = f"action {data.get('n')!r} ({kind})"
        return _build(cls, {k: v for k, v in data.items() if k != "action"}, where)


@dataclass(frozen=True, slots=True)
class Reconcile(Action):
    kind: ClassVar[str] = "reconcile"
    touches_hsm: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Generate(Action):
    keyset: str
    label: str
    alg: str
    purpose: str  # "token" | "bundle"
    why: str
    rsa_bits: int | None = None

    kind: ClassVar[str] = "generate"
    touches_hsm: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class SelfTest(Action):
    keyset: str
    label: str

    kind: ClassVar[str] = "self_test"
    touches_hsm: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ExportBundle(Action):
    """Sign and write the keyset's next bundle; its `changes` take effect with it."""

    keyset: str
    changes: tuple[Change, ...] = ()
    probes: tuple[str, ...] = ()  # consumers asked to accept a canary before an activation

    kind: ClassVar[str] = "export_bundle"
    touches_hsm: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class PublishBundleKey(Action):
    """Make the generated bundle-signing key the workspace's pinned key."""

    label: str

    kind: ClassVar[str] = "publish_bundle_key"
    touches_hsm: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Destroy(Action):
    keyset: str
    kid: str
    label: str
    cka_id: str
    why: str

    kind: ClassVar[str] = "destroy"
    required_class: ClassVar[str | None] = "destructive"
    touches_hsm: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class DestroyOrphan(Action):
    keyset: str
    cka_id: str
    label: str
    why: str

    kind: ClassVar[str] = "destroy_orphan"
    required_class: ClassVar[str | None] = "destructive"
    touches_hsm: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ExportAudit(Action):
    kind: ClassVar[str] = "export_audit"


@dataclass(frozen=True, slots=True)
class Checkpoint(Action):
    kind: ClassVar[str] = "checkpoint"


@dataclass(frozen=True, slots=True)
class Note(Action):
    text: str

    kind: ClassVar[str] = "note"


@dataclass(frozen=True, slots=True)
class EnrollOfficer(Action):
    officer: str
    ed25519: str
    x25519: str

    kind: ClassVar[str] = "enroll_officer"
    required_class: ClassVar[str | None] = "destructive"


@dataclass(frozen=True, slots=True)
class RevokeOfficer(Action):
    officer: str

    kind: ClassVar[str] = "revoke_officer"
    required_class: ClassVar[str | None] = "destructive"


@dataclass(frozen=True, slots=True)
class ResplitPin(Action):
    recipients: tuple[Recipient, ...]
    threshold: int

    kind: ClassVar[str] = "resplit_pin"
    required_class: ClassVar[str | None] = "destructive"
    touches_hsm: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class RecordConfig(Action):
    """Record the workspace configuration as it now is (`config-change`)."""

    record: JsonMapping
    changes: tuple[str, ...]

    kind: ClassVar[str] = "record_config"
    required_class: ClassVar[str | None] = "destructive"


@dataclass(frozen=True, slots=True)
class ReleaseSigner(Action):
    """Seal the token PIN to a signing service's `age` recipient."""

    signer: str
    recipient: str

    kind: ClassVar[str] = "release_signer"
    required_class: ClassVar[str | None] = "destructive"
    # The PIN must be opened (and proven by C_Login) before it can be released.
    touches_hsm: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class RevokeSigner(Action):
    signer: str

    kind: ClassVar[str] = "revoke_signer"
    required_class: ClassVar[str | None] = "destructive"


ACTION_KINDS: Mapping[str, type[Action]] = {
    cls.kind: cls for cls in (
        Reconcile, Generate, SelfTest, ExportBundle, PublishBundleKey, Destroy, DestroyOrphan,
        ExportAudit, Checkpoint, Note, EnrollOfficer, RevokeOfficer, ResplitPin, RecordConfig,
        ReleaseSigner, RevokeSigner,
    )
}


# --- strict parsing ------------------------------------------------------------------------

T = TypeVar("T")


def _to_json(value: object) -> object:
    if isinstance(value, KeyRef | Change | Recipient):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_json(v) for k, v in value.items()}
    return value


@functools.cache
def _shape(cls: type) -> tuple[dict[str, object], dict[str, dataclasses.Field[object]]]:
    """A class's resolved type hints and fields, computed once: `typing.get_type_hints` costs
    about as much as the rest of parsing a plan, and every replay parses every stored plan."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _build(cls: type[T], data: JsonMapping, where: str) -> T:
    hints, fields = _shape(typing.cast(type, cls))
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise PlanError(f"plan {where}: unknown member(s) {', '.join(unknown)}")
    values: dict[str, object] = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING:
                raise PlanError(f"plan {where}: member {name!r} is missing")
            continue
        values[name] = _convert(hints[name], data[name], f"{where} {name}")
    try:
        return cls(**values)
    except PlanError as e:
        raise PlanError(f"plan {where}: {e.message}") from e


def _convert(hint: object, value: object, where: str) -> object:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise PlanError(f"plan {where}: not a list")
        return tuple(_convert(args[0], v, where) for v in value)
    if hint is KeyRef:
        if not isinstance(value, Mapping):
            raise PlanError(f"plan {where}: not a key reference")
        return _build(KeyRef, value, where)
    if hint in (Change, Recipient):
        if not isinstance(value, Mapping):
            raise PlanError(f"plan {where}: not an object")
        return _build(hint, value, where)
    if origin is Mapping or hint is Mapping:
        if not isinstance(value, Mapping):
            raise PlanError(f"plan {where}: not an object")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise PlanError(f"plan {where}: not true/false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PlanError(f"plan {where}: not a whole number")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise PlanError(f"plan {where}: not text")
        return value
    raise PlanError(f"plan {where}: cannot read a {hint!r}")  # pragma: no cover - our types


__all__ = [
    "ACTION_KINDS",
    "CHANGE_VERBS",
    "Action",
    "Change",
    "Checkpoint",
    "Destroy",
    "DestroyOrphan",
    "EnrollOfficer",
    "ExportAudit",
    "ExportBundle",
    "Generate",
    "KeyRef",
    "Note",
    "PublishBundleKey",
    "Recipient",
    "Reconcile",
    "RecordConfig",
    "ReleaseSigner",
    "ResplitPin",
    "RevokeOfficer",
    "RevokeSigner",
    "SelfTest",
]

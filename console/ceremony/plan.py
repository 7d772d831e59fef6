"""The typed plan: what officers approve, its canonical bytes, and its digest.

A plan (`"v": 2`) holds every action with every parameter, the computed times and why, and
**every input that decides what the ceremony does** (`PlanInputs`): the effective policy and the
SHA-256 of `policy.toml`, the configuration that matters (PKCS#11 module path and the SHA-256 of
the module file, token label and serial, quorum rules, rehearsal flag, the SHA-256 of
`ceremony.toml`), the SHA-256 of the script and of `pin.sealed`, and the ledger size and root
it was planned on. Its digest is SHA-256 of its RFC 8785 bytes.

`Plan.from_stored` parses the plan exactly as the ledger stores it, and its digest is computed
from those bytes, never from a re-serialisation: `approve`, `execute` and `resume` re-derive the
digest from the stored plan and the inputs from the files as they are now, and refuse on any
difference (`PlanInputs.differences` names the input).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from console.ceremony.actions import Action
from console.clock import format_time, parse_time
from console.errors import ConsoleError, EntryRejectedError, PlanError
from console.jcs import canonicalize
from console.jsontypes import JsonMapping, JsonObject

if TYPE_CHECKING:
    from console.config import Quorum

T = TypeVar("T")

PLAN_FORMAT = 2
PLAN_LIFETIME = timedelta(hours=24)
"""How long a plan can gather approvals before it must be made again."""
CLASS_RANK = {"emergency": 0, "routine": 1, "destructive": 2}
"""Which class wins between two whose quorums need as many officers."""


def plan_class(script_class: str, actions: Sequence[Action], quorum: Quorum) -> str:
    """The script's class, raised to what its actions need (never lowered): of the classes
    named, the one whose quorum needs most officers. The review of a stored plan and the
    audit-pack verifier ask it again: a plan's bytes are not the authority for it.

    Raises:
        KeyError: a class that is not routine, destructive or emergency.
    """
    classes = {script_class, *(a.required_class for a in actions if a.required_class)}
    return max(classes, key=lambda c: (quorum.for_class(c).m, CLASS_RANK[c]))


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """Every input that decides what a ceremony does, as a plan records it."""

    policy_sha256: str
    """SHA-256 of the exact bytes of policy.toml."""
    policy: JsonMapping
    """The effective policy, canonical (durations in seconds)."""
    config_sha256: str
    """SHA-256 of the exact bytes of ceremony.toml."""
    module_path: str
    module_sha256: str
    server_address: str | None
    """The network HSM the p11-kit client talks to (its P11_KIT_SERVER_ADDRESS, or "default"):
    the PIN goes there, so officers approve it; None for a local module."""
    token_label: str | None
    token_serial: str | None
    quorum: JsonMapping
    rehearsal: bool
    pin_sealed_sha256: str
    script_sha256: str

    def to_dict(self) -> JsonObject:
        module: JsonObject = {"path": self.module_path, "sha256": self.module_sha256}
        if self.server_address is not None:
            module["server"] = self.server_address
        return {
            "policy": {"sha256": self.policy_sha256, "effective": dict(self.policy)},
            "config": {
                "sha256": self.config_sha256,
                "module": module,
                "token": {"label": self.token_label, "serial": self.token_serial},
                "quorum": dict(self.quorum),
                "rehearsal": self.rehearsal,
            },
            "pin_sealed_sha256": self.pin_sealed_sha256,
            "script_sha256": self.script_sha256,
        }

    @classmethod
    def from_dict(cls, data: object) -> PlanInputs:
        r = _Reader(data, "plan inputs")
        policy = _Reader(r.get("policy", dict), "plan inputs policy")
        config = _Reader(r.get("config", dict), "plan inputs config")
        module = _Reader(config.get("module", dict), "plan inputs module")
        token = _Reader(config.get("token", dict), "plan inputs token")
        inputs = cls(
            policy_sha256=policy.get("sha256", str),
            policy=policy.get("effective", dict),
            config_sha256=config.get("sha256", str),
            module_path=module.get("path", str),
            module_sha256=module.get("sha256", str),
            server_address=module.optional("server", str),
            token_label=token.optional("label", str),
            token_serial=token.optional("serial", str),
            quorum=config.get("quorum", dict),
            rehearsal=config.get("rehearsal", bool),
            pin_sealed_sha256=r.get("pin_sealed_sha256", str),
            script_sha256=r.get("script_sha256", str),
        )
        for reader in (r, policy, config, module, token):
            reader.done()
        return inputs

    def differences(self, now: PlanInputs) -> list[str]:
        """What changed between the inputs a plan recorded and the inputs `now`, each named
        as an officer knows it (empty when nothing did)."""
        out = []
        if self.policy_sha256 != now.policy_sha256 or dict(self.policy) != dict(now.policy):
            out.append("policy.toml")
        if self.config_sha256 != now.config_sha256:
            out.append("ceremony.toml")
        if self.module_path != now.module_path:
            out.append(f"the PKCS#11 module path ({self.module_path} → {now.module_path})")
        elif self.module_sha256 != now.module_sha256:
            out.append(f"the PKCS#11 module file {now.module_path}")
        if self.server_address != now.server_address:
            out.append(f"the network HSM address ({self.server_address} → {now.server_address})")
        if (self.token_label, self.token_serial) != (now.token_label, now.token_serial):
            out.append("the token")
        if dict(self.quorum) != dict(now.quorum):
            out.append("the quorum rules")
        if self.rehearsal != now.rehearsal:
            out.append("the rehearsal flag")
        if self.pin_sealed_sha256 != now.pin_sealed_sha256:
            out.append("pin.sealed")
        if self.script_sha256 != now.script_sha256:
            out.append("the ceremony script")
        return out


@dataclass(frozen=True, slots=True)
class Deferred:
    """An action the timing rules do not allow yet, and from when they will."""

    action: str
    keyset: str
    kid: str
    earliest: str
    why: str

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action, "keyset": self.keyset, "kid": self.kid,
                "earliest": self.earliest, "why": self.why}


@dataclass(frozen=True, slots=True)
class Plan:
    """A ceremony plan; build with the planner, read back with `Plan.from_stored`."""

    id: str
    origin: str
    script: str
    ceremony_class: str
    quorum_m: int
    quorum_n: int
    keysets: tuple[str, ...]
    parameters: Mapping[str, tuple[str, ...]]
    inputs: PlanInputs
    ledger_size: int
    ledger_root: bytes
    actions: tuple[Action, ...]
    deferred: tuple[Deferred, ...]
    notes: tuple[str, ...]
    ratifies: tuple[str, ...]
    created_at: datetime
    expires_at: datetime

    def __post_init__(self) -> None:
        numbers = [a.n for a in self.actions]
        if numbers != list(range(1, len(numbers) + 1)):
            raise PlanError(f"plan {self.id}: actions are not numbered 1..{len(numbers)}")

    def to_dict(self) -> JsonObject:
        return {
            "v": PLAN_FORMAT,
            "id": self.id,
            "origin": self.origin,
            "script": {"name": self.script, "sha256": self.inputs.script_sha256},
            "class": self.ceremony_class,
            "quorum": {"m": self.quorum_m, "n": self.quorum_n},
            "keysets": list(self.keysets),
            "parameters": {k: list(v) for k, v in sorted(self.parameters.items())},
            "inputs": self.inputs.to_dict(),
            "ledger": {"size": self.ledger_size,
                       "root": base64.b64encode(self.ledger_root).decode("ascii")},
            "actions": [a.to_dict() for a in self.actions],
            "deferred": [d.to_dict() for d in self.deferred],
            "notes": list(self.notes),
            "ratifies": list(self.ratifies),
            "created_at": format_time(self.created_at),
            "expires_at": format_time(self.expires_at),
        }

    def canonical(self) -> bytes:
        """The RFC 8785 bytes officers approve (raises EntryRejectedError on a float etc.)."""
        return canonicalize(self.to_dict())

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.canonical()).digest()

    @property
    def touches_hsm(self) -> bool:
        """Whether executing needs the HSM logged in (a ledger-only plan opens no PIN)."""
        return any(a.touches_hsm for a in self.actions)

    @classmethod
    def from_stored(cls, data: object) -> tuple[Plan, bytes]:
        """Parse a plan as stored in a `ceremony.planned` entry; return it and the SHA-256 of
        exactly those bytes.

        Raises:
            PlanError: not a plan of this format, or not in its one canonical form.
        """
        plan = cls.from_dict(data)
        try:
            stored = canonicalize(data)
        except EntryRejectedError as e:
            raise PlanError(f"plan {plan.id} holds a value a plan cannot carry") from e
        if stored != plan.canonical():
            raise PlanError(f"plan {plan.id} is not in its canonical form",
                            "the ledger holds a plan no console wrote: verify the ledger")
        return plan, hashlib.sha256(stored).digest()

    @classmethod
    def from_dict(cls, data: object) -> Plan:
        r = _Reader(data, "plan")
        if r.get("v", int) != PLAN_FORMAT:
            raise PlanError("the plan is of another format", "make a new plan")
        plan_id = r.get("id", str)
        where = f"plan {plan_id}"
        script = _Reader(r.get("script", dict), f"{where} script")
        quorum = _Reader(r.get("quorum", dict), f"{where} quorum")
        ledger = _Reader(r.get("ledger", dict), f"{where} ledger")
        inputs = PlanInputs.from_dict(r.get("inputs", dict))
        script_name = script.get("name", str)
        if script.get("sha256", str) != inputs.script_sha256:
            raise PlanError(f"{where}: the script digest is recorded twice, differently")
        raw_actions = r.get("actions", list)
        actions = tuple(Action.from_dict(a) for a in raw_actions)
        deferred = []
        for item in r.get("deferred", list):
            d = _Reader(item, f"{where} deferred item")
            deferred.append(Deferred(d.get("action", str), d.get("keyset", str), d.get("kid", str),
                                     d.get("earliest", str), d.get("why", str)))
            d.done()
        parameters: dict[str, tuple[str, ...]] = {}
        for name, values in r.get("parameters", dict).items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise PlanError(f"{where}: parameter {name!r} is not a list of text")
            parameters[name] = tuple(values)
        try:
            root = base64.b64decode(ledger.get("root", str), validate=True)
            created_at = parse_time(r.get("created_at", str), "plan created_at")
            expires_at = parse_time(r.get("expires_at", str), "plan expires_at")
        except (binascii.Error, ValueError, ConsoleError) as e:
            raise PlanError(f"{where}: a time or the ledger root is malformed") from e
        plan = cls(
            id=plan_id, origin=r.get("origin", str), script=script_name,
            ceremony_class=r.get("class", str), quorum_m=quorum.get("m", int),
            quorum_n=quorum.get("n", int), keysets=tuple(_texts(r.get("keysets", list), where)),
            parameters=parameters, inputs=inputs, ledger_size=ledger.get("size", int),
            ledger_root=root, actions=actions, deferred=tuple(deferred),
            notes=tuple(_texts(r.get("notes", list), where)),
            ratifies=tuple(_texts(r.get("ratifies", list), where)),
            created_at=created_at, expires_at=expires_at,
        )
        for reader in (r, script, quorum, ledger):
            reader.done()
        return plan


def _texts(values: list[object], where: str) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise PlanError(f"{where}: a list holds something other than text")
    return [v for v in values if isinstance(v, str)]


class _Reader:
    """Strict member access: each member is read once, with its type; `done` refuses extras."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise PlanError(f"{where} is not an object")
        self.data: JsonMapping = data
        self.where = where
        self.seen: set[str] = set()

    def get(self, key: str, kind: type[T]) -> T:
        self.seen.add(key)
        value = self.data.get(key)
        if kind is int and isinstance(value, bool):
            value = None
        if not isinstance(value, kind):
            raise PlanError(f"{self.where}: member {key!r} is missing or not {kind.__name__}")
        return value

    def optional(self, key: str, kind: type[T]) -> T | None:
        self.seen.add(key)
        value = self.data.get(key)
        if value is not None and not isinstance(value, kind):
            raise PlanError(f"{self.where}: member {key!r} is not {kind.__name__}")
        return value

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise PlanError(f"{self.where}: unknown member(s) {', '.join(extra)}")


__all__ = ["CLASS_RANK", "PLAN_FORMAT", "PLAN_LIFETIME", "Deferred", "Plan", "PlanInputs",
           "plan_class"]

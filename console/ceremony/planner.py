"""Planning: a script, the ledger's state, the policy and `now` become one canonical plan.

The plan is what officers approve: every action with its parameters and the computed times
(and why each time is what it is), the ledger checkpoint it starts from, and when it expires.
Its digest is SHA-256 of its JCS bytes. Key actions come from `lifecycle.plan_rotation` /
`plan_emergency`, so the timing rules are applied in one place; the script decides which kinds
of action this ceremony may take.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from console.ceremony.journal import PlanRecord
from console.ceremony.script import Script
from console.clock import format_time
from console.config import Policy, WorkspaceConfig
from console.errors import PlanError
from console.lifecycle import (
    PUBLISHED_STATES,
    KeysetState,
    KeyState,
    RotationPlan,
    earliest_destruction,
    plan_emergency,
    plan_rotation,
    rotation_due,
    short_kid,
)
from console.quorum.cards import OfficerPublicKeys

PLAN_LIFETIME = timedelta(hours=24)
"""How long a plan can gather approvals before it must be made again."""

BUNDLE_KEYSET = "_bundle"
"""The pseudo-keyset of the workspace's bundle-signing key (policy keyset names cannot start
with '_')."""

BUNDLE_ALG = "ES256"
KEY_ACTIONS = ("generate", "self_test", "publish", "activate", "retire", "unpublish",
               "compromise", "destroy", "suspend")
# A keyset is due for a quarterly rotation this long before its cryptoperiod ends.
DUE_LEAD = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """Everything planning reads, gathered by the service from the workspace."""

    script: Script
    config: WorkspaceConfig
    policy: Policy
    keysets: Mapping[str, KeysetState]
    plans: Mapping[str, PlanRecord]
    ledger_size: int
    ledger_root: bytes
    now: datetime
    requested_keysets: Sequence[str]
    parameters: Mapping[str, tuple[str, ...]]
    enrolling: Sequence[OfficerPublicKeys]
    active_officers: Sequence[str]
    pending_ratification: Sequence[str]


def new_plan_id() -> str:
    return secrets.token_hex(6)


def build_plan(inputs: PlanInputs, *, plan_id: str | None = None) -> dict[str, Any]:
    """The plan document (JCS-ready: text, integers, booleans, lists and objects only).

    Raises:
        PlanError: nothing to do, a keyset not in the policy, or parameters that do not fit.
    """
    script = inputs.script
    now = inputs.now
    steps = {s.action for s in script.steps}
    keyset_names = _select_keysets(inputs)
    actions: list[dict[str, Any]] = []
    deferred: list[dict[str, Any]] = []
    notes: list[str] = []
    labels = _Labels(now)
    emitted_key_actions = False
    bundle_key = _bundle_key(inputs.keysets)

    for step in script.steps:
        action = step.action
        if action == "reconcile":
            actions.append({"action": "reconcile",
                            "description": "reconcile the HSM inventory with the ledger"})
        elif action == "generate" and step.option("purpose") == "bundle":
            if bundle_key is None:
                label = labels.make("bundle-signing")
                actions.append({
                    "action": "generate", "keyset": BUNDLE_KEYSET, "purpose": "bundle",
                    "alg": BUNDLE_ALG, "label": label,
                    "description": f"generate the bundle-signing key {label} ({BUNDLE_ALG})",
                })
                actions.append({"action": "self_test", "keyset": BUNDLE_KEYSET, "label": label,
                                "description": f"self-test {label}"})
                actions.append({"action": "publish", "keyset": BUNDLE_KEYSET, "label": label,
                                "description": f"publish {label} as the pinned bundle key"})
                actions.append({"action": "activate", "keyset": BUNDLE_KEYSET, "label": label,
                                "description": f"make {label} the bundle-signing key"})
        elif action in KEY_ACTIONS:
            if emitted_key_actions:
                continue
            emitted_key_actions = True
            for name in keyset_names:
                planned, extra = _key_actions(inputs, name, steps, labels)
                actions += planned
                deferred += extra["deferred"]
                notes += extra["notes"]
            if "destroy" in steps and "generate" not in steps:
                actions += _orphan_destructions(inputs.plans)
        elif action == "export_bundle":
            for name in keyset_names:
                actions.append({"action": "export_bundle", "keyset": name,
                                "description": f"sign and export the JWKS bundle of {name}"})
        elif action == "export_audit":
            actions.append({"action": "export_audit", "description": "write an audit pack"})
        elif action == "checkpoint":
            actions.append({"action": "checkpoint",
                            "description": "checkpoint cosigned by the approving officers"})
        elif action == "note":
            actions.append({"action": "note", "text": step.option("text"),
                            "description": "witness note"})
        elif action == "enroll_officer":
            for officer in inputs.enrolling:
                actions.append({
                    "action": "enroll_officer", "officer": officer.name,
                    "ed25519": _b64url(officer.ed25519_public),
                    "x25519": _b64url(officer.x25519_public),
                    "description": f"enrol officer {officer.name}",
                })
        elif action == "revoke_officer":
            for name in inputs.parameters.get("revoke", ()):
                if name not in inputs.active_officers:
                    raise PlanError(f"{name} is not an enrolled officer",
                                    "see `ceremony officer list`")
                actions.append({"action": "revoke_officer", "officer": name,
                                "description": f"revoke officer {name}"})
        elif action == "resplit_pin":
            remaining = [n for n in inputs.active_officers
                         if n not in inputs.parameters.get("revoke", ())]
            remaining += [o.name for o in inputs.enrolling]
            rules = inputs.config.quorum
            hardest = max(rules.routine.m, rules.destructive.m, rules.emergency.m)
            if len(remaining) < hardest:
                raise PlanError(
                    f"the change leaves {len(remaining)} officers, but a quorum in "
                    f"ceremony.toml needs {hardest}",
                    "enrol a replacement in the same ceremony (--set enroll=CARD)",
                )
            threshold = pin_threshold(inputs.config, len(remaining))
            actions.append({
                "action": "resplit_pin", "officers": remaining, "threshold": threshold,
                "description": f"change the HSM PIN and split it {threshold} of "
                               f"{len(remaining)} among {', '.join(remaining)}",
            })

    if not any(a["action"] not in ("reconcile", "checkpoint", "note") for a in actions):
        raise PlanError(f"{script.name}: nothing to do now",
                        _nothing_to_do_hint(deferred))
    if script.name == "genesis" and bundle_key is None and not any(
            a.get("purpose") == "bundle" for a in actions):
        raise PlanError("genesis must make the bundle-signing key", "use the shipped genesis")
    if any(a["action"] == "export_bundle" for a in actions) and bundle_key is None and not any(
            a.get("purpose") == "bundle" for a in actions):
        raise PlanError("there is no bundle-signing key yet", "run genesis first")

    quorum = inputs.config.quorum.for_class(script.ceremony_class)
    ratifies = list(inputs.pending_ratification) if script.ceremony_class == "routine" else []
    for plan_ref in ratifies:
        notes.append(f"ratifies emergency ceremony {plan_ref}")
    return {
        "v": 1,
        "id": plan_id or new_plan_id(),
        "origin": inputs.config.origin,
        "script": {"name": script.name, "sha256": script.sha256},
        "class": script.ceremony_class,
        "quorum": {"m": quorum.m, "n": quorum.n},
        "keysets": list(keyset_names),
        "parameters": {k: list(v) for k, v in sorted(inputs.parameters.items())},
        "policy_sha256": inputs.policy.sha256(),
        "actions": [{"n": i, **a} for i, a in enumerate(actions, start=1)],
        "deferred": deferred,
        "notes": notes,
        "ratifies": ratifies,
        "ledger": {"size": inputs.ledger_size,
                   "root": base64.b64encode(inputs.ledger_root).decode("ascii")},
        "created_at": format_time(now),
        "expires_at": format_time(now + PLAN_LIFETIME),
    }


def pin_threshold(config: WorkspaceConfig, officers: int) -> int:
    """The PIN opens with the smallest quorum of any class: every ceremony must log in."""
    quorum = config.quorum
    return max(1, min(min(r.m for r in (quorum.routine, quorum.destructive, quorum.emergency)),
                      officers))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _bundle_key(keysets: Mapping[str, KeysetState]) -> str | None:
    state = keysets.get(BUNDLE_KEYSET)
    if state is None:
        return None
    for key in state.keys:
        if key.state is KeyState.ACTIVE:
            return key.kid
    return None


class _Labels:
    """CKA_LABELs for new keys: `<keyset>-<yyyymmdd>-<random>`; unique on any token."""

    def __init__(self, now: datetime) -> None:
        self.day = now.strftime("%Y%m%d")

    def make(self, keyset: str) -> str:
        return f"{keyset}-{self.day}-{secrets.token_hex(3)}"


def _select_keysets(inputs: PlanInputs) -> list[str]:
    policy = inputs.policy
    script = inputs.script
    for name in inputs.requested_keysets:
        policy.keyset(name)  # raises with the list of keysets
    if not any(s.action in (*KEY_ACTIONS, "export_bundle") for s in script.steps):
        if inputs.requested_keysets:
            raise PlanError(f"{script.name} takes no --keyset", "leave --keyset out")
        return []
    if inputs.requested_keysets:
        return list(dict.fromkeys(inputs.requested_keysets))
    names = list(policy.names)
    if script.name == "genesis":
        chosen = [n for n in names if not _has_token_keys(inputs.keysets.get(n))]
        if not chosen:
            raise PlanError("every keyset already has keys: genesis ran before",
                            "run quarterly-rotation, or add a keyset to policy.toml")
        return chosen
    if script.name == "quarterly-rotation":
        chosen = []
        for name in names:
            state = inputs.keysets.get(name)
            if not _has_token_keys(state):
                continue
            assert state is not None
            due = rotation_due(state, policy.keyset(name), inputs.now)
            if due.next_due is None or due.overdue or inputs.now >= due.next_due - DUE_LEAD:
                chosen.append(name)
        if not chosen:
            raise PlanError("no keyset is due for rotation",
                            "see `ceremony status`; name one with --keyset to rotate early")
        return chosen
    return [n for n in names if _has_token_keys(inputs.keysets.get(n))]


def _has_token_keys(state: KeysetState | None) -> bool:
    return state is not None and bool(state.token_keys)


def _key_actions(inputs: PlanInputs, name: str, steps: set[str],
                 labels: _Labels) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    policy = inputs.policy.keyset(name)
    state = inputs.keysets.get(name, KeysetState(name))
    now = inputs.now
    extra: dict[str, list[Any]] = {"deferred": [], "notes": []}
    out: list[dict[str, Any]] = []
    if "destroy" in steps and not ({"generate", "activate"} & steps):
        for key in state.in_state(KeyState.ARCHIVED, KeyState.COMPROMISED):
            ready = earliest_destruction(key, policy)
            if ready <= now:
                out.append({"action": "destroy", "keyset": name, "kid": key.kid,
                            "label": key.label, "cka_id": key.cka_id,
                            "why": f"unpublished {format_time(key.archived_at or now)} + wait "
                                   f"{policy.destruction_wait.days} d ended {format_time(ready)}",
                            "description": f"destroy the private key of {short_kid(key.kid)}"})
            else:
                extra["deferred"].append({"action": "destroy", "keyset": name, "kid": key.kid,
                                          "earliest": format_time(ready),
                                          "why": "destruction wait"})
        return out, extra
    rotation: RotationPlan
    if "compromise" in steps:
        rotation = plan_emergency(state, policy, now)
    else:
        rotation = plan_rotation(state, policy, now)
    refs: dict[str, str] = {}
    pairs = _pairs(rotation)
    for planned in rotation.actions:
        if planned.action not in steps:
            continue
        target: dict[str, Any] = {}
        if planned.new_key is not None:
            label = refs.get(planned.new_key)
            if label is None:
                label = refs[planned.new_key] = labels.make(name)
            target = {"label": label}
            shown = label
        else:
            assert planned.kid is not None
            target = {"kid": planned.kid}
            shown = short_kid(planned.kid)
        entry: dict[str, Any] = {"action": planned.action, "keyset": name, **target,
                                 "why": planned.reason}
        if planned.action == "generate":
            entry["alg"] = policy.alg
            if policy.rsa_bits is not None:
                entry["rsa_bits"] = policy.rsa_bits
            entry["purpose"] = "token"
            entry["description"] = f"generate {policy.alg} key {shown} for {name}"
            out.append(entry)
            if "self_test" in steps:
                out.append({"action": "self_test", "keyset": name, **target,
                            "description": f"self-test {shown}"})
            continue
        if planned.waived:
            entry["waived"] = planned.waived
        partner = pairs.get((planned.action, planned.kid or planned.new_key or ""))
        if partner is not None:
            entry["paired_with"] = partner
        entry["description"] = f"{planned.action} {shown}"
        out.append(entry)
    for item in rotation.deferred:
        extra["deferred"].append({"action": item.action, "keyset": name, "kid": item.kid,
                                  "earliest": format_time(item.earliest), "why": item.reason})
    extra["notes"] += [f"{name}: {n}" for n in rotation.notes]
    return out, extra


def _orphan_destructions(plans: Mapping[str, PlanRecord]) -> list[dict[str, Any]]:
    """Keys left on the token by generation steps of aborted ceremonies: reconciliation reports
    them; destroying them is this quorum-approved step (never done silently)."""
    resolved = {str(d.get("cka_id")) for p in plans.values() for d in p.done.values()
                if d.get("orphan")}
    out = []
    for record in plans.values():
        if record.aborted_at is None:
            continue
        for n, intent in sorted(record.intents.items()):
            cka_id = str(intent.get("cka_id", ""))
            if intent.get("action") != "generate" or n in record.done or cka_id in resolved:
                continue
            out.append({
                "action": "destroy", "orphan": True, "keyset": str(intent.get("keyset", "")),
                "cka_id": cka_id, "label": str(intent.get("label", "")),
                "why": f"left by step {n} of aborted plan {record.plan_id}",
                "description": f"destroy orphan key {intent.get('label')} (if on the token)",
            })
    return out


def _pairs(rotation: RotationPlan) -> dict[tuple[str, str], str]:
    """For a retire+activate switch, each side's partner kid (the activation's is the retiree)."""
    retire = next((a for a in rotation.actions if a.action == "retire"), None)
    activate = next((a for a in rotation.actions if a.action == "activate" and a.kid), None)
    if retire is None or activate is None or retire.kid is None or activate.kid is None:
        return {}
    return {("retire", retire.kid): activate.kid, ("activate", activate.kid): retire.kid}


def _nothing_to_do_hint(deferred: list[dict[str, Any]]) -> str:
    if deferred:
        first = min(deferred, key=lambda d: d["earliest"])
        return (f"the next action ({first['action']} {short_kid(first['kid'])}) is allowed "
                f"from {first['earliest']}")
    return "see `ceremony status`"


def jwks_keys(state: KeysetState) -> list[Mapping[str, Any]]:
    """The public JWKs a keyset's bundle carries: published, active, retired, suspended."""
    return [k.jwk for k in state.token_keys if k.state in PUBLISHED_STATES]

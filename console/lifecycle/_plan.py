"""What a quarterly or emergency rotation should do now, computed from state, policy and `now`.

Plans are values: the ceremony engine turns each `PlannedAction` into steps. Keys the ceremony
will generate have no kid yet; they are named `new-1`, `new-2` in `PlannedAction.new_key`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from console.clock import format_duration, format_time, require_utc
from console.config import KeysetPolicy
from console.jsontypes import JsonObject
from console.lifecycle._model import KeysetState, KeyState, short_kid
from console.lifecycle._rules import (
    _activation_why,
    earliest_activation,
    earliest_destruction,
    earliest_unpublish,
)

S = KeyState


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One action: `kid` for an existing key, `new_key` ("new-1") for one this ceremony makes."""

    action: str  # generate | publish | activate | retire | unpublish | compromise
    at: datetime
    reason: str
    kid: str | None = None
    new_key: str | None = None
    waived: str | None = None  # the timing rule an emergency waives, if any

    def to_dict(self) -> JsonObject:
        return {"action": self.action, "at": format_time(self.at), "reason": self.reason,
                "kid": self.kid, "new_key": self.new_key, "waived": self.waived}


@dataclass(frozen=True, slots=True)
class Deferred:
    """An action that is not allowed yet, and when it will be."""

    action: str
    kid: str
    earliest: datetime
    reason: str

    def to_dict(self) -> JsonObject:
        return {"action": self.action, "kid": self.kid, "earliest": format_time(self.earliest),
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class RotationPlan:
    keyset: str
    now: datetime
    actions: tuple[PlannedAction, ...]
    deferred: tuple[Deferred, ...] = ()
    destroyable: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> JsonObject:
        return {
            "keyset": self.keyset,
            "now": format_time(self.now),
            "actions": [a.to_dict() for a in self.actions],
            "deferred": [d.to_dict() for d in self.deferred],
            "destroyable": list(self.destroyable),
            "notes": list(self.notes),
        }


def _unpublish_and_destroy(keyset: KeysetState, policy: KeysetPolicy, now: datetime,
                           actions: list[PlannedAction], deferred: list[Deferred],
                           skip: str | None = None) -> list[str]:
    for key in keyset.in_state(S.RETIRED):
        if key.kid == skip:
            continue
        ready = earliest_unpublish(key, policy)
        why = (f"grace for tokens it signed (token lifetime "
               f"{format_duration(policy.max_token_lifetime)} + skew "
               f"{format_duration(policy.clock_skew)} + margin {format_duration(policy.margin)})")
        if ready <= now:
            actions.append(PlannedAction("unpublish", now, f"{why} ended {format_time(ready)}",
                                         kid=key.kid))
        else:
            deferred.append(Deferred("unpublish", key.kid, ready, f"{why} ends then"))
    destroyable = []
    for key in keyset.in_state(S.ARCHIVED, S.COMPROMISED):
        ready = earliest_destruction(key, policy)
        if ready <= now:
            destroyable.append(key.kid)
        else:
            deferred.append(Deferred("destroy", key.kid, ready,
                                     f"destruction wait {format_duration(policy.destruction_wait)}"
                                     " after unpublication"))
    return destroyable


class _Successors:
    """Makes successors: a key generated before but never published (an aborted ceremony's,
    already audited on the token) is published first; otherwise a new one is generated."""

    def __init__(self, keyset: KeysetState, now: datetime, actions: list[PlannedAction],
                 publish_reason: str) -> None:
        self.unpublished = list(keyset.in_state(S.GENERATED))
        self.now = now
        self.actions = actions
        self.publish_reason = publish_reason
        self.count = 0

    def __call__(self, reason: str) -> dict[str, str]:
        if self.unpublished:
            key = self.unpublished.pop(0)
            self.actions.append(PlannedAction(
                "publish", self.now, f"{reason}: {short_kid(key.kid)} was generated "
                f"{format_time(key.created_at)} and never published", kid=key.kid))
            return {"kid": key.kid}
        self.count += 1
        ref = f"new-{self.count}"
        self.actions.append(PlannedAction("generate", self.now, reason, new_key=ref))
        self.actions.append(PlannedAction("publish", self.now, self.publish_reason, new_key=ref))
        return {"new_key": ref}


def plan_rotation(keyset: KeysetState, policy: KeysetPolicy, now: datetime) -> RotationPlan:
    """The quarterly rotation as of `now` (also genesis, when the keyset has no active key yet).

    1. activate the oldest published successor if its earliest activation has passed, retiring
       the active key at the same instant (else defer, naming when it will be allowed);
    2. generate and publish a successor when none will remain published;
    3. unpublish retired keys whose grace has ended;
    4. list archived/compromised keys whose destruction wait has passed (destruction is its own,
       destructive-class ceremony).
    """
    now = require_utc(now, "now")
    actions: list[PlannedAction] = []
    deferred: list[Deferred] = []
    notes: list[str] = []
    active = keyset.active_key
    successors = list(keyset.successors)
    new_key = _Successors(keyset, now, actions, "announce it in the JWKS before it signs")

    if not keyset.set_up:
        # Genesis: no consumer trusts any key yet, so the first key may sign at once.
        if successors:
            first = successors.pop(0)
            actions.append(PlannedAction("activate", now, "genesis: first signing key",
                                         kid=first.kid, waived="activation-delay"))
        else:
            ref = new_key("genesis: first signing key")
            actions.append(PlannedAction("activate", now, "genesis: first signing key",
                                         waived="activation-delay", **ref))
        notes.append("genesis: consumers accept tokens once they have installed the first bundle")
    elif active is None:
        notes.append("no active key: run emergency-rotation, which may activate a key at once")
    elif successors:
        candidate = successors[0]
        ready = earliest_activation(candidate, policy)
        if ready <= now:
            successors.pop(0)
            why = _activation_why(candidate, policy)
            actions.append(PlannedAction("retire", now, f"{short_kid(candidate.kid)} takes over",
                                         kid=active.kid))
            actions.append(PlannedAction("activate", now,
                                         f"allowed since {format_time(ready)} ({why})",
                                         kid=candidate.kid))
        else:
            deferred.append(Deferred("activate", candidate.kid, ready,
                                     _activation_why(candidate, policy)))
    if not successors:
        new_key("a published successor must always be ready for the next rotation")
    destroyable = _unpublish_and_destroy(keyset, policy, now, actions, deferred)
    return RotationPlan(keyset.name, now, tuple(actions), tuple(deferred), tuple(destroyable),
                        tuple(notes))


def plan_emergency(keyset: KeysetState, policy: KeysetPolicy, now: datetime, *,
                   kid: str | None = None) -> RotationPlan:
    """Compromise response: compromise `kid` (default: the active key) and unpublish it at once,
    make the oldest published successor sign at once (the activation delay is waived), and
    publish a fresh successor.

    What consumers see: the compromised key leaves the JWKS now, but a consumer keeps trusting
    it until it fetches or installs the new bundle (up to its propagation time). The successor
    signs at once; a consumer that had not yet received it (published less than its propagation
    time ago) rejects the new tokens until it does. Both windows are listed in `notes`.
    """
    now = require_utc(now, "now")
    target = keyset.key(kid) if kid is not None else keyset.active_key
    actions: list[PlannedAction] = []
    deferred: list[Deferred] = []
    notes: list[str] = []
    successors = list(keyset.successors)
    if target is None:
        notes.append("no active key to compromise: activating a successor at once")
    else:
        actions.append(PlannedAction("compromise", now,
                                     "suspected compromise: unpublish at once, no grace",
                                     kid=target.kid))
        for consumer in policy.consumers:
            notes.append(f"{consumer.name} may still trust {short_kid(target.kid)} until "
                         f"{format_time(now + consumer.propagation)}")
    replaces_active = target is None or target.state is S.ACTIVE
    if target is not None and target.kid in {s.kid for s in successors}:
        successors = [s for s in successors if s.kid != target.kid]
    new_key = _Successors(keyset, now, actions, "announce it in the JWKS")

    if replaces_active:
        if successors:
            chosen = successors.pop(0)
            published = chosen.published_at or now
            actions.append(PlannedAction("activate", now, "takes over from the compromised key",
                                         kid=chosen.kid, waived="activation-delay"))
            late = [c for c in policy.consumers if published + c.propagation > now]
        else:
            ref = new_key("no published successor: a new key must sign at once")
            actions.append(PlannedAction("activate", now, "takes over from the compromised key",
                                         waived="activation-delay", **ref))
            published, late = now, list(policy.consumers)
        for consumer in late:
            notes.append(f"{consumer.name} rejects tokens of the new signing key until "
                         f"{format_time(published + consumer.propagation)}")
    if not successors:
        new_key("a published successor must always be ready")
    destroyable = _unpublish_and_destroy(keyset, policy, now, actions, deferred,
                                         skip=target.kid if target is not None else None)
    notes.append("ratify this emergency at the next ceremony with a routine quorum")
    return RotationPlan(keyset.name, now, tuple(actions), tuple(deferred), tuple(destroyable),
                        tuple(notes))


__all__ = ["Deferred", "PlannedAction", "RotationPlan", "plan_emergency", "plan_rotation"]

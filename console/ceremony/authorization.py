"""Whether every ceremony a ledger records was authorized as the console requires: the audit
pack verifier's last layer (pure: entries in, `LedgerTamperedError` out; no SQLite, no HSM).

The tree, the checkpoints and the officer replay (`console.ledger.trust`) prove what the ledger
says and that a quorum of officers cosigned it. They do not prove that each change was allowed:
cosigners sign a root, they do not review every entry, and an insider who can write the SQLite
file can append entries that a later checkpoint covers. This replay applies, offline, the rules
the console applies before it writes (DESIGN.md §6 "Plan and approval", "Quorum classes"):

1. `ceremony.planned`: the plan parses as the console writes plans (`Plan.from_stored`), the
   digest recorded beside it is SHA-256 of its JCS bytes, it was made on this ledger as it was
   just before it (origin, size, root, rehearsal flag, quorum rules, time), its class is the one
   its actions need (`plan_class` with the quorum in force then: what an action needs is fixed in
   code by its kind), it asks for that class's M of N, and it lives `PLAN_LIFETIME`.
2. `ceremony.approved`: the approving officer is in force at that point (the trust replay), the
   Ed25519 signature over `key-ceremony-approval/v1\\n` + hex(digest) verifies with their key
   (`approval_status`, the console's own rule), the digest is the plan's, it was made before
   the plan expired, and that officer approved this plan once.
3. `ceremony.started`: the plan's distinct approvals, by officers still in force, reach the M
   of its class; before the plan expired; once (a ceremony goes on with `ceremony.resumed`).
4. Every entry that changes state or records a ceremony's work (`ACTING_TYPES`) names a
   ceremony that started and has not ended (the `ceremony.ratified` records of a completion
   follow it). What only a destructive action does must be an action of that ceremony's plan
   (`officer.*`, `pin.resplit`, `config.recorded`, `signer.*`, `reconcile.finding` for a
   destroyed orphan, `key.state_changed` to `destroyed`), so its plan needed the destructive
   quorum, and `policy.changed`, which no console writes, never is. With no ceremony, only what
   `ceremony init` writes before anything else: `workspace.created`, then `config.recorded`,
   `officer.enrolled` and `pin.resplit`.
5. `ceremony.ratified`: by a routine ceremony whose plan names the ratified emergency
   ceremony, which completed before.

Entries of other types (failed unlocks, refusals, checkpoints, notes, types this console does not
write) change nothing and are not judged here. An emergency ceremony that acted and was not
ratified is reported (`Authorization.unratified`), not refused: the console lets an emergency
wait for the next routine ceremony.

The audit-pack verifier hands each entry it parses to `AuthorizationReplay.entry` (the types in
`STRICT_TYPES` always, so that their data is read), and, for the lines its fast path accepts
without parsing them, the ceremony of each run of lines of `BULK_TYPES` to `act`; a
`key.state_changed` to `destroyed` (`DESTROYED_MARKER`) always takes the strict path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from console.ceremony.actions import (
    Action,
    Destroy,
    DestroyOrphan,
    EnrollOfficer,
    RecordConfig,
    ReleaseSigner,
    ResplitPin,
    RevokeOfficer,
    RevokeSigner,
)
from console.ceremony.plan import PLAN_LIFETIME, Plan, plan_class
from console.clock import format_time
from console.errors import LedgerTamperedError, PlanError, QuorumError
from console.ledger.entry import Entry, Watch
from console.ledger.trust import (
    CLASSES,
    CONFIG_RECORDED,
    ENROLLED,
    REVOKED,
    WORKSPACE_CREATED,
    OfficerRegistry,
    TrustReplay,
)
from console.quorum.approvals import Approval, RejectReason, approval_status

PLANNED = "ceremony.planned"
APPROVED = "ceremony.approved"
STARTED = "ceremony.started"
RESUMED = "ceremony.resumed"
COMPLETED = "ceremony.completed"
ABORTED = "ceremony.aborted"
RATIFIED = "ceremony.ratified"
PIN_RESPLIT = "pin.resplit"
KEY_STATE_CHANGED = "key.state_changed"

BULK_TYPES = frozenset({
    "key.generated", KEY_STATE_CHANGED, "bundle.exported", "consumer.probed",
    "ceremony.step.intent", "ceremony.step.done", "ceremony.step.failed",
})
"""What a ceremony writes at every step: each must lie inside its authorized ceremony, which
the fast path reports by run (`console.ledger.entry.Watch`) without parsing the lines."""
EFFECT_TYPES = frozenset({
    ENROLLED, REVOKED, PIN_RESPLIT, CONFIG_RECORDED, "signer.released", "signer.revoked",
    "reconcile.finding", "policy.changed",
})
"""State only a destructive action (or nothing) writes: each must be an action of its plan."""
ACTING_TYPES = BULK_TYPES | EFFECT_TYPES | {RESUMED, COMPLETED, RATIFIED}
"""Entries that change state or record a ceremony's work: inside a started, open ceremony."""
STRICT_TYPES = EFFECT_TYPES | {PLANNED, APPROVED, STARTED, RESUMED, COMPLETED, ABORTED,
                               RATIFIED, WORKSPACE_CREATED}
"""Read whole, always (few per ceremony)."""
DESTROYED_MARKER = '"to":"destroyed"'
"""Canonical text of a `key.state_changed` to `destroyed`: such lines take the strict path."""
WATCH = Watch(BULK_TYPES, (DESTROYED_MARKER,))
"""What the replay needs of the lines a fast path accepts without parsing them: the ceremony of
each run of a ceremony's step entries (`LineScan.acts`); a key destroyed is read whole."""
GENESIS_TYPES = frozenset({WORKSPACE_CREATED, CONFIG_RECORDED, ENROLLED, PIN_RESPLIT})
"""What `ceremony init` writes with no ceremony, before anything else."""

_FORGED = "no console writes such an entry: do not trust the pack, report it"
_UNAUTHORIZED = ("the entry was written behind the console's back, unapproved: do not trust the "
                 "pack, report it")

__all__ = [
    "ACTING_TYPES",
    "BULK_TYPES",
    "DESTROYED_MARKER",
    "STRICT_TYPES",
    "WATCH",
    "Authorization",
    "AuthorizationReplay",
    "Unratified",
]


@dataclass(frozen=True, slots=True)
class Unratified:
    """An emergency ceremony that acted under the emergency quorum and that no routine ceremony
    ratified (yet)."""

    plan_id: str
    script: str
    state: str
    """"completed", "aborted" or "interrupted" (started, not ended)."""
    started_seq: int


@dataclass(frozen=True, slots=True)
class Authorization:
    """What `AuthorizationReplay` established."""

    planned: int
    """Plans recorded (each digest checked)."""
    ceremonies: int
    """Ceremonies that started, each approved by the quorum of its class."""
    by_class: Mapping[str, int]
    """Started ceremonies per class."""
    unratified: tuple[Unratified, ...]


@dataclass
class _Ceremony:
    """One plan as the replay knows it (mutable, private to the replay)."""

    plan: Plan
    digest: bytes
    planned_seq: int
    approvals: dict[str, int] = field(default_factory=dict)
    """Officer → seq of their approval."""
    started_seq: int | None = None
    completed_seq: int | None = None
    aborted_seq: int | None = None
    ratified_by: str | None = None

    @property
    def name(self) -> str:
        return (f"ceremony {self.plan.id} ({self.plan.script}, {self.plan.ceremony_class} "
                f"quorum {self.plan.quorum_m} of {self.plan.quorum_n})")

    def approvers(self) -> str:
        return ", ".join(self.approvals) or "nobody"


def _refuse(what: str, hint: str = _FORGED) -> LedgerTamperedError:
    return LedgerTamperedError(what, hint)


class AuthorizationReplay:
    """Feed every entry the caller parses to `entry`, and the fast path's runs to `act`, in seq
    order; `result()` says what was established. The officers and quorum in force at each entry
    are read from `trust`, the caller's trust replay, which has folded every entry before it."""

    def __init__(self, origin: str, trust: TrustReplay, *,
                 parse_plan: Callable[[Entry], tuple[Plan, bytes]] | None = None) -> None:
        self.origin = origin
        self.trust = trust
        self.parse_plan = parse_plan
        """How a `ceremony.planned` entry's plan is parsed: `Plan.from_stored` of its data,
        or the console's memo of that by the entry's leaf hash (`journal.parsed_plan`)."""
        self.ceremonies: dict[str, _Ceremony] = {}
        self.genesis_end = 0
        """Entries `[0, genesis_end)` are `ceremony init`'s own (no ceremony)."""

    # --- what the trust replay says now --------------------------------------------------------

    def _officers(self) -> OfficerRegistry:
        trust = self.trust
        return trust.in_force if trust.in_force is not None else trust.pending

    def _established(self) -> bool:
        return self.trust.in_force is not None

    # --- entries ----------------------------------------------------------------------------

    def entry(self, entry: Entry, *, root: Callable[[], bytes]) -> None:
        """Judge one parsed entry; `root()` is the tree's root of the entries before it.

        Raises:
            LedgerTamperedError: naming what is wrong (the caller adds where).
        """
        kind = entry.type
        if entry.ceremony is None and kind in GENESIS_TYPES and entry.seq == self.genesis_end:
            self.genesis_end += 1
            return
        if kind == PLANNED:
            self._planned(entry, root)
        elif kind == APPROVED:
            self._approved(entry)
        elif kind == STARTED:
            self._started(entry)
        elif kind == ABORTED:
            self._aborted(entry)
        elif kind == RATIFIED:
            self._ratified(entry)
        elif kind in ACTING_TYPES:
            ceremony = self._acting(kind, entry.ceremony, entry.seq, ratifying=False)
            # Lines of BULK_TYPES are judged here exactly as by `act` (the fast path's view).
            if kind in (RESUMED, COMPLETED):
                self._names_its_plan(entry)
            if kind == COMPLETED:
                ceremony.completed_seq = entry.seq
            elif kind in EFFECT_TYPES or kind == KEY_STATE_CHANGED:
                self._effect(entry, ceremony)

    def act(self, kind: str, ceremony: str | None, seq: int) -> None:
        """Lines of `kind` (in `BULK_TYPES`) of `ceremony`, from `seq` on, were accepted without
        being parsed, with no entry this replay judges between them.

        Raises:
            LedgerTamperedError: the ceremony did not start or had ended by then.
        """
        self._acting(kind, ceremony, seq, ratifying=False)

    def result(self) -> Authorization:
        started = [c for c in self.ceremonies.values() if c.started_seq is not None]
        by_class = {cls: sum(c.plan.ceremony_class == cls for c in started) for cls in CLASSES}
        unratified = tuple(
            Unratified(c.plan.id, c.plan.script,
                       "completed" if c.completed_seq is not None else
                       "aborted" if c.aborted_seq is not None else "interrupted",
                       c.started_seq)
            for c in started
            if c.plan.ceremony_class == "emergency" and c.ratified_by is None
            and c.started_seq is not None)
        return Authorization(len(self.ceremonies), len(started), by_class, unratified)

    # --- each kind ----------------------------------------------------------------------------

    def _planned(self, entry: Entry, root: Callable[[], bytes]) -> None:
        data = entry.data
        recorded = data.get("digest")
        if set(data) != {"plan", "digest"} or not isinstance(recorded, str):
            raise _refuse("a plan entry holds exactly the plan and its digest")
        try:
            plan, digest = (self.parse_plan(entry) if self.parse_plan is not None
                            else Plan.from_stored(data["plan"]))
        except PlanError as e:
            raise _refuse(f"the plan is not one the console writes: {e.message}") from e
        if recorded != digest.hex():
            raise _refuse(f"plan {plan.id}: the recorded digest {recorded[:16]}… is not the "
                          f"SHA-256 of the plan's JCS bytes ({digest.hex()[:16]}…)",
                          "the plan was edited after it was made: the officers approved "
                          "another plan (do not trust the pack, report it)")
        if entry.ceremony != plan.id:
            raise _refuse(f"plan {plan.id} is recorded under ceremony {entry.ceremony!r}")
        if plan.id in self.ceremonies:
            raise _refuse(f"plan id {plan.id} was planned before (seq "
                          f"{self.ceremonies[plan.id].planned_seq})")
        made = (f"plan {plan.id} was not made on this ledger as it was before it")
        if plan.origin != self.origin:
            raise _refuse(f"{made}: its origin is {plan.origin!r}")
        if plan.ledger_size != entry.seq or plan.ledger_root != root():
            raise _refuse(f"{made}: it names the tree of {plan.ledger_size} entries "
                          f"(this entry is number {entry.seq}) or another root")
        if plan.created_at != entry.time:
            raise _refuse(f"{made}: made at {format_time(plan.created_at)}, recorded at "
                          f"{format_time(entry.time)}")
        if self.trust.rehearsal is not None and plan.inputs.rehearsal != self.trust.rehearsal:
            raise _refuse(f"{made}: its rehearsal flag is not the workspace's")
        established = self._established()
        quorum = self.trust.in_force_quorum if established else self.trust.pending_quorum
        config = self.trust.in_force_config if established else self.trust.pending_config
        if quorum is None or config is None:
            raise _refuse(f"plan {plan.id} is recorded before any quorum rule")
        if dict(plan.inputs.quorum) != config.get("quorum"):
            raise _refuse(f"{made}: it records other quorum rules than those in force")
        if plan.ceremony_class not in CLASSES:
            raise _refuse(f"plan {plan.id} names no quorum class ({plan.ceremony_class!r})")
        wanted = plan_class(plan.ceremony_class, plan.actions, quorum)
        rule = quorum.for_class(wanted)
        if (plan.ceremony_class, plan.quorum_m, plan.quorum_n) != (wanted, rule.m, rule.n):
            raise _refuse(f"plan {plan.id} asks for the {plan.ceremony_class} quorum "
                          f"{plan.quorum_m} of {plan.quorum_n}, but its actions need the "
                          f"{wanted} quorum {rule.m} of {rule.n}")
        if plan.expires_at - plan.created_at != PLAN_LIFETIME:
            raise _refuse(f"plan {plan.id} does not expire {PLAN_LIFETIME} after it was made "
                          f"(it says {format_time(plan.expires_at)})")
        self.ceremonies[plan.id] = _Ceremony(plan, digest, entry.seq)

    def _plan_of(self, entry: Entry) -> _Ceremony:
        """The plan a `ceremony.*` entry names (as data `plan_id` and as its ceremony)."""
        self._names_its_plan(entry)
        ceremony = self.ceremonies.get(str(entry.ceremony))
        if ceremony is None:
            raise _refuse(f"{entry.type} of ceremony {entry.ceremony!r}, which was never "
                          "planned before it", _UNAUTHORIZED)
        return ceremony

    @staticmethod
    def _names_its_plan(entry: Entry) -> None:
        if entry.ceremony is None or entry.data.get("plan_id") != entry.ceremony:
            raise _refuse(f"{entry.type} names plan {entry.data.get('plan_id')!r} under "
                          f"ceremony {entry.ceremony!r}")

    def _approved(self, entry: Entry) -> None:
        ceremony = self._plan_of(entry)
        plan = ceremony.plan
        approval = Approval.from_dict(entry.data, approved_at=entry.time)
        officer = approval.officer
        if officer in ceremony.approvals:
            raise _refuse(f"{officer} approved plan {plan.id} twice (first at seq "
                          f"{ceremony.approvals[officer]}): an approval counts once")
        try:
            status = approval_status(ceremony.digest, [approval], self._officers(), need=1,
                                     now=entry.time, expires_at=plan.expires_at)
        except QuorumError as e:
            raise _refuse(f"approval of plan {plan.id}: {e.message}") from e
        if status.rejected:
            raise _refuse(f"the approval of plan {plan.id} by {officer or '?'} does not count: "
                          f"{_why(status.rejected[0].reason, plan, entry.time)}",
                          "an approval counts only when an officer in force signs this plan's "
                          "digest with their card before it expires: do not trust the pack, "
                          "report it")
        ceremony.approvals[officer] = entry.seq

    def _started(self, entry: Entry) -> None:
        ceremony = self._plan_of(entry)
        plan = ceremony.plan
        if ceremony.started_seq is not None:
            raise _refuse(f"{ceremony.name} started twice (first at seq {ceremony.started_seq}; "
                          "a ceremony goes on with ceremony.resumed)")
        self._refuse_ended(ceremony, entry.type)
        if entry.time >= plan.expires_at:
            raise _refuse(f"{ceremony.name} started at {format_time(entry.time)}, after its "
                          f"plan expired at {format_time(plan.expires_at)}", _UNAUTHORIZED)
        officers = self._officers()
        counted = [name for name in ceremony.approvals
                   if (o := officers.get(name)) is not None and o.active]
        if len(counted) < plan.quorum_m:
            raise _refuse(f"{ceremony.name} started with the approvals of "
                          f"{len(counted)} of the {plan.quorum_m} officers its class needs "
                          f"({', '.join(counted) or 'none'})", _UNAUTHORIZED)
        ceremony.started_seq = entry.seq

    def _aborted(self, entry: Entry) -> None:
        ceremony = self._plan_of(entry)
        self._refuse_ended(ceremony, entry.type)
        ceremony.aborted_seq = entry.seq

    def _ratified(self, entry: Entry) -> None:
        ceremony = self._acting(entry.type, entry.ceremony, entry.seq, ratifying=True)
        self._names_its_plan(entry)
        target_id = entry.data.get("ratified_plan")
        target = self.ceremonies.get(target_id) if isinstance(target_id, str) else None
        plan = ceremony.plan
        if plan.ceremony_class != "routine" or target_id not in plan.ratifies:
            raise _refuse(f"{ceremony.name} ratifies {target_id!r}, which its plan does not "
                          "name (a routine plan names the emergency ceremonies it ratifies)")
        if target is None or target.plan.ceremony_class != "emergency" \
                or target.completed_seq is None:
            raise _refuse(f"{ceremony.name} ratifies {target_id!r}, which is not a completed "
                          "emergency ceremony")
        target.ratified_by = plan.id

    def _acting(self, kind: str, name: str | None, seq: int, *, ratifying: bool) -> _Ceremony:
        """The started, open ceremony an acting entry belongs to."""
        if name is None:
            raise _refuse(f"{kind} with no ceremony: after what `ceremony init` writes first, "
                          "only an approved ceremony changes state", _UNAUTHORIZED)
        ceremony = self.ceremonies.get(name)
        if ceremony is None:
            raise _refuse(f"{kind} of ceremony {name}, which was never planned before it",
                          _UNAUTHORIZED)
        if ceremony.started_seq is None:
            raise _refuse(f"{kind} of {ceremony.name}, which had not started (approved by "
                          f"{ceremony.approvers()}): a ceremony acts once its quorum approved it",
                          _UNAUTHORIZED)
        if ratifying and ceremony.aborted_seq is None:
            return ceremony  # a completion's ratifications follow it
        self._refuse_ended(ceremony, kind)
        return ceremony

    @staticmethod
    def _refuse_ended(ceremony: _Ceremony, kind: str) -> None:
        ended = ceremony.completed_seq if ceremony.completed_seq is not None \
            else ceremony.aborted_seq
        if ended is not None:
            how = "completed" if ceremony.completed_seq is not None else "aborted"
            raise _refuse(f"{kind} of {ceremony.name}, which {how} at seq {ended}",
                          _UNAUTHORIZED)

    def _effect(self, entry: Entry, ceremony: _Ceremony) -> None:
        """What only a destructive action writes must be one of its plan's actions."""
        data = entry.data
        kind = entry.type
        what = _EFFECTS.get(kind)
        if kind == KEY_STATE_CHANGED:
            if data.get("to") != "destroyed":
                return
            what = _destroys
        if what is None:
            raise _refuse(f"{kind} is not written by any ceremony of this console")
        if not any(what(action, data) for action in ceremony.plan.actions):
            raise _refuse(f"{kind} {_describe(kind, data)} is not an action of "
                          f"{ceremony.name}, approved by {ceremony.approvers()}: it needs the "
                          "destructive quorum and a plan that names it", _UNAUTHORIZED)


def _destroys(action: Action, data: Mapping[str, object]) -> bool:
    return isinstance(action, Destroy) and (action.keyset, action.kid) == (
        data.get("keyset"), data.get("kid"))


def _matches_pin(action: Action, data: Mapping[str, object]) -> bool:
    officers = data.get("officers")
    return isinstance(action, ResplitPin) and action.threshold == data.get("threshold") \
        and isinstance(officers, list) \
        and sorted(map(str, officers)) == sorted(r.officer for r in action.recipients)


_EFFECTS: Mapping[str, Callable[[Action, Mapping[str, object]], bool]] = {
    ENROLLED: lambda a, d: isinstance(a, EnrollOfficer) and (a.officer, a.ed25519, a.x25519)
    == (d.get("name"), d.get("ed25519"), d.get("x25519")),
    REVOKED: lambda a, d: isinstance(a, RevokeOfficer) and a.officer == d.get("name"),
    PIN_RESPLIT: _matches_pin,
    CONFIG_RECORDED: lambda a, d: isinstance(a, RecordConfig) and dict(a.record) == dict(d),
    "signer.released": lambda a, d: isinstance(a, ReleaseSigner)
    and (a.signer, a.recipient) == (d.get("signer"), d.get("recipient")),
    "signer.revoked": lambda a, d: isinstance(a, RevokeSigner) and a.signer == d.get("signer"),
    "reconcile.finding": lambda a, d: isinstance(a, DestroyOrphan)
    and a.cka_id == d.get("cka_id"),
}
"""Which plan action explains each entry only a destructive action writes (`policy.changed`:
none)."""


def _describe(kind: str, data: Mapping[str, object]) -> str:
    for key in ("name", "kid", "signer", "cka_id"):
        if isinstance(data.get(key), str):
            return f"({key} {str(data[key])[:24]})"
    return "(the configuration)" if kind == CONFIG_RECORDED else ""


def _why(reason: RejectReason, plan: Plan, when: datetime) -> str:
    if reason is RejectReason.OTHER_PLAN:
        return f"it approves another digest than plan {plan.id}'s"
    if reason is RejectReason.BAD_SIGNATURE:
        return f"the signature does not verify over plan {plan.id}'s digest with the officer's key"
    if reason is RejectReason.UNKNOWN_OFFICER:
        return "no such officer is in force"
    if reason is RejectReason.REVOKED:
        return "the officer was revoked"
    if reason is RejectReason.EXPIRED:
        return f"made at {format_time(when)}, after the plan expired at " \
               f"{format_time(plan.expires_at)}"
    return str(reason)

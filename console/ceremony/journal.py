"""The ceremony journal, replayed from the ledger: plans, approvals, step intents and results.

Nothing about a ceremony's progress is kept anywhere but the ledger. `replay_plans` reads the
`ceremony.*` entries and returns, for each plan, the typed `Plan` parsed from the stored bytes
(with the digest of exactly those bytes), who approved, which steps have an intent, which are
done, and how the ceremony ended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from console.ceremony.actions import Action
from console.ceremony.plan import Plan
from console.errors import PlanError
from console.lifecycle import LedgerEntry
from console.quorum.approvals import Approval

# Entry types each replay folds; reading only these (through the ledger's type index) keeps
# replays proportional to the keys and ceremonies recorded, not to the ledger's size.
KEY_ENTRY_TYPES: tuple[str, ...] = ("key.generated", "key.state_changed")
OFFICER_ENTRY_TYPES: tuple[str, ...] = ("officer.enrolled", "officer.revoked")
CEREMONY_ENTRY_TYPES: tuple[str, ...] = (
    "ceremony.planned", "ceremony.approved", "ceremony.approval_refused",
    "ceremony.execution_refused", "ceremony.started", "ceremony.resumed",
    "ceremony.step.intent", "ceremony.step.done", "ceremony.step.failed",
    "ceremony.completed", "ceremony.aborted", "ceremony.ratified", "card.unlock_failed",
)
STATE_ENTRY_TYPES: tuple[str, ...] = (
    *KEY_ENTRY_TYPES, *OFFICER_ENTRY_TYPES, *CEREMONY_ENTRY_TYPES, "bundle.exported",
    "pin.resplit", "config.recorded", "signer.released", "signer.revoked", "consumer.probed",
    "reconcile.finding",
)
"""Everything planning and execution replay: keys, officers, ceremonies, bundles, PIN, config."""


class EntryLike(LedgerEntry, Protocol):
    """A ledger entry as replays read it (console.ledger.Entry satisfies it)."""

    @property
    def actor(self) -> str: ...
    @property
    def ceremony(self) -> str | None: ...


@dataclass
class PlanRecord:
    """Everything the ledger says about one plan (built by replay; not a stored value)."""

    plan: Plan
    digest: bytes
    """SHA-256 of the plan's stored bytes (what approvals must sign)."""
    recorded_digest: str
    """The digest written beside the plan; differs from `digest` only if someone edited it."""
    planned_at: datetime
    planned_seq: int
    approvals: list[Approval] = field(default_factory=list)
    intents: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    done: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    failures: list[Mapping[str, Any]] = field(default_factory=list)
    refusals: list[Mapping[str, Any]] = field(default_factory=list)
    executors: tuple[str, ...] = ()
    started: bool = False
    completed_at: datetime | None = None
    aborted_at: datetime | None = None
    ratified_by: str | None = None

    @property
    def plan_id(self) -> str:
        return self.plan.id

    @property
    def ceremony_class(self) -> str:
        return self.plan.ceremony_class

    @property
    def closed(self) -> bool:
        return self.completed_at is not None or self.aborted_at is not None

    @property
    def keysets(self) -> tuple[str, ...]:
        return self.plan.keysets

    @property
    def actions(self) -> tuple[Action, ...]:
        return self.plan.actions

    @property
    def expires_at(self) -> datetime:
        return self.plan.expires_at

    @property
    def last_done(self) -> int:
        return max(self.done, default=0)

    def next_step(self) -> int | None:
        """The first action number without a done record, or None when all are done."""
        return next((a.n for a in self.actions if a.n not in self.done), None)

    def interrupted_step(self) -> int | None:
        """An action whose intent was written but whose result was not (crash in between)."""
        return next((n for n in sorted(self.intents) if n not in self.done), None)

    def approvers(self) -> tuple[str, ...]:
        """Officers who recorded an approval of this plan (not yet counted: see quorum)."""
        return tuple(dict.fromkeys(a.officer for a in self.approvals))

    def state(self) -> str:
        if self.completed_at is not None:
            return "completed"
        if self.aborted_at is not None:
            return "aborted"
        if self.started:
            return "interrupted" if self.failures or self.intents or self.done else "executing"
        return "planned"


def _bad(entry: EntryLike, what: str) -> PlanError:
    return PlanError(f"ledger entry {entry.seq} ({entry.type}): {what}",
                     "the ledger history is inconsistent: run `ceremony verify audit`")


def _step_of(entry: EntryLike) -> int:
    step = entry.data.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        raise _bad(entry, "the step number is not an integer")
    return step


_PARSED: dict[bytes, tuple[Plan, bytes]] = {}
"""Stored plans already parsed, by their entry's leaf hash (the SHA-256 of the entry's bytes,
so the same key is the same stored plan): every flow replays every plan, and parsing and
re-canonicalizing a plan is most of a replay. Plans are frozen values; bounded by clearing."""
_PARSED_MAX = 4096


def parsed_plan(entry: EntryLike) -> tuple[Plan, bytes]:
    """`Plan.from_stored` of a `ceremony.planned` entry's plan, remembered by the entry's leaf
    hash.

    Raises:
        PlanError: as `Plan.from_stored`.
    """
    leaf = getattr(entry, "leaf_hash", None)
    known = _PARSED.get(leaf) if isinstance(leaf, bytes) else None
    if known is None:
        data: Any = entry.data
        known = Plan.from_stored(data["plan"] if isinstance(data, Mapping) else None)
        if isinstance(leaf, bytes):
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[leaf] = known
    return known


def _planned(entry: EntryLike) -> PlanRecord:
    data: Any = entry.data
    digest = data.get("digest") if isinstance(data, Mapping) else None
    if not isinstance(data, Mapping) or set(data) != {"plan", "digest"} or not isinstance(
            digest, str):
        raise _bad(entry, "not a plan and its digest")
    try:
        plan, computed = parsed_plan(entry)
    except PlanError as e:
        raise _bad(entry, e.message) from e
    if entry.ceremony != plan.id:
        raise _bad(entry, "recorded under another ceremony id than its plan's")
    return PlanRecord(plan=plan, digest=computed, recorded_digest=digest,
                      planned_at=entry.time, planned_seq=entry.seq)


def replay_plans(entries: Iterable[EntryLike]) -> dict[str, PlanRecord]:
    """Build every plan's record from the ledger, in ledger order.

    Raises:
        PlanError: an entry that no console writes (naming its seq).
    """
    return extend_plans({}, entries)


def extend_plans(plans: Mapping[str, PlanRecord],
                 entries: Iterable[EntryLike]) -> dict[str, PlanRecord]:
    """`plans` (replayed up to some entry) with the entries that follow it applied, as a new
    mapping: a record the entries change is copied first, so a record handed out before never
    changes under its holder (a running ceremony keeps the record it started from).

    Raises:
        PlanError: an entry that no console writes (naming its seq).
    """
    out = dict(plans)
    fresh: set[str] = set()

    def changing(plan_id: str) -> PlanRecord | None:
        record = out.get(plan_id)
        if record is not None and plan_id not in fresh:
            record = dataclasses.replace(
                record, approvals=list(record.approvals), intents=dict(record.intents),
                done=dict(record.done), failures=list(record.failures),
                refusals=list(record.refusals))
            out[plan_id] = record
            fresh.add(plan_id)
        return record

    for entry in entries:
        kind = entry.type
        if not kind.startswith("ceremony."):
            continue
        data: Any = entry.data
        if not isinstance(data, dict):
            raise _bad(entry, "data is not an object")
        if kind == "ceremony.planned":
            record = _planned(entry)
            if record.plan_id in out:
                raise _bad(entry, f"plan id {record.plan_id} is used twice")
            out[record.plan_id] = record
            fresh.add(record.plan_id)
            continue
        plan_id = data.get("plan_id")
        record_or_none = changing(str(plan_id))
        if record_or_none is None or entry.ceremony != plan_id:
            raise _bad(entry, f"names plan {plan_id!r}, which was not planned before it")
        record = record_or_none
        if kind == "ceremony.approved":
            record.approvals.append(Approval.from_dict(data, approved_at=entry.time))
        elif kind in ("ceremony.approval_refused", "ceremony.execution_refused"):
            record.refusals.append(dict(data))
        elif kind in ("ceremony.started", "ceremony.resumed"):
            record.started = True
            officers = data.get("officers")
            if isinstance(officers, list):
                record.executors = tuple(str(o) for o in officers)
        elif kind == "ceremony.step.intent":
            record.intents[_step_of(entry)] = dict(data)
        elif kind == "ceremony.step.done":
            record.done[_step_of(entry)] = dict(data)
        elif kind == "ceremony.step.failed":
            record.failures.append(dict(data))
        elif kind == "ceremony.completed":
            record.completed_at = entry.time
        elif kind == "ceremony.aborted":
            record.aborted_at = entry.time
        elif kind == "ceremony.ratified":
            ratified = changing(str(data.get("ratified_plan")))
            if ratified is not None:
                ratified.ratified_by = record.plan_id
    return out


def find_plan(plans: Mapping[str, PlanRecord], plan_id: str) -> PlanRecord:
    """Find a plan by its id or a unique prefix of at least 4 characters.

    Raises:
        PlanError: no plan, or the prefix is ambiguous.
    """
    if plan_id in plans:
        return plans[plan_id]
    matches = [p for key, p in plans.items() if len(plan_id) >= 4 and key.startswith(plan_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PlanError(f"no plan {plan_id!r} in the ledger",
                        "see `ceremony status` for open plans, or make one with `ceremony plan`")
    raise PlanError(f"plan id {plan_id!r} is ambiguous", "give more characters of the id")


def open_plans(plans: Mapping[str, PlanRecord], now: datetime) -> list[PlanRecord]:
    """Plans not completed or aborted that can still go on: started ones, or unexpired ones."""
    return [p for p in plans.values() if not p.closed and (p.started or p.expires_at > now)]


def pending_ratifications(plans: Mapping[str, PlanRecord]) -> list[PlanRecord]:
    """Completed emergency ceremonies not yet ratified by a routine ceremony."""
    return [
        p for p in plans.values()
        if p.ceremony_class == "emergency" and p.completed_at is not None
        and p.ratified_by is None
    ]


__all__ = [
    "CEREMONY_ENTRY_TYPES",
    "KEY_ENTRY_TYPES",
    "OFFICER_ENTRY_TYPES",
    "STATE_ENTRY_TYPES",
    "EntryLike",
    "PlanRecord",
    "find_plan",
    "open_plans",
    "parsed_plan",
    "pending_ratifications",
    "replay_plans",
]

"""The ceremony journal, replayed from the ledger: plans, approvals, step intents and results.

Nothing about a ceremony's progress is kept anywhere but the ledger. `replay_plans` reads the
`ceremony.*` entries and returns, for each plan, what was planned, who approved, which steps
have an intent, which are done, and how the ceremony ended.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from console.errors import PlanError
from console.lifecycle import LedgerEntry

# Entry types each replay folds; reading only these (through the ledger's type index) keeps
# replays proportional to the keys and ceremonies recorded, not to the ledger's size.
KEY_ENTRY_TYPES: tuple[str, ...] = ("key.generated", "key.state_changed", "policy.changed")
OFFICER_ENTRY_TYPES: tuple[str, ...] = ("officer.enrolled", "officer.revoked")
CEREMONY_ENTRY_TYPES: tuple[str, ...] = (
    "ceremony.planned", "ceremony.approved", "ceremony.approval_refused",
    "ceremony.execution_refused", "ceremony.started", "ceremony.resumed",
    "ceremony.step.intent", "ceremony.step.done", "ceremony.step.failed",
    "ceremony.completed", "ceremony.aborted", "ceremony.ratified",
)
STATE_ENTRY_TYPES: tuple[str, ...] = (
    *KEY_ENTRY_TYPES, *OFFICER_ENTRY_TYPES, *CEREMONY_ENTRY_TYPES, "bundle.exported",
)
"""Everything planning and execution replay: keys, officers, ceremonies and bundles."""


class EntryLike(LedgerEntry, Protocol):
    """A ledger entry as replays read it (console.ledger.Entry satisfies it)."""

    @property
    def actor(self) -> str: ...
    @property
    def ceremony(self) -> str | None: ...


@dataclass
class PlanRecord:
    """Everything the ledger says about one plan (built by replay; not a stored value)."""

    plan_id: str
    plan: dict[str, Any]
    digest: str
    planned_at: datetime
    approvals: list[dict[str, Any]] = field(default_factory=list)
    intents: dict[int, dict[str, Any]] = field(default_factory=dict)
    done: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    started: bool = False
    completed_at: datetime | None = None
    aborted_at: datetime | None = None
    ratified_by: str | None = None

    @property
    def ceremony_class(self) -> str:
        return str(self.plan["class"])

    @property
    def closed(self) -> bool:
        return self.completed_at is not None or self.aborted_at is not None

    @property
    def keysets(self) -> list[str]:
        return list(self.plan.get("keysets", []))

    @property
    def actions(self) -> list[dict[str, Any]]:
        return list(self.plan["actions"])

    def expires_at(self) -> datetime:
        from console.clock import parse_time

        return parse_time(self.plan["expires_at"], "plan expires_at")

    def next_step(self) -> int | None:
        """The first action number without a done record, or None when all are done."""
        for action in self.actions:
            if int(action["n"]) not in self.done:
                return int(action["n"])
        return None

    def interrupted_step(self) -> int | None:
        """An action whose intent was written but whose result was not (crash in between)."""
        for n in sorted(self.intents):
            if n not in self.done:
                return n
        return None

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


def _plan_of(entry: EntryLike) -> tuple[dict[str, Any], str]:
    data: Any = entry.data
    plan = data.get("plan") if isinstance(data, dict) else None
    digest = data.get("digest") if isinstance(data, dict) else None
    if not isinstance(plan, dict) or not isinstance(plan.get("id"), str):
        raise _bad(entry, "no plan with an id")
    if not isinstance(digest, str) or not isinstance(plan.get("actions"), list):
        raise _bad(entry, "no digest or no actions")
    for action in plan["actions"]:
        if not isinstance(action, dict) or not isinstance(action.get("n"), int) \
                or isinstance(action.get("n"), bool) or not isinstance(action.get("action"), str):
            raise _bad(entry, "an action without a number or a name")
    for key in ("class", "expires_at"):
        if not isinstance(plan.get(key), str):
            raise _bad(entry, f"the plan has no {key}")
    return plan, digest


def _step_of(entry: EntryLike) -> int:
    step = entry.data.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        raise _bad(entry, "the step number is not an integer")
    return step


def replay_plans(entries: Iterable[EntryLike]) -> dict[str, PlanRecord]:
    """Build every plan's record from the ledger, in ledger order.

    Raises:
        PlanError: an entry that no console writes (naming its seq).
    """
    plans: dict[str, PlanRecord] = {}
    for entry in entries:
        kind = entry.type
        if not kind.startswith("ceremony."):
            continue
        data: Any = entry.data
        if not isinstance(data, dict):
            raise _bad(entry, "data is not an object")
        if kind == "ceremony.planned":
            plan, digest = _plan_of(entry)
            plans[plan["id"]] = PlanRecord(
                plan_id=plan["id"], plan=plan, digest=digest, planned_at=entry.time
            )
            continue
        plan_id = data.get("plan_id") or entry.ceremony
        record = plans.get(str(plan_id))
        if record is None:
            continue
        if kind == "ceremony.approved":
            record.approvals.append(dict(data))
        elif kind == "ceremony.approval_refused":
            record.refusals.append(dict(data))
        elif kind in ("ceremony.started", "ceremony.resumed"):
            record.started = True
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
            ratified = plans.get(str(data.get("ratified_plan")))
            if ratified is not None:
                ratified.ratified_by = record.plan_id
    return plans


def find_plan(plans: dict[str, PlanRecord], plan_id: str) -> PlanRecord:
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
        raise PlanError(f"no plan {plan_id!r} in the ledger", "run `ceremony plan SCRIPT` first")
    raise PlanError(f"plan id {plan_id!r} is ambiguous", "give more characters of the id")


def open_plans(plans: dict[str, PlanRecord], now: datetime) -> list[PlanRecord]:
    """Plans not completed or aborted that can still go on: started ones, or unexpired ones."""
    return [
        p for p in plans.values()
        if not p.closed and (p.started or p.expires_at() > now)
    ]


def pending_ratifications(plans: dict[str, PlanRecord]) -> list[PlanRecord]:
    """Completed emergency ceremonies not yet ratified by a routine ceremony."""
    return [
        p for p in plans.values()
        if p.ceremony_class == "emergency" and p.completed_at is not None
        and p.ratified_by is None
    ]

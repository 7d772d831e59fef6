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


class EntryLike(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def ceremony(self) -> str | None: ...
    @property
    def data(self) -> dict[str, Any]: ...


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


def replay_plans(entries: Iterable[EntryLike]) -> dict[str, PlanRecord]:
    """Build every plan's record from the ledger, in ledger order."""
    plans: dict[str, PlanRecord] = {}
    for entry in entries:
        kind = entry.type
        if not kind.startswith("ceremony."):
            continue
        data = entry.data
        if kind == "ceremony.planned":
            plan = data["plan"]
            plans[plan["id"]] = PlanRecord(
                plan_id=plan["id"], plan=plan, digest=data["digest"], planned_at=entry.time
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
        elif kind == "ceremony.started":
            record.started = True
        elif kind == "ceremony.step.intent":
            record.intents[int(data["step"])] = dict(data)
        elif kind == "ceremony.step.done":
            record.done[int(data["step"])] = dict(data)
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

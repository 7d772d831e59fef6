"""What a ceremony session reads from the ledger, and every check it makes before a card is
unlocked.

`CeremonyChecks` is the reading half of `console.ceremony.session.Session`: the plans and
keysets the ledger records (through the session's `LedgerState`), the inputs that decide a plan
as the files are now, a plan re-derived from its stored bytes and checked against them (closed,
expired, made on another ledger, any input changed: refused, naming what), who may approve and
execute, where an officer's card may live, and which sealed PIN files the ledger vouches for
(the login tries only those). None of it needs a secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from console.ceremony.journal import PlanRecord, find_plan, open_plans
from console.ceremony.ledgerstate import LedgerState
from console.ceremony.plan import Plan, PlanInputs
from console.ceremony.planner import PLAN_LIFETIME, plan_class
from console.ceremony.review import PlanView
from console.ceremony.script import Script, load_script
from console.ceremony.signers import check_signer
from console.clock import format_time
from console.config.workspace import network_hsm_address
from console.errors import (
    PinIncorrectError,
    PlanAlreadyExecutedError,
    PlanError,
    PlanExpiredError,
    PlanInputsChangedError,
    QuorumError,
    UsageError,
    WorkspaceError,
)
from console.ledger.trust import OfficerRegistry
from console.lifecycle import KeysetState
from console.quorum.approvals import QuorumStatus, approval_status
from console.quorum.cards import UnlockedCard
from console.quorum.pin_gate import open_pin, read_sealed_pin
from console.sealing import changes, current_record

if TYPE_CHECKING:
    from console.hsm import Hsm
    from console.workspace import Workspace

CONFIG_CHANGE = "config-change"


class CardSource(Protocol):
    """How a face gives the session an officer's card, only when the session asks for it."""

    def card_path(self, officer: str) -> Path:
        """The officer's card file. Raises UsageError when the face has none for them."""
        ...

    def passphrase(self, officer: str, attempt: int) -> str:
        """The passphrase (no echo). `attempt` counts from 1. Raises UsageError when none can
        be had (no terminal) and CardError when the face cannot ask again."""
        ...


class CeremonyChecks:
    """The ledger as a session reads it, and the checks made before any card is unlocked (see
    the module docstring); `Session` adds the flows."""

    def __init__(self, ws: Workspace, *, now: datetime) -> None:
        self.ws = ws
        self.now = now
        self.state = LedgerState(ws.ledger)
        """The ledger's state entries, read once and kept current with what the session
        appends."""

    # --- reading -----------------------------------------------------------------------------
    def _plans(self) -> dict[str, PlanRecord]:
        return self.state.plans()

    def _keysets(self) -> Mapping[str, KeysetState]:
        return self.state.keysets()

    def record(self, plan_id: str) -> PlanRecord:
        """What the ledger says about one plan (any state), by id or unique prefix.

        Raises:
            PlanError: no such plan, or the prefix is ambiguous.
        """
        return find_plan(self._plans(), plan_id)

    def open_ceremonies(self) -> list[PlanRecord]:
        """Plans that are open (approvals pending or ready to run) or interrupted, newest last."""
        return open_plans(self._plans(), self.now)

    def signers(self) -> dict[str, str]:
        """Signing services holding the PIN now: name → age recipient (from the ledger)."""
        held: dict[str, str] = {}
        for entry in self.state.of_type("signer.released", "signer.revoked"):
            name = str(entry.data.get("signer"))
            if entry.type == "signer.released":
                held[name] = str(entry.data.get("recipient"))
            else:
                held.pop(name, None)
        return held

    def plan_inputs(self, script: Script) -> PlanInputs:
        """Every input that decides a ceremony, read from the files as they are now."""
        ws = self.ws
        trust = ws.trust
        module = ws.config.hsm.module_path()
        quorum = trust.config["quorum"] if trust.config is not None else {}
        return PlanInputs(
            policy_sha256=_sha256(ws.root / "policy.toml"),
            policy=ws.policy.to_dict(),
            config_sha256=_sha256(ws.root / "ceremony.toml"),
            module_path=str(module),
            module_sha256=_sha256(module),
            server_address=network_hsm_address(module),
            token_label=ws.config.hsm.token_label,
            token_serial=ws.config.hsm.token_serial,
            quorum=dict(quorum),
            rehearsal=ws.rehearsal,
            pin_sealed_sha256=ws.sealed_pin_sha256(),
            script_sha256=script.sha256,
        )

    def trusted_pin_sha256(self) -> str:
        """The SHA-256 of the sealed PIN the ledger vouches for: the last `pin.resplit` a
        checkpoint covers (before the first checkpoint, the one `init` recorded).

        Raises:
            WorkspaceError: the ledger records no sealed PIN.
        """
        covered = self.ws.trust.covered
        found: str | None = None
        for entry in self.state.of_type("pin.resplit"):
            if covered == 0 or entry.seq < covered:
                found = str(entry.data.get("sha256"))
        if found is None:
            raise WorkspaceError("the ledger records no sealed PIN", "the workspace is not set up")
        return found

    def interrupted(self) -> PlanRecord:
        """The ceremony that started and did not finish.

        Raises:
            PlanError: none.
        """
        started = [p for p in self._plans().values() if p.started and not p.closed]
        if not started:
            raise PlanError("no interrupted ceremony to resume", "see `ceremony status`")
        return started[-1]

    def abortable(self) -> PlanRecord:
        """The ceremony an abort would close: the interrupted one, else the newest open plan.

        Raises:
            PlanError: there is none.
        """
        plans = self._plans()
        started = [p for p in plans.values() if p.started and not p.closed]
        candidates = started or open_plans(plans, self.now)
        if not candidates:
            raise PlanError("no open ceremony to abort", "see `ceremony status`")
        return candidates[-1]

    # --- planning inputs ---------------------------------------------------------------------

    def _config_change(self, script_name: str) -> tuple[Mapping[str, object], tuple[str, ...]] \
            | None:
        if script_name != CONFIG_CHANGE:
            return None
        recorded = self.ws.recorded_config
        now = current_record(self.ws.root, self.ws.config, self.ws.policy)
        if recorded is None:
            return dict(now.data), ("no configuration was recorded before",)
        found = changes(recorded, now)
        if self.ws.trust.rehearsal is not None and self.ws.config.rehearsal != \
                self.ws.trust.rehearsal:
            raise PlanError("rehearsal is fixed at genesis and cannot be changed",
                            f"set rehearsal = {str(self.ws.trust.rehearsal).lower()} in "
                            "ceremony.toml again")
        if not found:
            return None
        return dict(now.data), tuple(str(d) for d in found)

    # --- reviewing ---------------------------------------------------------------------------

    def review(self, plan_id: str, *, for_resume: bool = False) -> PlanView:
        """The plan as the ledger stores it, checked against the files now.

        Raises:
            PlanError: no such plan, or its bytes do not give its recorded digest.
            PlanAlreadyExecutedError, PlanExpiredError: it cannot go on.
            PlanInputsChangedError: an input changed since it was made (naming it).
        """
        record = find_plan(self._plans(), plan_id)
        return self._review(record, for_resume=for_resume)

    def _review(self, record: PlanRecord, *, for_resume: bool = False) -> PlanView:
        plan = record.plan
        self.state.require_authorized()
        if record.digest.hex() != record.recorded_digest:
            raise PlanError(f"plan {plan.id} does not hash to its recorded digest",
                            "the ledger was edited behind the console's back: make a new plan "
                            "and verify the ledger")
        _refuse_closed(record)
        if not for_resume and record.started:
            raise PlanError(f"plan {plan.id} already started ({record.state()})",
                            "continue it with `ceremony resume --officer NAME …`, or abort it with "
                            "`ceremony resume --abort --officer NAME`")
        if not record.started and self.now >= plan.expires_at:
            raise PlanExpiredError(f"plan {plan.id} expired at {format_time(plan.expires_at)}",
                                   "make a new plan")
        if plan.origin != self.ws.ledger.origin:
            raise PlanError(f"plan {plan.id} belongs to another ledger", "make a new plan")
        if plan.script != CONFIG_CHANGE:
            self.ws.require_sealed()
        if self.ws.ledger.size < plan.ledger_size or \
                self.ws.ledger.root(plan.ledger_size) != plan.ledger_root:
            raise PlanInputsChangedError(
                f"the ledger is not the one plan {plan.id} was made on",
                "the ledger was replaced or rewritten: make a new plan after verifying it")
        script = load_script(plan.script, workspace=self.ws.root)
        current = self.plan_inputs(script)
        if for_resume and current.pin_sealed_sha256 in self._resplit_files(record):
            # This plan's own PIN change replaced pin.sealed: that is no change of its inputs.
            current = dataclasses.replace(current,
                                          pin_sealed_sha256=plan.inputs.pin_sealed_sha256)
        changed = plan.inputs.differences(current)
        if changed:
            raise PlanInputsChangedError(
                f"{changed[0]} changed since plan {plan.id} was made"
                + (f" (also: {', '.join(changed[1:])})" if len(changed) > 1 else ""),
                "make a new plan")
        if plan.inputs.pin_sealed_sha256 != self._pin_in_force(record):
            raise PlanInputsChangedError(
                "pin.sealed is not the sealed PIN the ledger records",
                "restore pin.sealed from your backup; a forged file never reaches the HSM")
        return PlanView(record, self._status(record))

    def require_fixed_rules(self, plan: Plan) -> None:
        """What the console fixes in code, re-derived rather than read from the plan's bytes:
        anyone who can write the ledger file can append a `ceremony.planned` entry (entries
        after the last checkpoint are signed by nobody), so its class, quorum and life are
        checked against the actions it holds, the quorum in force and `PLAN_LIFETIME`.
        Asked before a card signs the plan and before a run logs in (after the checks that
        name a plan edited under its approvals or its words, whose messages say more).

        Raises:
            PlanError: the stored plan lowers one of them.
        """
        script = load_script(plan.script, workspace=self.ws.root)
        quorum = self.ws.trust.quorum
        hint = "the plan was not made by this console: make a new plan and verify the ledger"
        if quorum is not None:
            wanted = plan_class(script.ceremony_class, plan.actions, quorum)
            rule = quorum.for_class(wanted)
            if (plan.ceremony_class, plan.quorum_m, plan.quorum_n) != (wanted, rule.m, rule.n):
                raise PlanError(
                    f"plan {plan.id} asks for the {plan.ceremony_class} quorum "
                    f"{plan.quorum_m} of {plan.quorum_n}, but its actions need the {wanted} "
                    f"quorum {rule.m} of {rule.n}", hint)
        if plan.expires_at - plan.created_at != PLAN_LIFETIME:
            raise PlanError(f"plan {plan.id} does not expire {PLAN_LIFETIME} after it was made "
                            f"(it says {format_time(plan.expires_at)})", hint)

    def _pin_in_force(self, record: PlanRecord) -> str:
        """The sealed PIN the plan must have been made on: the ledger's, or, for a plan whose
        PIN change has begun, the one it was checked against when it started."""
        if any(i.get("action") == "resplit_pin" for i in record.intents.values()):
            return record.plan.inputs.pin_sealed_sha256
        return self.trusted_pin_sha256()

    def _approvers_registry(self, record: PlanRecord) -> OfficerRegistry:
        """The officers whose approvals count for `record`: those in force, except that a
        started ceremony's own officer changes (in force from its PIN re-split's checkpoint,
        before its last step) do not unmake the approvals it started with."""
        registry = self.ws.trust.officers
        if not record.started:
            return registry
        kinds = ("officer.enrolled", "officer.revoked")
        entries = self.state.of_type(*kinds)
        if not any(e.ceremony == record.plan_id for e in entries):
            return registry
        covered = self.ws.trust.covered
        return OfficerRegistry.from_entries(
            e for e in entries if e.ceremony != record.plan_id and e.seq < covered)

    def _resplit_files(self, record: PlanRecord) -> dict[str, str]:
        """The sealed files this plan's PIN change made (SHA-256 → "intent" or "recorded"): its
        unfinished intent's new file, and the file its `pin.resplit` entry records."""
        files = {str(i["sha256"]): "intent" for n, i in record.intents.items()
                 if i.get("action") == "resplit_pin" and n not in record.done
                 and isinstance(i.get("sha256"), str)}
        for entry in self.state.of_type("pin.resplit"):
            if entry.ceremony == record.plan_id:
                files[str(entry.data.get("sha256"))] = "recorded"
        return files

    def _status(self, record: PlanRecord) -> QuorumStatus:
        # A started ceremony may finish after its approval window: the approvals were valid then.
        counted_at = min(self.now, record.plan.expires_at) if record.started else self.now
        if record.started and counted_at >= record.plan.expires_at:
            counted_at = record.planned_at
        return approval_status(record.digest, record.approvals, self._approvers_registry(record),
                               need=record.plan.quorum_m, now=counted_at,
                               expires_at=record.plan.expires_at)

    def check_approver(self, view: PlanView, officer: str) -> bool:
        """Whether `officer` still has to approve (False: they already did).

        Raises:
            QuorumError: not an officer in force.
        """
        known = self.ws.trust.officers.get(officer)
        if known is None or not known.active:
            raise QuorumError(f"{officer} is not an officer in force",
                              "see `ceremony officer list`")
        return officer not in view.status.counted

    def check_executors(self, view: PlanView, officers: Sequence[str]) -> None:
        """The named officers are distinct approvers of the plan and enough to run it.

        Raises:
            UsageError: a name twice. QuorumError: too few approvers named (naming who is not).
        """
        if len(set(officers)) != len(officers):
            raise UsageError("an officer is named twice", "name each officer once")
        plan = view.record.plan
        counted = set(view.status.counted)
        present = [n for n in officers if n in counted]
        if not view.status.met:
            raise QuorumError(f"plan {plan.id} is {view.status.summary()}",
                              f"collect approvals with `ceremony approve {plan.id} --officer NAME`",
                              have=view.status.have, need=plan.quorum_m)
        if len(present) < plan.quorum_m:
            others = ", ".join(n for n in officers if n not in counted) or "none"
            raise QuorumError(
                f"running plan {plan.id} needs {plan.quorum_m} of the officers who approved it "
                f"({', '.join(view.status.counted)}) to unlock their cards; {len(present)} named "
                f"(not approvers: {others})",
                "name the approving officers with --officer", have=len(present),
                need=plan.quorum_m)

    # --- cards -------------------------------------------------------------------------------

    def card_path(self, cards: CardSource, officer: str) -> Path:
        """Where the face says `officer`'s card is, if it may be used from there.

        Raises:
            UsageError: no card given, or it lives inside a production workspace.
        """
        path = cards.card_path(officer)
        if not self.ws.rehearsal and path.resolve().is_relative_to(self.ws.root):
            raise UsageError(f"{officer}'s card is inside the workspace ({path})",
                             "an officer's card lives on their own medium, never in the "
                             "workspace")
        return path

    # --- the sealed PIN ----------------------------------------------------------------------

    def _login(self, hsm: Hsm, record: PlanRecord, unlocked: Sequence[UnlockedCard]) -> bytes:
        """Log in with the PIN of a sealed file the ledger vouches for (each file is checked
        before any share opens); return the PIN.

        A plan whose PIN change was interrupted may find the token on either PIN: the change
        (C_SetPIN) and the rename of `pin.next` over `pin.sealed` cannot be one step. Then the
        files the journal vouches for are tried in turn, `pin.sealed` first; the token counts
        one refused try at most.
        """
        candidates = self._pin_files(record)
        for i, sealed in enumerate(candidates):
            holders = set(read_sealed_pin(sealed).officers)
            # After this plan's re-split, an officer it revokes holds no share of the new file;
            # too few holders present is still refused by open_pin.
            present = [c for c in unlocked if c.name in holders] or list(unlocked)
            pin = open_pin(sealed, present)
            try:
                hsm.login(pin)
            except PinIncorrectError:
                if i == len(candidates) - 1:
                    raise
                continue
            return pin
        raise PlanError("no sealed PIN to log in with", "restore pin.sealed from your backup")

    def _pin_files(self, record: PlanRecord) -> list[bytes]:
        path = self.ws.sealed_pin_path
        made = self._resplit_files(record)
        trusted = {self._pin_in_force(record)} if "recorded" not in made.values() else set()
        found: list[bytes] = []
        for candidate in (path, path.with_suffix(".next")):
            try:
                sealed = candidate.read_bytes()
            except FileNotFoundError:
                if candidate == path:
                    raise WorkspaceError(f"the sealed PIN {path} is missing",
                                         "restore pin.sealed from your backup") from None
                continue
            except OSError as e:
                raise WorkspaceError(f"cannot read the sealed PIN {candidate}: {e.strerror}",
                                     "restore pin.sealed from your backup") from e
            digest = hashlib.sha256(sealed).hexdigest()
            if candidate == path and digest not in trusted | set(made):
                raise PlanInputsChangedError(
                    "pin.sealed is not the sealed PIN the ledger records",
                    "restore pin.sealed from your backup; a forged file never reaches the HSM")
            if candidate != path and made.get(digest) != "intent":
                continue  # a pin.next no unfinished PIN change recorded: never used
            if sealed not in found:
                found.append(sealed)
        return found


def _sha256(path: Path) -> str:
    from console.sealing import file_sha256

    return file_sha256(path)


def _refuse_closed(record: PlanRecord) -> None:
    if record.completed_at is not None:
        raise PlanAlreadyExecutedError(
            f"plan {record.plan_id} was executed at {format_time(record.completed_at)}",
            "nothing to do; make a new plan for a new ceremony")
    if record.aborted_at is not None:
        raise PlanAlreadyExecutedError(
            f"plan {record.plan_id} was aborted at {format_time(record.aborted_at)}",
            "make a new plan")


def refuse_overlapping_plan(plans: Mapping[str, PlanRecord], plan: Plan, now: datetime) -> None:
    mine = set(plan.keysets)
    for other in open_plans(plans, now):
        theirs = set(other.keysets)
        if (mine & theirs) or (not mine and not theirs):
            scope = ", ".join(sorted(mine & theirs)) or "officers and configuration"
            raise PlanError(
                f"plan {other.plan_id} ({other.plan.script}) for {scope} is still open "
                f"({other.state()})",
                "execute it, resume it, or abort it with `ceremony resume --abort --officer "
                f"NAME`; plans that never started expire at {format_time(other.expires_at)}",
            )


def parse_parameters(script: Script, values: Sequence[str]) -> dict[str, tuple[str, ...]]:
    known = {p.name: p for p in script.parameters}
    out: dict[str, list[str]] = {name: list(p.default) for name, p in known.items()}
    given: set[str] = set()
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or name not in known:
            allowed = ", ".join(known) or "none"
            raise UsageError(f"{script.name} has no parameter {name!r}",
                             f"parameters: {allowed}")
        if name not in given:
            out[name] = []
            given.add(name)
        out[name] += [v for v in text.split(",") if v]
    if script.name == "officer-change" and not (out.get("enroll") or out.get("revoke")):
        raise UsageError("officer-change needs enroll=CARD or revoke=NAME",
                         "e.g. --set enroll=dave.card --set revoke=carol")
    for name in out.get("signer", []):
        check_signer(name)
    return {k: tuple(v) for k, v in out.items()}


__all__ = [
    "CONFIG_CHANGE",
    "CardSource",
    "CeremonyChecks",
    "parse_parameters",
    "refuse_overlapping_plan",
]

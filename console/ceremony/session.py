"""The ceremony session service: the flows both faces use (plan, review, approve, execute, run,
resume, abort), the workspace lock, where cards may live, and every check that can be made
before a card is unlocked (those checks, and what the flows read from the ledger, are
`console.ceremony.checks.CeremonyChecks`, which `Session` extends).

The CLI and the TUI only ask and render: they hand the session a `CardSource` that can name an
officer's card file and ask for its passphrase, and the session decides when (after every check
that needs no secret) and how often (three tries, each failure recorded in the ledger without
secret material) to ask. A plan is re-derived from the ledger's stored bytes and the workspace's
files before every approval and execution; any difference refuses, naming what changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from console import b64
from console.ceremony.actions import ExportBundle, RecordConfig
from console.ceremony.checks import (
    CONFIG_CHANGE,
    CardSource,
    CeremonyChecks,
    parse_parameters,
    refuse_overlapping_plan,
)
from console.ceremony.engine import CeremonyRun
from console.ceremony.journal import PlanRecord, find_plan
from console.ceremony.officers import read_card_file
from console.ceremony.planner import PlanningContext, build_plan
from console.ceremony.progress import NullProgress, ProgressSink
from console.ceremony.review import PlanView
from console.ceremony.script import load_script
from console.ceremony.transcript import write_transcript
from console.errors import (
    CardError,
    ConsoleError,
    PlanInputsChangedError,
    QuorumError,
    UsageError,
    WorkspaceError,
)
from console.hardening import protect_process, wipe
from console.quorum.approvals import (
    approval_status,
    require_quorum,
    sign_approval,
)
from console.quorum.cards import UNLOCK_FAILED, UnlockedCard, read_card_public, unlock_card
from console.workspace import Workspace

if TYPE_CHECKING:
    pass

UNLOCK_TRIES = 3
ABORT_CONTEXT = b"key-ceremony-abort/v1\n"


@dataclass(frozen=True, slots=True)
class Approved:
    """An approval recorded (or found already there) and the card that signed it, which the
    TUI may keep unlocked, briefly, for the execution that follows."""

    message: str
    card: UnlockedCard | None = None


@dataclass(frozen=True, slots=True)
class Abort:
    """What an abort kept and what it undid, for the officers to read."""

    plan_id: str
    kept: tuple[str, ...]
    undone: tuple[str, ...]

    def render(self) -> str:
        lines = [f"ceremony {self.plan_id} aborted"]
        lines += [f"  kept: {item}" for item in self.kept]
        lines += [f"  not done: {item}" for item in self.undone]
        return "\n".join(lines)


class Session(CeremonyChecks):
    """One face's conversation with a workspace at one time `now` (see the module docstring).

    The flows are here; what they read from the ledger and every check they make before a card
    is unlocked are `CeremonyChecks`' (console/ceremony/checks.py)."""

    def __init__(self, ws: Workspace, *, now: datetime) -> None:
        super().__init__(ws, now=now)
        self.planned: str | None = None
        """The plan this session recorded (`plan`, `run`), for a face that was interrupted."""
        self.started: str | None = None
        """The ceremony this session started or resumed: after an interruption it may be
        half-done, and the face says how to continue it."""

    # --- planning --------------------------------------------------------------------------

    def plan(self, script_name: str, *, keysets: Sequence[str] = (),
             parameters: Sequence[str] = ()) -> PlanView:
        """Make a plan and record it (`ceremony.planned`).

        Raises:
            ConfigDriftError: the configuration differs from the record (except config-change).
            ScriptError, PlanError, ConfigError, UsageError: nothing is written then.
        """
        ws = self.ws
        if script_name != CONFIG_CHANGE:
            ws.require_sealed()
        with ws.exclusive():
            script = load_script(script_name, workspace=ws.root)
            params = parse_parameters(script, parameters)
            plans = self._plans()
            self.state.require_authorized()
            trust = ws.trust
            if trust.quorum is None:
                raise WorkspaceError("the ledger records no quorum rules", "run `ceremony init`")
            inputs = self.plan_inputs(script)
            if inputs.pin_sealed_sha256 != self.trusted_pin_sha256():
                raise PlanInputsChangedError(
                    "pin.sealed is not the sealed PIN the ledger records",
                    "restore pin.sealed from your backup; a forged file never reaches the HSM")
            ctx = PlanningContext(
                script=script, origin=ws.config.origin, quorum=trust.quorum, policy=ws.policy,
                keysets=self._keysets(), plans=plans, officers=trust.officers,
                ledger_size=ws.ledger.size, ledger_root=ws.ledger.root(), now=self.now,
                inputs=inputs, requested_keysets=tuple(keysets), parameters=params,
                enrolling=[read_card_public(read_card_file(Path(p)))
                           for p in params.get("enroll", ())],
                signers=self.signers(), config_change=self._config_change(script_name),
            )
            plan = build_plan(ctx)
            refuse_overlapping_plan(plans, plan, self.now)
            self.state.append("ceremony.planned", {"plan": plan.to_dict(),
                                                   "digest": plan.digest.hex()},
                              time=self.now, actor="console", ceremony=plan.id)
            self.planned = plan.id
            return self.review(plan.id)

    # --- cards -----------------------------------------------------------------------------


    def unlock(self, cards: CardSource, officer: str, record: PlanRecord | None) -> UnlockedCard:
        """Read and unlock `officer`'s card: up to three tries, each failure recorded.

        Raises:
            UsageError: the card lives inside a production workspace, or no card was given.
            CardError: the card cannot be read, or three wrong passphrases.
            QuorumError: the card is not the one enrolled for `officer`.
        """
        data = read_card_file(self.card_path(cards, officer))
        enrolled = self.ws.trust.officers.get(officer)
        protect_process()
        for attempt in range(1, UNLOCK_TRIES + 1):
            passphrase = cards.passphrase(officer, attempt)
            try:
                card = unlock_card(data, passphrase)
                if card.name != officer or enrolled is None or \
                        enrolled.ed25519 != card.public.ed25519_public or \
                        enrolled.x25519 != card.public.x25519_public:
                    raise CardError(UNLOCK_FAILED, f"use {officer}'s own enrolled card")
                return card
            except CardError as error:
                self._record_unlock_failure(officer, record, attempt)
                if attempt == UNLOCK_TRIES:
                    raise CardError(f"{officer}'s card was not unlocked after {UNLOCK_TRIES} "
                                    "tries", "check that this is your card and start again") \
                        from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _record_unlock_failure(self, officer: str, record: PlanRecord | None,
                               attempt: int) -> None:
        # One reason for every failure (wrong passphrase, wrong card): no oracle in the ledger.
        data = {"plan_id": record.plan_id if record is not None else None, "officer": officer,
                "attempt": attempt, "reason": "card not unlocked as this officer's card"}
        self.state.append("ceremony.unlock_failed", data, time=self.now, actor="console",
                          ceremony=record.plan_id if record is not None else None)

    # --- approving -------------------------------------------------------------------------

    def approve(self, plan_id: str, officer: str, cards: CardSource, *,
                confirm: Callable[[PlanView], None]) -> Approved:
        """One officer signs the plan's digest after `confirm` showed it and checked the words.

        Raises:
            PlanError (and subclasses), QuorumError: before any card is unlocked.
            UsageError: the words typed are not this plan's. CardError: see `unlock`.
        """
        with self.ws.exclusive():
            view = self.review(plan_id)
            if not self.check_approver(view, officer):
                return Approved(f"{officer} already approved plan {view.plan_id}: "
                                f"{view.status.summary()}")
            self.card_path(cards, officer)
            confirm(view)
            self.require_fixed_rules(view.record.plan)
            card = self.unlock(cards, officer, view.record)
            return Approved(self._approve(view, card), card)

    def _approve(self, view: PlanView, card: UnlockedCard) -> str:
        record = view.record
        approval = sign_approval(card, record.digest, now=self.now)
        status = approval_status(record.digest, [*record.approvals, approval],
                                 self.ws.trust.officers, need=record.plan.quorum_m, now=self.now,
                                 expires_at=record.plan.expires_at)
        if card.name not in status.counted:
            reason = next((str(r.reason) for r in status.rejected if r.officer == card.name),
                          "not counted")
            self._refuse(record, card.name, reason)
            raise QuorumError(f"{card.name}'s approval does not count: {reason}",
                              "see `ceremony officer list`", have=status.have,
                              need=record.plan.quorum_m)
        self.state.append("ceremony.approved", {"plan_id": record.plan_id,
                                                **approval.to_dict()},
                          time=self.now, actor=card.name, ceremony=record.plan_id)
        return f"{card.name} signed plan {record.plan_id}: {status.summary()}"

    def _refuse(self, record: PlanRecord, officer: str, reason: str) -> None:
        self.state.append("ceremony.approval_refused",
                          {"plan_id": record.plan_id, "officer": officer, "reason": reason},
                          time=self.now, actor="console", ceremony=record.plan_id)

    # --- executing -------------------------------------------------------------------------

    def execute(self, plan_id: str, officers: Sequence[str], cards: CardSource, *,
                confirm: Callable[[PlanView], None] | None = None,
                progress: ProgressSink | None = None,
                unlocked: Sequence[UnlockedCard] = ()) -> str:
        """Run an approved plan: checks, cards, quorum, PIN gate, login, steps, transcript.

        Raises:
            PlanError (and subclasses), QuorumError: before any card is unlocked.
            CardError, ShareError: before any HSM login.
            ConsoleError: a step failed; it is recorded and the plan can be resumed.
        """
        with self.ws.exclusive():
            view = self.review(plan_id)
            self.check_executors(view, officers)
            held = {c.name: c for c in unlocked}
            for name in officers:
                if name not in held:
                    self.card_path(cards, name)
            if confirm is not None:
                confirm(view)
            ready = [held.get(name) or self.unlock(cards, name, view.record)
                     for name in officers]
            return self._execute(view, ready, progress, resuming=False)

    def _execute(self, view: PlanView, unlocked: Sequence[UnlockedCard],
                 progress: ProgressSink | None, *, resuming: bool) -> str:
        ws = self.ws
        record = view.record
        pin = bytearray()
        self.require_fixed_rules(record.plan)
        try:
            present = [c for c in unlocked if c.name in view.status.counted]
            require_quorum(record.digest, record.approvals, self._approvers_registry(record),
                           need=record.plan.quorum_m,
                           now=record.planned_at if resuming else self.now,
                           expires_at=record.plan.expires_at)
            if len(present) < record.plan.quorum_m:
                raise QuorumError("too few approving officers unlocked their cards",
                                  "the officers who approved the plan unlock their cards",
                                  have=len(present), need=record.plan.quorum_m)
            hsm = None
            if record.plan.touches_hsm:
                hsm = ws.hsm()
                pin = bytearray(self._login(hsm, record, unlocked))
            self.state.append("ceremony.resumed" if resuming else "ceremony.started",
                              {"plan_id": record.plan_id, "officers": [c.name for c in unlocked]},
                              time=self.now, actor="console", ceremony=record.plan_id)
            self.started = record.plan_id
            record = find_plan(self._plans(), record.plan_id)
            requested = self.now if ws.rehearsal else None
            run = CeremonyRun(ws=ws, record=record, officers=list(unlocked),
                              clock=lambda: ws.now(requested),
                              progress=progress or NullProgress(), state=self.state,
                              hsm_session=hsm, pin=pin)
            run.run()
        except QuorumError as error:
            self.state.append("ceremony.execution_refused",
                              {"plan_id": record.plan_id, "officers": [c.name for c in unlocked],
                              "reason": error.user_message()},
                              time=self.now, actor="console", ceremony=record.plan_id)
            raise
        finally:
            wipe(pin)
        paths = write_transcript(ws, record.plan_id, plans=self.state.plans())
        return f"ceremony {record.plan_id} completed; transcript: {paths[0] if paths else '—'}"

    # --- run, resume, abort ----------------------------------------------------------------

    def run(self, script: str, officers: Sequence[str], cards: CardSource, *,
            confirm: Callable[[PlanView], None], keysets: Sequence[str] = (),
            parameters: Sequence[str] = (), progress: ProgressSink | None = None,
            on_plan: Callable[[PlanView], None] | None = None) -> str:
        """Plan, show, approve (each card unlocked once) and execute, in one.

        A plan that `run` made and could not start is aborted, so it does not block the next.
        """
        if not officers:
            raise UsageError("run needs the approving officers", "add --officer NAME (repeat)")
        if len(set(officers)) != len(officers):
            raise UsageError("an officer is named twice", "name each officer once")
        for name in officers:
            self.card_path(cards, name)
        view = self.plan(script, keysets=keysets, parameters=parameters)
        if on_plan is not None:
            on_plan(view)
        try:
            with self.ws.exclusive():
                for name in officers:
                    self.check_approver(view, name)
                    self.card_path(cards, name)
                if len(officers) < view.record.plan.quorum_m:
                    raise QuorumError(
                        f"plan {view.plan_id} needs {view.record.plan.quorum_m} officers; "
                        f"{len(officers)} named", "name more officers with --officer",
                        have=len(officers), need=view.record.plan.quorum_m)
                confirm(view)
                unlocked = []
                for name in officers:
                    card = self.unlock(cards, name, view.record)
                    unlocked.append(card)
                    self._approve(self._review(find_plan(self._plans(), view.plan_id)), card)
                return self._execute(self.review(view.plan_id), unlocked, progress,
                                     resuming=False)
        except (ConsoleError, KeyboardInterrupt) as error:
            record = find_plan(self._plans(), view.plan_id)
            if not record.started and not record.closed:
                why = (error.user_message() if isinstance(error, ConsoleError)
                       else "interrupted (ctrl+c)")
                self.state.append("ceremony.aborted", {
                    "plan_id": record.plan_id, "after_step": 0,
                    "reason": f"run stopped before it started: {why}"},
                                  time=self.now, actor="console", ceremony=record.plan_id)
            raise


    def resume(self, officers: Sequence[str], cards: CardSource, *,
               progress: ProgressSink | None = None,
               confirm: Callable[[PlanView], None] | None = None,
               unlocked: Sequence[UnlockedCard] = ()) -> str:
        """Continue the interrupted ceremony from its last completed step (same quorum).

        `unlocked` are cards a face already unlocked with `unlock_approver` (the TUI); the
        others are unlocked here, after `confirm` saw the plan.

        Raises:
            PlanError: nothing to resume; an input changed. QuorumError: not its approvers.
        """
        with self.ws.exclusive():
            record = self.interrupted()
            view = self._review(record, for_resume=True)
            self.check_executors(view, officers)
            held = {c.name: c for c in unlocked}
            for name in officers:
                if name not in held:
                    self.card_path(cards, name)
            if confirm is not None:
                confirm(view)
            ready = [held.get(name) or self.unlock(cards, name, record) for name in officers]
            return self._execute(view, ready, progress, resuming=True)

    def unlock_approver(self, plan_id: str, officer: str, cards: CardSource) -> UnlockedCard:
        """Unlock the card of an officer whose approval of `plan_id` counts, for an execution
        or resume that follows (a face may hold it briefly; the TUI wipes it when idle). Every
        check that needs no secret is made first.

        Raises:
            PlanError (and subclasses): the plan cannot go on. QuorumError: `officer`'s
            approval does not count. UsageError, CardError: see `unlock`.
        """
        with self.ws.exclusive():
            record = find_plan(self._plans(), plan_id)
            view = self._review(record, for_resume=record.started)
            if officer not in view.status.counted:
                approvers = ", ".join(view.status.counted) or "nobody yet"
                raise QuorumError(f"{officer}'s approval of plan {record.plan_id} does not count "
                                  f"(approved by {approvers})",
                                  "the officers who approved the plan unlock their cards",
                                  have=view.status.have, need=record.plan.quorum_m)
            self.card_path(cards, officer)
            return self.unlock(cards, officer, view.record)


    def abort(self, officer: str, cards: CardSource, *,
              confirm: Callable[[PlanRecord], None]) -> Abort:
        """Close the open ceremony without running more steps, as `officer` (who approved it,
        or any officer in force when nobody did); says what was kept and what was not done.

        Raises:
            PlanError: nothing to abort. QuorumError: the officer may not abort it.
        """
        with self.ws.exclusive():
            record = self.abortable()
            approvers = record.approvers()
            known = self.ws.trust.officers.get(officer)
            if known is None or not known.active:
                raise QuorumError(f"{officer} is not an officer in force",
                                  "see `ceremony officer list`")
            if approvers and officer not in approvers:
                raise QuorumError(
                    f"only an officer who approved plan {record.plan_id} may abort it "
                    f"({', '.join(approvers)})", f"ask {approvers[0]} to abort it")
            self.card_path(cards, officer)
            confirm(record)
            card = self.unlock(cards, officer, record)
            kept, undone = _abort_outcome(record, self.ws.exports_dir)
            signature = card.sign(ABORT_CONTEXT + record.digest.hex().encode())
            self.state.append("ceremony.aborted", {
                "plan_id": record.plan_id, "after_step": record.last_done, "officer": officer,
                "signature": b64.encode(signature), "kept": list(kept), "undone": list(undone)},
                              time=self.now, actor=officer, ceremony=record.plan_id)
            return Abort(record.plan_id, kept, undone)


def _abort_outcome(record: PlanRecord, exports: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What stays (done steps, keys left on the token) and what never happened."""
    kept: list[str] = []
    undone: list[str] = []
    for action in record.actions:
        if action.n in record.done:
            kept.append(f"step {action.n}: {action.description}")
        elif action.n in record.intents:
            intent = record.intents[action.n]
            if intent.get("action") == "generate":
                kept.append(f"step {action.n} was interrupted: a key labelled "
                            f"{intent.get('label')} may be on the token — `ceremony reconcile` "
                            "lists it; key-destruction removes it")
            elif isinstance(action, ExportBundle):
                folder = exports / action.keyset / str(intent.get("seq"))
                if folder.exists():
                    aside = folder.with_name(f".aborted-{folder.name}-{record.plan_id}")
                    folder.rename(aside)
                    undone.append(f"step {action.n}: bundle #{intent.get('seq')} was written but "
                                  f"never recorded; moved aside to {aside.name}")
                else:
                    undone.append(f"step {action.n}: {action.description}")
            else:
                undone.append(f"step {action.n} (interrupted): {action.description}")
        else:
            undone.append(f"step {action.n}: {action.description}")
    if any(isinstance(a, ExportBundle) and a.n not in record.done for a in record.actions):
        undone.append("no key changed state without its bundle: the ledger, the latest export "
                      "and `status` agree on which key signs")
    if any(isinstance(a, RecordConfig) and a.n not in record.done for a in record.actions):
        undone.append("the configuration was not recorded: commands stay refused until a "
                      "config-change completes")
    return tuple(kept), tuple(undone)










__all__ = ["UNLOCK_TRIES", "Abort", "Approved", "CardSource", "Session"]

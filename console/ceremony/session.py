"""The ceremony session service: the flows both faces use (plan, review, approve, execute, run,
resume, abort), the workspace lock, where cards may live, and every check that can be made
before a card is unlocked.

The CLI and the TUI only ask and render: they hand the session a `CardSource` that can name an
officer's card file and ask for its passphrase, and the session decides when (after every check
that needs no secret) and how often (three tries, each failure recorded in the ledger without
secret material) to ask. A plan is re-derived from the ledger's stored bytes and the workspace's
files before every approval and execution; any difference refuses, naming what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from console import b64
from console.ceremony.actions import ExportBundle, RecordConfig
from console.ceremony.engine import CeremonyRun
from console.ceremony.journal import PlanRecord, find_plan, open_plans
from console.ceremony.ledgerstate import LedgerState
from console.ceremony.officers import read_card_file
from console.ceremony.plan import Plan, PlanInputs
from console.ceremony.planner import PlanningContext, build_plan
from console.ceremony.progress import NullProgress, ProgressSink
from console.ceremony.review import PlanView
from console.ceremony.script import Script, load_script
from console.ceremony.signers import check_signer
from console.ceremony.transcript import write_transcript
from console.clock import format_time
from console.config.workspace import network_hsm_address
from console.errors import (
    CardError,
    ConsoleError,
    PinIncorrectError,
    PlanAlreadyExecutedError,
    PlanError,
    PlanExpiredError,
    PlanInputsChangedError,
    QuorumError,
    UsageError,
    WorkspaceError,
)
from console.hardening import protect_process, wipe
from console.ledger.trust import OfficerRegistry
from console.lifecycle import KeysetState
from console.quorum.approvals import (
    QuorumStatus,
    approval_status,
    require_quorum,
    sign_approval,
)
from console.quorum.cards import UNLOCK_FAILED, UnlockedCard, read_card_public, unlock_card
from console.quorum.pin_gate import open_pin, read_sealed_pin
from console.sealing import changes, current_record
from console.workspace import Workspace

if TYPE_CHECKING:
    from console.hsm import Hsm

UNLOCK_TRIES = 3
ABORT_CONTEXT = b"key-ceremony-abort/v1\n"
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


class Session:
    """One face's conversation with a workspace at one time `now` (see the module docstring)."""

    def __init__(self, ws: Workspace, *, now: datetime) -> None:
        self.ws = ws
        self.now = now
        self.planned: str | None = None
        """The plan this session recorded (`plan`, `run`), for a face that was interrupted."""
        self.started: str | None = None
        """The ceremony this session started or resumed: after an interruption it may be
        half-done, and the face says how to continue it."""
        self.state = LedgerState(ws.ledger)
        """The ledger's state entries, read once and kept current with what this appends."""

    # --- reading ---------------------------------------------------------------------------

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
            params = _parse_parameters(script, parameters)
            plans = self._plans()
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
            _refuse_overlapping_plan(plans, plan, self.now)
            self.state.append("ceremony.planned", {"plan": plan.to_dict(),
                                                  "digest": plan.digest.hex()},
                             time=self.now, actor="console", ceremony=plan.id)
            self.planned = plan.id
            return self.review(plan.id)

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

    # --- reviewing -------------------------------------------------------------------------

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

    # --- cards -----------------------------------------------------------------------------

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

    def interrupted(self) -> PlanRecord:
        """The ceremony that started and did not finish.

        Raises:
            PlanError: none.
        """
        started = [p for p in self._plans().values() if p.started and not p.closed]
        if not started:
            raise PlanError("no interrupted ceremony to resume", "see `ceremony status`")
        return started[-1]

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


def _refuse_overlapping_plan(plans: Mapping[str, PlanRecord], plan: Plan, now: datetime) -> None:
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


def _parse_parameters(script: Script, values: Sequence[str]) -> dict[str, tuple[str, ...]]:
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


__all__ = ["UNLOCK_TRIES", "Abort", "Approved", "CardSource", "Session"]

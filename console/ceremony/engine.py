"""Executing an approved plan, step by step, with a durable journal in the ledger.

Every step that touches the HSM or the files writes `ceremony.step.intent` first (with the
planned CKA_LABEL and CKA_ID) and `ceremony.step.done` after, in the same transaction as the
entries that record its effect (`key.generated`, `key.state_changed`, `bundle.exported`). Steps
that only change the ledger write their result and effect in one transaction. Each of these
transactions is durable when it returns (SQLite WAL, synchronous=FULL), and the files a step
writes are durable before the transaction that records them.

Some results wait for the next transaction (`CeremonyRun.hold`), which the next step makes
before it changes anything (its intent), or the run makes at its end; their ✓ is shown only once
that transaction is durable. A step that changed nothing but its own record (a clean
reconciliation; a self-test: a signature made and checked) holds it: a crash in between loses
only the verdict, and `resume` runs the step again. An export's result (its files already
durable) is held when the next step reads nothing that result changes before its own intent:
the export of another keyset (it reads that keyset's state, the policy and the bundle key) or a
key generation (its intent comes first); a crash in between leaves the export's intent without
its result, and `resume` verifies and adopts the folder, as after any crash behind the rename.
Every step's result is thus durable before the next step changes anything, in 3 transactions
a rotated keyset instead of 5.

After a crash the journal says exactly which step was in flight; each step's `recover` finishes
or redoes it, never adopting an HSM object that does not match the intent or fails its audit.

This module owns the run (the loop, the journal's writes, the checkpoint signers, the crash
points) and the dispatch table `STEPS`, from action type to handler; the handlers live in
`console.ceremony.steps` (keys, exports, officers), each taking its own typed action, parsed
from the plan's verified bytes.
"""

from __future__ import annotations

import contextlib
import os
import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from console.ceremony.actions import (
    Action,
    Checkpoint,
    Destroy,
    DestroyOrphan,
    EnrollOfficer,
    ExportAudit,
    ExportBundle,
    Generate,
    KeyRef,
    Note,
    PublishBundleKey,
    Reconcile,
    RecordConfig,
    ReleaseSigner,
    ResplitPin,
    RevokeOfficer,
    RevokeSigner,
    SelfTest,
)
from console.ceremony.journal import EntryLike, PlanRecord
from console.ceremony.ledgerstate import LedgerState
from console.ceremony.planner import BUNDLE_KEYSET, BUNDLE_SIGNING_KEY_FILE
from console.ceremony.progress import ProgressSink, StepEvent
from console.ceremony.steps import exports, keys, officers
from console.ceremony.steps.exports import HsmBundleSigner
from console.clock import wall_clock
from console.errors import ConsoleError, HsmError, PlanError
from console.jsontypes import JsonMapping, JsonObject
from console.ledger import cosign_note, sign_note
from console.lifecycle import Key, KeysetState, KeyState, replay
from console.quorum.cards import UnlockedCard

if TYPE_CHECKING:
    from console.config import KeysetPolicy
    from console.hsm import Hsm
    from console.workspace import Workspace

Item = tuple[str, JsonObject]
"""An entry to append: (type, data)."""
CRASH_VARIABLE = "CEREMONY_UNSAFE_CRASH_AT"
"""Rehearsal-only fault injection for crash tests: `<point>:<step>` with point `intent` (intent
recorded, HSM/file work not started), `effect` (work done, result not recorded) or `done`
(result recorded). The process kills itself with SIGKILL there, as a power cut would."""
INTERRUPT_VARIABLE = "CEREMONY_UNSAFE_INTERRUPT_AT"
"""The same points, rehearsal-only: the process sends itself SIGINT there, as ctrl+c would."""


def _crash_point(rehearsal: bool, point: str, step: int) -> None:
    if not rehearsal:
        return
    import signal

    here = f"{point}:{step}"
    if os.environ.get(CRASH_VARIABLE) == here:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(INTERRUPT_VARIABLE) == here:
        os.kill(os.getpid(), signal.SIGINT)


A = TypeVar("A", bound=Action)


class StepRunner(Protocol):
    """A `Step` of any action kind, as the dispatch table holds it."""

    @property
    def kind(self) -> type[Action]: ...

    def start(self, engine: CeremonyRun, action: Action) -> str: ...

    def resume(self, engine: CeremonyRun, action: Action, intent: JsonMapping) -> str: ...


@dataclass(frozen=True)
class Step(Generic[A]):
    """How the engine runs one action kind, and how it finishes one a crash interrupted."""

    kind: type[A]
    run: Callable[[CeremonyRun, A], str]
    recover: Callable[[CeremonyRun, A, JsonMapping], str] | None = None

    def start(self, engine: CeremonyRun, action: Action) -> str:
        assert isinstance(action, self.kind)
        return self.run(engine, action)

    def resume(self, engine: CeremonyRun, action: Action, intent: JsonMapping) -> str:
        assert isinstance(action, self.kind)
        if self.recover is None:
            return self.run(engine, action)
        return self.recover(engine, action, intent)


@dataclass
class CeremonyRun:
    """One execution (or resumption) of a plan. `hsm` is logged in when the plan needs it."""

    ws: Workspace
    record: PlanRecord
    officers: Sequence[UnlockedCard]
    clock: Callable[[], datetime]
    progress: ProgressSink
    state: LedgerState
    """The session's state entries: read once, kept current with each step's writes."""
    hsm_session: Hsm | None = None
    pin: bytearray = field(repr=False, default_factory=bytearray)
    keysets: dict[str, KeysetState] = field(default_factory=dict)
    reconciled: bool = False
    completed: bool = False
    wall: Callable[[], datetime] = wall_clock
    """The machine's clock, for what meets the outside world now (the canary's `exp`), even in
    a rehearsal whose `clock` was moved with --now."""
    held: list[Item] = field(default_factory=list)
    """Journal-only results waiting for the next transaction (see the module docstring)."""
    _following: Action | None = None
    _when_held_durable: list[Callable[[], None]] = field(default_factory=list)

    # --- running ---------------------------------------------------------------------------

    def run(self) -> None:
        """Run every step not yet done; then close the ceremony.

        Raises:
            ConsoleError: a step failed (recorded as `ceremony.step.failed`); the plan stays
                open for `ceremony resume`.
        """
        self.keysets = dict(self.state.keysets())
        actions = self.record.actions
        total = len(actions)
        for position, action in enumerate(actions):
            n = action.n
            self._following = actions[position + 1] if position + 1 < len(actions) else None
            if n in self.record.done:
                self.progress.step(StepEvent(n, total, action.kind, action.description,
                                             "skipped", "done before"))
                continue
            started = _time.monotonic()
            self.progress.step(StepEvent(n, total, action.kind, action.description, "started"))
            step = STEPS[type(action)]
            try:
                intent = self.record.intents.get(n)
                detail = (step.resume(self, action, intent) if intent is not None
                          else step.start(self, action))
            except ConsoleError as error:
                # The disk that failed the step may refuse this record too: the step's own error
                # (naming its file) is then the one to report, and `resume` redoes the step.
                with contextlib.suppress(ConsoleError):
                    self.append("ceremony.step.failed", {
                        "plan_id": self.record.plan_id, "step": n, "action": action.kind,
                        "error": error.user_message(),
                    })
                self.progress.step(StepEvent(n, total, action.kind, action.description,
                                             "failed", error.user_message(),
                                             _time.monotonic() - started))
                raise
            self._announce_done(StepEvent(n, total, action.kind, action.description, "done",
                                          detail, _time.monotonic() - started))
        if not self.completed:
            self.append_many(self.completion())
        elif self.held:
            self.append_many([])
        # No "completed" line here: the face prints the session's result (with the transcript).

    def _announce_done(self, event: StepEvent) -> None:
        """Show the step as done once its record is durable: now, or with the held records."""

        def announce() -> None:
            _crash_point(self.ws.rehearsal, "done", event.n)
            self.progress.step(event)

        if self.held:
            self._when_held_durable.append(announce)
        else:
            announce()

    def completion(self) -> list[Item]:
        plan = self.record.plan
        items: list[Item] = [("ceremony.completed", {
            "plan_id": plan.id, "class": plan.ceremony_class, "script": plan.script,
            "keysets": list(plan.keysets),
        })]
        items += [("ceremony.ratified", {"plan_id": plan.id, "ratified_plan": ratified})
                  for ratified in plan.ratifies]
        return items

    @property
    def hsm(self) -> Hsm:
        if self.hsm_session is None:  # pragma: no cover - plans that touch the HSM get one
            raise HsmError("this step needs the HSM, which this run did not open",
                           "report this bug")
        return self.hsm_session

    # --- ledger helpers --------------------------------------------------------------------

    def append(self, type: str, data: JsonObject) -> EntryLike:
        return self.append_many([(type, data)])[0]

    def append_many(self, items: Sequence[Item], *,
                    checkpoint: bool = False) -> list[EntryLike]:
        """Append `items` in one transaction; with `checkpoint`, the officers present cosign
        a checkpoint covering them in the same transaction (when they can make one count)."""
        now = self.clock()
        plan_id = self.record.plan_id
        held = len(self.held)
        items = [*self.held, *items]
        with self.ws.ledger.transaction() as w:
            for kind, data in items:
                w.append(kind, data, time=now, actor="console", ceremony=plan_id)
            if checkpoint:
                signers = self.checkpoint_signers()
                if signers:
                    w.append_checkpoint(self.sign_checkpoint(w.checkpoint_body(), signers),
                                        time=now, actor="console")
            written = list(w.appended)
        self.held.clear()
        self.state.appended(written)
        for entry in written:
            if entry.type in ("key.generated", "key.state_changed"):
                self._apply_key_entry(entry)
        announcements, self._when_held_durable = self._when_held_durable, []
        for announce in announcements:
            announce()
        return list(written[held:])

    def finish(self, keyset: str, items: Sequence[Item]) -> None:
        """Record a step's result and its effect on `keyset`: with the next step's intent when
        that step, not yet begun, reads nothing the result changes before it (a key generation,
        or the export of another keyset); otherwise now. See the module docstring."""
        following = self._following
        unaffected = isinstance(following, Generate) or (
            isinstance(following, ExportBundle) and following.keyset != keyset)
        if (following is not None and unaffected and following.n not in self.record.done
                and following.n not in self.record.intents):
            self.hold(items)
        else:
            self.append_many(items)

    def hold(self, items: Sequence[Item]) -> None:
        """Keep a journal-only result for the next transaction (see the module docstring):
        only for a step whose effect is nothing but this record."""
        self.held.extend(items)

    def _apply_key_entry(self, entry: EntryLike) -> None:
        keyset = str(entry.data["keyset"])
        if entry.type == "key.generated":
            new = replay([entry]).keysets[keyset].keys[0]
            self.keysets[keyset] = self.keysets.get(keyset, KeysetState(keyset)).with_key(new)
        else:
            state = self.keysets[keyset]
            self.keysets[keyset] = state.moved(str(entry.data["kid"]),
                                               KeyState(str(entry.data["to"])),
                                               entry.time, str(entry.data.get("reason", "")))

    def intent(self, action: Action, **extra: object) -> None:
        self.append("ceremony.step.intent", {
            "plan_id": self.record.plan_id, "step": action.n, "action": action.kind, **extra,
        })
        _crash_point(self.ws.rehearsal, "intent", action.n)

    def done(self, action: Action, **extra: object) -> Item:
        # Called just before the result is written: the step's effect has happened.
        _crash_point(self.ws.rehearsal, "effect", action.n)
        return ("ceremony.step.done", {"plan_id": self.record.plan_id, "step": action.n,
                                       "action": action.kind, **extra})

    def key(self, keyset: str, ref: KeyRef) -> Key:
        """The key a reference names: by kid, or by the label of a key this plan generated."""
        state = self.keysets.get(keyset)
        for key in (state.keys if state is not None else ()):
            if (ref.kid is not None and key.kid == ref.kid) or (
                    ref.label is not None and key.label == ref.label):
                return key
        raise PlanError(f"no key {ref.text} in keyset {keyset}",
                        "the ledger and the plan disagree: run `ceremony reconcile`")

    def policy(self, keyset: str) -> KeysetPolicy:
        policy = self.ws.policy
        if keyset == BUNDLE_KEYSET:
            return policy.keysets[0]
        return policy.keyset(keyset)

    # --- checkpoints -----------------------------------------------------------------------

    def checkpoint_signers(self) -> list[UnlockedCard]:
        """The officers present who approved the plan and are in force, if they are enough
        to make a checkpoint count (an emergency quorum may be smaller)."""
        trust = self.ws.trust
        approvers = set(self.record.approvers())
        signers = [c for c in self.officers if c.name in approvers
                   and (o := trust.officers.get(c.name)) is not None and o.active
                   and o.ed25519 == c.public.ed25519_public]
        need = trust.quorum.routine.m if trust.quorum is not None else len(signers) + 1
        return signers if len(signers) >= need else []

    @staticmethod
    def sign_checkpoint(body: str, signers: Sequence[UnlockedCard]) -> str:
        note = sign_note(body, signers[0].name, signers[0].ed25519_private)
        for card in signers[1:]:
            note = cosign_note(note, card.name, card.ed25519_private)
        return note


STEPS: Mapping[type[Action], StepRunner] = {
    step.kind: step for step in (
        Step(Reconcile, keys.reconcile),
        Step(Generate, keys.generate, keys.recover_generate),
        Step(SelfTest, keys.self_test),
        Step(PublishBundleKey, exports.publish_bundle_key),
        Step(ExportBundle, exports.export_bundle, exports.recover_export_bundle),
        Step(Destroy, keys.destroy, keys.recover_destroy),
        Step(DestroyOrphan, keys.destroy_orphan, keys.recover_destroy_orphan),
        Step(ExportAudit, exports.export_audit),
        Step(Checkpoint, officers.checkpoint),
        Step(Note, officers.note),
        Step(EnrollOfficer, officers.enroll_officer),
        Step(RevokeOfficer, officers.revoke_officer),
        Step(ResplitPin, officers.resplit_pin, officers.recover_resplit_pin),
        Step(RecordConfig, officers.record_config),
        Step(ReleaseSigner, officers.release_signer),
        Step(RevokeSigner, officers.revoke_signer),
    )
}
"""How each action kind runs: the engine's one dispatch table."""


__all__ = ["BUNDLE_SIGNING_KEY_FILE", "STEPS", "CeremonyRun", "HsmBundleSigner", "Item", "Step",
           "StepRunner"]

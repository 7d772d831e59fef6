"""Executing an approved plan, step by step, with a durable journal in the ledger.

Every step that touches the HSM or the files writes `ceremony.step.intent` first (with the
planned CKA_LABEL and CKA_ID) and `ceremony.step.done` after, in the same transaction as the
entries that record its effect (`key.generated`, `key.state_changed`, `bundle.exported`). Steps
that only change the ledger write their result and effect in one transaction. After a crash the
journal says exactly which step was in flight; each step's `recover` finishes or redoes it,
never adopting an HSM object that does not match the intent or fails its audit.

Publication is a fact: an `ExportBundle` step applies its key changes (publish, activate,
retire, unpublish, …) in the same transaction that records the bundle showing them, so the
ledger never says a key is published before a signed bundle carries it, nor active before an
exported `signer.json` names it. A failed export leaves every key as it was.

Evidence before activation: before a bundle step activates a key (an `activate` change not
waived), the next key signs a canary token on the HSM and every consumer in the step's `probes`
is asked (`console.ceremony.probes`); one refusal fails the step before its intent, so nothing is
exported. The answers are recorded as `consumer.probed` entries: with the bundle when all
accepted, just before the failure otherwise.

Steps are dispatched through `STEPS`, a table from action type to handler; each handler takes
its own typed action, parsed from the plan's verified bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from console.b64 import decode as b64url_decode
from console.b64 import encode as b64url_encode
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
from console.ceremony.planner import BUNDLE_KEYSET, jwks_keys
from console.ceremony.probes import Evidence, canary_claims, gather, refusal
from console.ceremony.progress import ProgressSink, StepEvent
from console.ceremony.reconcile import Reconciliation, reconcile, token_kids
from console.ceremony.signers import release_pin, remove_release
from console.clock import format_time, wall_clock
from console.errors import (
    DISK_HINT,
    ConsoleError,
    ExportError,
    HsmError,
    KeyAuditError,
    PinIncorrectError,
    PlanError,
    ReconcileError,
)
from console.exports.jwks import public_jwk
from console.exports.verify_bundle import verify_bundle, verify_jws
from console.exports.writer import export_bundle, write_signing_key
from console.jsontypes import JsonMapping, JsonObject
from console.ledger import cosign_note, sign_note
from console.lifecycle import Key, KeysetState, KeyState, check_transition, replay, short_kid
from console.quorum.cards import UnlockedCard
from console.quorum.pin_gate import new_pin, open_pin, read_sealed_pin, seal_pin
from console.signing import jws_signing_input

if TYPE_CHECKING:
    from console.config import KeysetPolicy
    from console.hsm import Hsm
    from console.workspace import Workspace

BUNDLE_SIGNING_KEY_FILE = "bundle-signing-key.jwk"
_Item = tuple[str, JsonObject]
"""An entry to append: (type, data)."""
CRASH_VARIABLE = "CEREMONY_UNSAFE_CRASH_AT"
"""Rehearsal-only fault injection for crash tests: `<point>:<step>` with point `intent` (intent
recorded, HSM/file work not started), `effect` (work done, result not recorded) or `done`
(result recorded). The process kills itself with SIGKILL there, as a power cut would."""
INTERRUPT_VARIABLE = "CEREMONY_UNSAFE_INTERRUPT_AT"
"""The same points, rehearsal-only: the process sends itself SIGINT there, as ctrl+c would."""

_VERB_TARGET: Mapping[str, KeyState] = {
    "publish": KeyState.PUBLISHED, "activate": KeyState.ACTIVE, "retire": KeyState.RETIRED,
    "unpublish": KeyState.ARCHIVED, "suspend": KeyState.SUSPENDED, "resume": KeyState.ACTIVE,
    "compromise": KeyState.COMPROMISED, "withdraw": KeyState.ARCHIVED,
}


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
        for action in actions:
            n = action.n
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
                    self._append("ceremony.step.failed", {
                        "plan_id": self.record.plan_id, "step": n, "action": action.kind,
                        "error": error.user_message(),
                    })
                self.progress.step(StepEvent(n, total, action.kind, action.description,
                                             "failed", error.user_message(),
                                             _time.monotonic() - started))
                raise
            _crash_point(self.ws.rehearsal, "done", n)
            self.progress.step(StepEvent(n, total, action.kind, action.description, "done",
                                         detail, _time.monotonic() - started))
        if not self.completed:
            self._append_many(self._completion())
        # No "completed" line here: the face prints the session's result (with the transcript).

    def _completion(self) -> list[_Item]:
        plan = self.record.plan
        items: list[_Item] = [("ceremony.completed", {
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

    def _append(self, type: str, data: JsonObject) -> EntryLike:
        return self._append_many([(type, data)])[0]

    def _append_many(self, items: Sequence[_Item], *,
                     checkpoint: bool = False) -> list[EntryLike]:
        """Append `items` in one transaction; with `checkpoint`, the officers present cosign
        a checkpoint covering them in the same transaction (when they can make one count)."""
        now = self.clock()
        plan_id = self.record.plan_id
        with self.ws.ledger.transaction() as w:
            for kind, data in items:
                w.append(kind, data, time=now, actor="console", ceremony=plan_id)
            if checkpoint:
                signers = self._checkpoint_signers()
                if signers:
                    w.append_checkpoint(self._sign(w.checkpoint_body(), signers), time=now,
                                        actor="console")
            written = list(w.appended)
        self.state.appended(written)
        for entry in written:
            if entry.type in ("key.generated", "key.state_changed"):
                self._apply_key_entry(entry)
        return list(written)

    def _apply_key_entry(self, entry: EntryLike) -> None:
        keyset = str(entry.data["keyset"])
        if entry.type == "key.generated":
            new = replay([entry]).keysets[keyset].keys[0]
            self.keysets[keyset] = self.keysets.get(keyset, KeysetState(keyset)).with_key(new)
        else:
            state = self.keysets[keyset]
            self.keysets[keyset] = state.moved(str(entry.data["kid"]), KeyState(entry.data["to"]),
                                               entry.time, str(entry.data.get("reason", "")))

    def _intent(self, action: Action, **extra: object) -> None:
        self._append("ceremony.step.intent", {
            "plan_id": self.record.plan_id, "step": action.n, "action": action.kind, **extra,
        })
        _crash_point(self.ws.rehearsal, "intent", action.n)

    def _done(self, action: Action, **extra: object) -> _Item:
        # Called just before the result is written: the step's effect has happened.
        _crash_point(self.ws.rehearsal, "effect", action.n)
        return ("ceremony.step.done", {"plan_id": self.record.plan_id, "step": action.n,
                                       "action": action.kind, **extra})

    def _key(self, keyset: str, ref: KeyRef) -> Key:
        """The key a reference names: by kid, or by the label of a key this plan generated."""
        state = self.keysets.get(keyset)
        for key in (state.keys if state is not None else ()):
            if (ref.kid is not None and key.kid == ref.kid) or (
                    ref.label is not None and key.label == ref.label):
                return key
        raise PlanError(f"no key {ref.text} in keyset {keyset}",
                        "the ledger and the plan disagree: run `ceremony reconcile`")

    def _policy(self, keyset: str) -> KeysetPolicy:
        policy = self.ws.policy
        if keyset == BUNDLE_KEYSET:
            return policy.keysets[0]
        return policy.keyset(keyset)

    # --- checkpoints -----------------------------------------------------------------------

    def _checkpoint_signers(self) -> list[UnlockedCard]:
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
    def _sign(body: str, signers: Sequence[UnlockedCard]) -> str:
        note = sign_note(body, signers[0].name, signers[0].ed25519_private)
        for card in signers[1:]:
            note = cosign_note(note, card.name, card.ed25519_private)
        return note

    def _checkpoint(self, action: Checkpoint) -> str:
        last = action.n == self.record.actions[-1].n
        items = [self._done(action, signers=[c.name for c in self._checkpoint_signers()])]
        if last:
            items += self._completion()
            self.completed = True
        if not self._checkpoint_signers():
            self._append_many(items)
            return ("no checkpoint: the officers present are fewer than the routine quorum; "
                    "the next routine ceremony's checkpoint covers these entries")
        self._append_many(items, checkpoint=True)
        names = ", ".join(c.name for c in self._checkpoint_signers())
        return f"checkpoint at size {self.ws.ledger.size - 1} cosigned by {names}"

    # --- steps: keys -----------------------------------------------------------------------

    def _reconciliation(self) -> Reconciliation:
        inventory = self.hsm.inventory()
        return reconcile(inventory, self.keysets, self.state.plans(),
                         private_visible=True,
                         token_kids=token_kids(self.hsm, inventory, self.keysets))

    def _reconcile(self, action: Reconcile) -> str:
        report = self._reconciliation()
        # Orphans this very plan was approved to destroy are expected here.
        resolving = {a.cka_id for a in self.record.actions if isinstance(a, DestroyOrphan)}
        findings = [f for f in report.findings
                    if not (f.kind == "orphan" and f.cka_id in resolving)]
        self._append_many([self._done(action, objects=report.objects, findings=len(findings))])
        self.reconciled = not findings
        if findings:
            first = findings[0]
            raise ReconcileError(
                f"the HSM and the ledger disagree ({first.describe()}"
                f"{' and more' if len(findings) > 1 else ''})",
                "run `ceremony reconcile` for the full report; nothing was changed",
            )
        expected = f"; {len(resolving)} orphan(s) to destroy" if resolving else ""
        return f"{report.objects} objects, all known{expected}"

    def _generate(self, action: Generate) -> str:
        cka_id = self.hsm.random_id()
        self._intent(action, keyset=action.keyset, label=action.label, cka_id=cka_id.hex(),
                     alg=action.alg)
        generated = self.hsm.generate_keypair(action.alg, label=action.label,
                                              rsa_bits=action.rsa_bits, cka_id=cka_id)
        return self._record_generated(action, public_jwk(generated.public_key, action.alg),
                                      cka_id, recovered=False)

    def _record_generated(self, action: Generate, jwk: Mapping[str, str], cka_id: bytes, *,
                          recovered: bool) -> str:
        kid = jwk["kid"]
        self._append_many([
            self._done(action, kid=kid, label=action.label, cka_id=cka_id.hex(),
                       recovered=recovered),
            ("key.generated", {
                "keyset": action.keyset, "kid": kid, "alg": action.alg, "label": action.label,
                "cka_id": cka_id.hex(), "purpose": action.purpose, "jwk": dict(jwk),
            }),
        ])
        return f"kid {short_kid(kid)} (attributes audited, self-test passed)"

    def _recover_generate(self, action: Generate, intent: JsonMapping) -> str:
        """A generation was in flight: adopt the pair only if it matches the intent exactly
        and passes the full attribute audit. What the interrupted C_GenerateKeyPair left
        half-made (no key material, or half a pair, under the intent's fresh CKA_ID and label)
        is removed and the key generated again; anything else is left alone and stops."""
        cka_id = bytes.fromhex(str(intent["cka_id"]))
        objects = self.hsm.find(cka_id)
        labels = {o.label for o in objects}
        if objects and (labels != {action.label} or intent.get("label") != action.label):
            raise ReconcileError(
                f"objects with the planned CKA_ID carry labels {sorted(labels)}, not the "
                f"planned {action.label}", "they were not made by this step: investigate "
                "with `ceremony reconcile`")
        removed = self.hsm.remove_unfinished(cka_id, action.label)
        if removed:
            self.progress.message(
                f"step {action.n}: removed {len(removed)} object(s) the interrupted key "
                "generation left unfinished (no key material, never recorded or used)")
            objects = self.hsm.find(cka_id)
        if not objects:
            self.progress.message(f"step {action.n}: no key was made before the crash; "
                                  "generating again")
            return self._generate(action)
        audit = self.hsm.audit_key(cka_id, action.alg)
        if audit.problems():
            raise KeyAuditError(
                f"the key left by the interrupted step fails its audit: {audit.problems()[0]}",
                "it is not used; abort with `ceremony resume --abort --officer NAME` and "
                "destroy it after review",
            )
        jwk = public_jwk(self.hsm.public_key(cka_id), action.alg)
        self.progress.message(f"step {action.n}: adopting the key generated before the "
                              "crash (label and CKA_ID match the intent; audit passed)")
        return self._record_generated(action, jwk, cka_id, recovered=True)

    def _self_test(self, action: SelfTest) -> str:
        key = self._key(action.keyset, KeyRef(label=action.label))
        header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
        payload = {"self_test": secrets.token_hex(16)}
        signing_input = (b64url_encode(json.dumps(header, separators=(",", ":")).encode())
                         + "." +
                         b64url_encode(json.dumps(payload, separators=(",", ":")).encode()))
        signature = self.hsm.sign(bytes.fromhex(key.cka_id), key.alg, signing_input.encode())
        verify_jws(signing_input + "." + b64url_encode(signature), key.jwk,
                   allowed_algs={key.alg})
        self._append_many([self._done(action, kid=key.kid, result="signature verified")])
        return f"a JWS signed in the HSM by {short_kid(key.kid)} verifies"

    def _publish_bundle_key(self, action: PublishBundleKey) -> str:
        key = self._key(BUNDLE_KEYSET, KeyRef(label=action.label))
        self._write_bundle_signing_key(key)
        now = self.clock()
        state = self.keysets[BUNDLE_KEYSET]
        published = state.moved(key.kid, KeyState.PUBLISHED, now)
        self._append_many([
            self._done(action, kid=key.kid),
            self._change_entry(BUNDLE_KEYSET, key, KeyState.PUBLISHED, "the pinned bundle key"),
            self._change_entry(BUNDLE_KEYSET, published.key(key.kid), KeyState.ACTIVE,
                               "signs every JWKS bundle from now on"),
        ])
        return f"bundle-signing key {short_kid(key.kid)} written to exports/" \
               f"{BUNDLE_SIGNING_KEY_FILE}"

    @staticmethod
    def _change_entry(keyset: str, key: Key, to: KeyState, why: str) -> _Item:
        return ("key.state_changed", {"keyset": keyset, "kid": key.kid, "from": key.state.value,
                                      "to": to.value, "reason": why})

    def _destroy(self, action: Destroy) -> str:
        key = self._key(action.keyset, KeyRef(kid=action.kid))
        check_transition(self.keysets[action.keyset], key.kid, KeyState.DESTROYED,
                         self._policy(action.keyset), self.clock())
        self._intent(action, keyset=action.keyset, kid=key.kid, label=key.label,
                     cka_id=key.cka_id)
        self.hsm.destroy_keypair(bytes.fromhex(key.cka_id))
        return self._record_destroyed(action, key)

    def _record_destroyed(self, action: Destroy, key: Key) -> str:
        self._append_many([
            self._done(action, kid=key.kid),
            self._change_entry(action.keyset, key, KeyState.DESTROYED, action.why),
        ])
        return f"private key of {short_kid(key.kid)} destroyed; public key stays in the ledger"

    def _recover_destroy(self, action: Destroy, intent: JsonMapping) -> str:
        key = self._key(action.keyset, KeyRef(kid=action.kid))
        if self.hsm.find(bytes.fromhex(key.cka_id)):
            self.hsm.destroy_keypair(bytes.fromhex(key.cka_id))
        return self._record_destroyed(action, key)

    def _destroy_orphan(self, action: DestroyOrphan) -> str:
        cka_id = bytes.fromhex(action.cka_id)
        objects = self.hsm.find(cka_id)
        labels = {o.label for o in objects}
        if objects and labels != {action.label}:
            raise ReconcileError(
                f"objects with CKA_ID {action.cka_id[:12]}… carry labels {sorted(labels)}, "
                f"not the recorded {action.label}", "they are not the orphan: investigate")
        self._intent(action, cka_id=action.cka_id, label=action.label, orphan=True)
        if objects:
            self.hsm.destroy_keypair(cka_id)
        return self._record_orphan(action, "destroyed" if objects else "absent")

    def _record_orphan(self, action: DestroyOrphan, outcome: str) -> str:
        self._append_many([
            self._done(action, cka_id=action.cka_id, orphan=True, outcome=outcome),
            ("reconcile.finding", {"kind": "orphan", "cka_id": action.cka_id,
                                   "label": action.label, "resolution": outcome}),
        ])
        return f"orphan {action.label}: {outcome}"

    def _recover_destroy_orphan(self, action: DestroyOrphan, intent: JsonMapping) -> str:
        cka_id = bytes.fromhex(action.cka_id)
        if self.hsm.find(cka_id):
            self.hsm.destroy_keypair(cka_id)
        return self._record_orphan(action, "destroyed")

    # --- steps: bundles --------------------------------------------------------------------

    def _bundle_signer(self) -> HsmBundleSigner:
        state = self.keysets.get(BUNDLE_KEYSET)
        key = state.active_key if state is not None else None
        if key is None and state is not None:
            key = next((k for k in state.keys if k.state is KeyState.ACTIVE), None)
        if key is None:
            raise ExportError("there is no active bundle-signing key", "run genesis first")
        return HsmBundleSigner(self.hsm, key.alg, key.kid, dict(key.jwk),
                               bytes.fromhex(key.cka_id))

    def _write_bundle_signing_key(self, key: Key) -> None:
        path = self.ws.exports_dir / BUNDLE_SIGNING_KEY_FILE
        if path.exists():
            current = json.loads(path.read_text(encoding="utf-8"))
            if current.get("kid") == key.kid:
                return
            path.rename(path.with_name(f"bundle-signing-key.{current.get('kid')}.jwk"))
        write_signing_key(path, dict(key.jwk))

    def _previous_bundle(self, keyset: str) -> tuple[int, str | None]:
        seq, digest = 0, None
        for entry in self.state.of_type("bundle.exported"):
            if entry.data.get("keyset") == keyset:
                seq, digest = int(entry.data["seq"]), str(entry.data["sha256"])
        return seq, digest

    def _after_changes(self, action: ExportBundle, now: datetime) -> tuple[
            KeysetState, list[_Item]]:
        """The keyset as the bundle will show it, and the entries recording each change.

        Raises:
            TransitionRefusedError: a change breaks a timing rule now (naming the rule and the
                earliest permitted time): nothing is exported.
        """
        state = self.keysets.get(action.keyset, KeysetState(action.keyset))
        policy = self._policy(action.keyset)
        entries: list[_Item] = []
        for change in action.changes:
            key = _find(state, change.key)
            to = _VERB_TARGET[change.verb]
            partner = change.paired_with
            if to is KeyState.ACTIVE and partner is not None:
                active = state.active_key
                partner = partner if active is not None and active.kid == partner else None
            check_transition(state, key.kid, to, policy, now, paired_with=partner,
                             emergency=change.waived is not None)
            entries.append(("key.state_changed", {
                "keyset": action.keyset, "kid": key.kid, "from": key.state.value,
                "to": to.value, "reason": change.why}))
            state = state.moved(key.kid, to, now, change.why)
        return state, entries

    def _export_bundle(self, action: ExportBundle) -> str:
        if not self.reconciled:
            # Once per ceremony: every HSM change after it is journaled by this run.
            report = self._reconciliation()
            if not report.clean:
                raise ReconcileError("exports are blocked: the HSM and the ledger disagree",
                                     "run `ceremony reconcile` and resolve every finding first")
            self.reconciled = True
        now = self.clock()
        after, changes = self._after_changes(action, now)
        evidence = self._evidence_before_activation(action)
        previous_seq, previous_digest = self._previous_bundle(action.keyset)
        seq = previous_seq + 1
        kids = [str(j["kid"]) for j in jwks_keys(after)]
        active = after.active_key
        extra = {"evidence": [e.ledger_data(action.keyset) for e in evidence]} if evidence else {}
        self._intent(action, keyset=action.keyset, seq=seq, kids=kids,
                     signer=active.kid if active is not None else None, **extra)
        return self._export(action, after, changes, seq, previous_digest, now, evidence)

    def _evidence_before_activation(self, action: ExportBundle) -> list[Evidence]:
        """Ask the step's consumers about each key it activates (not waived), with a canary
        signed by that key; record and refuse when one does not accept.

        Raises:
            TransitionRefusedError: rule "consumer-evidence", naming each consumer and answer.
        """
        activations = [c for c in action.changes if c.verb == "activate" and c.waived is None]
        if not activations or not action.probes:
            return []
        policy = self.ws.policy.keyset(action.keyset)
        consumers = []
        for name in action.probes:
            consumer = next((c for c in policy.consumers if c.name == name), None)
            if consumer is None:  # pragma: no cover - the plan's policy digest rules it out
                raise PlanError(f"consumer {name} is not in keyset {action.keyset}'s policy",
                                "make a new plan")
            consumers.append(consumer)
        state = self.keysets[action.keyset]
        evidence: list[Evidence] = []
        for change in activations:
            key = _find(state, change.key)
            header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
            signing_input = jws_signing_input(header, canary_claims(policy.issuer, self.wall()))
            signature = self.hsm.sign(bytes.fromhex(key.cka_id), key.alg, signing_input.encode())
            canary = f"{signing_input}.{b64url_encode(signature)}"
            verify_jws(canary, key.jwk, allowed_algs={key.alg})
            found = gather(consumers, canary=canary, kid=key.kid, jwk=key.jwk,
                           root=self.ws.root, clock=self.wall)
            for item in found:
                self.progress.message(f"step {action.n}: {item.line()}")
            evidence += found
        refused = refusal(evidence, keyset=action.keyset)
        if refused is not None:
            self._append_many([("consumer.probed", e.ledger_data(action.keyset))
                               for e in evidence])
            raise refused
        return evidence

    def _export(self, action: ExportBundle, after: KeysetState,
                changes: list[_Item], seq: int, previous_digest: str | None,
                now: datetime, evidence: Sequence[Evidence] = ()) -> str:
        policy = self.ws.policy.keyset(action.keyset)
        active = after.active_key
        uri = (self.hsm.key_uri(bytes.fromhex(active.cka_id), active.label)
               if active is not None else None)
        result = export_bundle(
            self.ws.exports_dir, self._bundle_signer(), issuer=policy.issuer,
            keyset=action.keyset, keys=jwks_keys(after), seq=seq, prev=previous_digest, now=now,
            lifetime=policy.bundle_lifetime, consumers=policy.consumers,
            active_kid=active.kid if active is not None else None, pkcs11_uri=uri,
            clock_skew_seconds=int(policy.clock_skew.total_seconds()),
        )
        return self._record_export(action, after, changes, seq, result.path, result.sha256,
                                   evidence)

    def _record_export(self, action: ExportBundle, after: KeysetState,
                       changes: list[_Item], seq: int, path: Path,
                       digest: str, evidence: Sequence[Evidence] = ()) -> str:
        kids = [str(j["kid"]) for j in jwks_keys(after)]
        self._append_many([
            self._done(action, keyset=action.keyset, seq=seq, sha256=digest),
            *[("consumer.probed", e.ledger_data(action.keyset)) for e in evidence],
            ("bundle.exported", {"keyset": action.keyset, "seq": seq, "sha256": digest,
                                 "path": os.path.relpath(path, self.ws.root), "kids": kids}),
            *changes,
        ])
        shown = "; ".join(f"{c.verb} {c.key.text}" for c in action.changes)
        return (f"bundle #{seq} of {action.keyset} ({len(kids)} keys) sha256 {digest[:16]}…"
                + (f" — {shown}" if shown else ""))

    def _recover_export_bundle(self, action: ExportBundle, intent: JsonMapping) -> str:
        seq = intent.get("seq")
        evidence_data = intent.get("evidence", [])
        if not isinstance(seq, int) or not isinstance(evidence_data, list) or not all(
                isinstance(e, Mapping) for e in evidence_data):
            raise ExportError(f"step {action.n}: its recorded intent is malformed",
                              "restore the ledger from a verified copy, then "
                              "`ceremony resume --officer NAME …`")
        path = self.ws.exports_dir / action.keyset / str(seq)
        _, previous_digest = self._previous_bundle(action.keyset)
        now = self.clock()
        if not path.exists():
            after, changes = self._after_changes(action, now)
            # Nothing was exported before the crash: the consumers are asked again, now.
            evidence = self._evidence_before_activation(action)
            return self._export(action, after, changes, seq, previous_digest, now, evidence)
        token = (path / "jwks.jwt").read_bytes()
        verified = verify_bundle(token, trust=self._bundle_signer().jwk, now=now)
        # The bundle's own time is when the changes took effect.
        after, changes = self._after_changes(action, verified.issued_at)
        kids = [str(j["kid"]) for j in jwks_keys(after)]
        if (verified.seq != seq or verified.keyset != action.keyset
                or verified.prev != previous_digest
                or sorted(k["kid"] for k in verified.keys) != sorted(kids)):
            raise ExportError(f"{path} does not hold bundle #{seq} of {action.keyset} as planned",
                              "move it aside after review, then `ceremony resume --officer NAME …`")
        self.progress.message(f"step {action.n}: adopting bundle #{seq} written before the "
                              "crash (signature, claims and keys verified)")
        # The evidence that let it be written was kept in the intent.
        evidence = [Evidence.from_ledger(e) for e in evidence_data]
        return self._record_export(action, after, changes, seq, path,
                                   hashlib.sha256(token).hexdigest(), evidence)

    def _export_audit(self, action: ExportAudit) -> str:
        from console.ledger import export_audit_pack

        out = self.ws.exports_dir / "audit" / (
            f"{format_time(self.clock())[:10]}-{self.ws.ledger.size}")
        self._intent(action, path=os.path.relpath(out, self.ws.root))
        path = export_audit_pack(self.ws.ledger, out)
        self._append_many([self._done(action, path=os.path.relpath(path, self.ws.root))])
        return f"audit pack in {path}"

    # --- steps: officers, PIN, configuration, signers --------------------------------------

    def _enroll_officer(self, action: EnrollOfficer) -> str:
        self._append_many([
            self._done(action, officer=action.officer),
            ("officer.enrolled", {"name": action.officer, "ed25519": action.ed25519,
                                  "x25519": action.x25519}),
        ])
        return f"{action.officer} enrolled (in force from this ceremony's checkpoint)"

    def _revoke_officer(self, action: RevokeOfficer) -> str:
        self._append_many([
            self._done(action, officer=action.officer),
            ("officer.revoked", {"name": action.officer,
                                 "reason": f"officer-change {self.record.plan_id}"}),
        ])
        return f"{action.officer} revoked (from this ceremony's checkpoint on)"

    def _resplit_pin(self, action: ResplitPin) -> str:
        """Change the PIN and split it anew; the new sealed file is durable before C_SetPIN,
        so a crash at any point leaves a PIN that some sealed file opens."""
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

        recipients = [(r.officer, X25519PublicKey.from_public_bytes(b64url_decode(r.x25519)))
                      for r in action.recipients]
        fresh = bytearray(new_pin())
        sealed = seal_pin(bytes(fresh), recipients, action.threshold, now=self.clock(),
                          token=self.ws.config.hsm.token_label)
        pending = self.ws.sealed_pin_path.with_suffix(".next")
        _write_durably(pending, sealed)
        info = read_sealed_pin(sealed)
        self._intent(action, sealed_id=info.id, sha256=hashlib.sha256(sealed).hexdigest())
        self.hsm.set_pin(bytes(self.pin), bytes(fresh))
        self._replace_pin(fresh)
        return self._finish_resplit(action, pending, sealed)

    def _replace_pin(self, fresh: bytearray) -> None:
        for i in range(len(self.pin)):
            self.pin[i] = 0
        self.pin[:] = fresh
        for i in range(len(fresh)):
            fresh[i] = 0

    def _finish_resplit(self, action: ResplitPin, pending: Path, sealed: bytes) -> str:
        if pending.exists():
            try:
                os.replace(pending, self.ws.sealed_pin_path)
                _fsync_dir(self.ws.sealed_pin_path.parent)
            except OSError as e:
                raise PlanError(
                    f"cannot move {pending} to {self.ws.sealed_pin_path}: {e.strerror or e}",
                    f"{DISK_HINT}: the token's PIN is already the one {pending.name} seals")\
                    from e
        info = read_sealed_pin(sealed)
        record = {**info.ledger_data(), "sha256": hashlib.sha256(sealed).hexdigest()}
        # The new sealed file is trusted at once: the officers present cosign its record.
        self._append_many([self._done(action, sealed_id=info.id), ("pin.resplit", record)],
                          checkpoint=True)
        return f"PIN changed and split {info.threshold} of {len(info.officers)}"

    def _recover_resplit_pin(self, action: ResplitPin, intent: JsonMapping) -> str:
        pending = self.ws.sealed_pin_path.with_suffix(".next")
        sealed = (pending if pending.exists() else self.ws.sealed_pin_path).read_bytes()
        if hashlib.sha256(sealed).hexdigest() != intent.get("sha256"):
            raise PlanError("the sealed PIN file does not match the interrupted re-split",
                            "restore pin.sealed and pin.next from your backup")
        holders = set(read_sealed_pin(sealed).officers)
        # An officer this plan revokes holds no share of the new file.
        fresh = bytearray(open_pin(sealed, [c for c in self.officers if c.name in holders]))
        if pending.exists():
            # PinIncorrect: the old PIN no longer works, so C_SetPIN happened before the crash.
            with contextlib.suppress(PinIncorrectError):
                self.hsm.set_pin(bytes(self.pin), bytes(fresh))
        self._replace_pin(fresh)
        return self._finish_resplit(action, pending, sealed)

    def _record_config(self, action: RecordConfig) -> str:
        self._append_many([self._done(action, changes=list(action.changes)),
                           ("config.recorded", dict(action.record))])
        return f"configuration recorded ({len(action.changes)} change(s))"

    def _release_signer(self, action: ReleaseSigner) -> str:
        path, digest = release_pin(self.ws.exports_dir, action.signer, action.recipient,
                                   bytes(self.pin))
        self._append_many([
            self._done(action, signer=action.signer, sha256=digest),
            ("signer.released", {"signer": action.signer, "recipient": action.recipient,
                                 "path": os.path.relpath(path, self.ws.root), "sha256": digest}),
        ])
        return f"PIN released to {action.signer}: {os.path.relpath(path, self.ws.root)}"

    def _revoke_signer(self, action: RevokeSigner) -> str:
        remove_release(self.ws.exports_dir, action.signer)
        self._append_many([self._done(action, signer=action.signer),
                           ("signer.revoked", {"signer": action.signer})])
        return f"{action.signer} revoked; its copy of the PIN dies with the PIN change"

    def _note(self, action: Note) -> str:
        self._append_many([self._done(action, text=action.text)])
        return "noted"


def _find(state: KeysetState, ref: KeyRef) -> Key:
    for key in state.keys:
        if (ref.kid is not None and key.kid == ref.kid) or (
                ref.label is not None and key.label == ref.label):
            return key
    raise PlanError(f"no key {ref.text} in keyset {state.name}",
                    "the ledger and the plan disagree: run `ceremony reconcile`")


STEPS: Mapping[type[Action], Step[Any]] = {
    step.kind: step for step in (
        Step(Reconcile, CeremonyRun._reconcile),
        Step(Generate, CeremonyRun._generate, CeremonyRun._recover_generate),
        Step(SelfTest, CeremonyRun._self_test),
        Step(PublishBundleKey, CeremonyRun._publish_bundle_key),
        Step(ExportBundle, CeremonyRun._export_bundle, CeremonyRun._recover_export_bundle),
        Step(Destroy, CeremonyRun._destroy, CeremonyRun._recover_destroy),
        Step(DestroyOrphan, CeremonyRun._destroy_orphan, CeremonyRun._recover_destroy_orphan),
        Step(ExportAudit, CeremonyRun._export_audit),
        Step(Checkpoint, CeremonyRun._checkpoint),
        Step(Note, CeremonyRun._note),
        Step(EnrollOfficer, CeremonyRun._enroll_officer),
        Step(RevokeOfficer, CeremonyRun._revoke_officer),
        Step(ResplitPin, CeremonyRun._resplit_pin, CeremonyRun._recover_resplit_pin),
        Step(RecordConfig, CeremonyRun._record_config),
        Step(ReleaseSigner, CeremonyRun._release_signer),
        Step(RevokeSigner, CeremonyRun._revoke_signer),
    )
}
"""How each action kind runs: the engine's one dispatch table."""


@dataclass(frozen=True)
class HsmBundleSigner:
    """The bundle-signing key on the HSM, as `exports` wants a signer."""

    hsm: Hsm
    alg: str
    kid: str
    jwk: dict[str, Any]
    cka_id: bytes

    def sign(self, data: bytes) -> bytes:
        return self.hsm.sign(self.cka_id, self.alg, data)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the new sealed PIN is whole on disk before C_SetPIN
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise PlanError(f"cannot write {path}: {e.strerror or e}",
                        f"{DISK_HINT}; the PIN was not changed") from e


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # a rename is durable only once its directory is
    finally:
        os.close(fd)


__all__ = ["BUNDLE_SIGNING_KEY_FILE", "STEPS", "CeremonyRun", "HsmBundleSigner", "Step"]

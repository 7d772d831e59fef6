"""Executing an approved plan, step by step, with a durable journal in the ledger.

Every step that touches the HSM or the files writes `ceremony.step.intent` first (with the
planned CKA_LABEL and CKA_ID) and `ceremony.step.done` after, in the same transaction as the
entries that record its effect (`key.generated`, `key.state_changed`, `bundle.exported`). Steps
that only change the ledger write their result and effect in one transaction. After a crash the
journal says exactly which step was in flight; `recover_*` methods finish or redo it, never
adopting an HSM object that does not match the intent or fails its audit.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from console.ceremony.journal import STATE_ENTRY_TYPES, EntryLike, PlanRecord
from console.ceremony.planner import BUNDLE_KEYSET, jwks_keys, pin_threshold
from console.ceremony.progress import ProgressSink, StepEvent
from console.ceremony.reconcile import reconcile
from console.clock import format_time
from console.errors import (
    ConsoleError,
    ExportError,
    KeyAuditError,
    PinIncorrectError,
    PlanError,
    ReconcileError,
)
from console.exports import public_jwk
from console.exports.verify_bundle import verify_bundle, verify_jws
from console.exports.writer import export_bundle, write_signing_key
from console.lifecycle import KeysetState, KeyState, check_transition, replay, short_kid
from console.quorum.approvals import OfficerRegistry
from console.quorum.cards import UnlockedCard
from console.quorum.pin_gate import new_pin, read_sealed_pin, seal_pin

BUNDLE_SIGNING_KEY_FILE = "bundle-signing-key.jwk"
CRASH_VARIABLE = "CEREMONY_UNSAFE_CRASH_AT"
"""Rehearsal-only fault injection for crash tests: `<point>:<step>` with point `intent` (intent
recorded, HSM/file work not started), `effect` (work done, result not recorded) or `done`
(result recorded). The process kills itself with SIGKILL there, as a power cut would."""


def _crash_point(rehearsal: bool, point: str, step: int) -> None:
    wanted = os.environ.get(CRASH_VARIABLE)
    if wanted and rehearsal and wanted == f"{point}:{step}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class CeremonyRun:
    """One execution (or resumption) of a plan, with the HSM logged in."""

    ws: Any  # console.workspace.Workspace
    hsm: Any  # console.hsm.Hsm, logged in
    record: PlanRecord
    officers: list[UnlockedCard]
    clock: Callable[[], datetime]
    progress: ProgressSink
    pin: bytes = field(repr=False, default=b"")
    keysets: dict[str, KeysetState] = field(default_factory=dict)
    entries: list[EntryLike] = field(default_factory=list)
    reconciled: bool = False

    # --- running ---------------------------------------------------------------------------

    def run(self) -> None:
        """Run every step not yet done; then close the ceremony.

        Raises:
            ConsoleError: a step failed (recorded as `ceremony.step.failed`); the plan stays
                open for `ceremony resume`.
        """
        self.entries = list(self.ws.ledger.entries_of_type(*STATE_ENTRY_TYPES))
        self.keysets = dict(replay(self.entries).keysets)
        actions = self.record.actions
        total = len(actions)
        for action in actions:
            n = int(action["n"])
            description = str(action.get("description", action["action"]))
            if n in self.record.done:
                self.progress.step(StepEvent(n, total, action["action"], description, "skipped",
                                             "done before"))
                continue
            started = _time.monotonic()
            self.progress.step(StepEvent(n, total, action["action"], description, "started"))
            try:
                detail = self._recover(action) if n in self.record.intents else self._step(action)
            except ConsoleError as error:
                self._append("ceremony.step.failed", {
                    "plan_id": self.record.plan_id, "step": n, "action": action["action"],
                    "error": error.user_message(),
                })
                self.progress.step(StepEvent(n, total, action["action"], description, "failed",
                                             error.user_message(),
                                             _time.monotonic() - started))
                raise
            _crash_point(self.ws.rehearsal, "done", n)
            self.progress.step(StepEvent(n, total, action["action"], description, "done",
                                         detail, _time.monotonic() - started))
        self._complete()

    def _step(self, action: dict[str, Any]) -> str:
        handler = getattr(self, f"_do_{action['action']}")
        detail: str = handler(action)
        return detail

    def _recover(self, action: dict[str, Any]) -> str:
        """The step's intent is in the ledger but not its result: the process died mid-step."""
        recover = getattr(self, f"_recover_{action['action']}", None)
        if recover is None:
            return self._step(action)
        detail: str = recover(action, self.record.intents[int(action["n"])])
        return detail

    def _complete(self) -> None:
        plan = self.record.plan
        items: list[tuple[str, dict[str, Any]]] = [("ceremony.completed", {
            "plan_id": self.record.plan_id, "class": plan["class"],
            "script": plan["script"]["name"], "keysets": plan.get("keysets", []),
        })]
        for ratified in plan.get("ratifies", []):
            items.append(("ceremony.ratified", {"plan_id": self.record.plan_id,
                                                "ratified_plan": ratified}))
        self._append_many(items)
        self.progress.message(f"ceremony {self.record.plan_id} completed")

    # --- ledger helpers --------------------------------------------------------------------

    def _append(self, type: str, data: dict[str, Any]) -> Any:
        return self._append_many([(type, data)])[0]

    def _append_many(self, items: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        now = self.clock()
        written = self.ws.ledger.append_many(
            [(t, d, now, "console", self.record.plan_id) for t, d in items]
        )
        self.entries.extend(written)
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

    def _intent(self, action: dict[str, Any], **extra: Any) -> None:
        self._append("ceremony.step.intent", {
            "plan_id": self.record.plan_id, "step": int(action["n"]),
            "action": action["action"], **extra,
        })
        _crash_point(self.ws.rehearsal, "intent", int(action["n"]))

    def _done(self, action: dict[str, Any], **extra: Any) -> tuple[str, dict[str, Any]]:
        # Called just before the result is written: the step's effect has happened.
        _crash_point(self.ws.rehearsal, "effect", int(action["n"]))
        return ("ceremony.step.done", {"plan_id": self.record.plan_id, "step": int(action["n"]),
                                       "action": action["action"], **extra})

    def _key(self, action: dict[str, Any]) -> Any:
        """The key an action targets: by kid, or by the label of a key this plan generated."""
        state = self.keysets.get(str(action["keyset"]))
        if state is not None:
            for key in state.keys:
                if ("kid" in action and key.kid == action["kid"]) or (
                        "label" in action and key.label == action["label"]):
                    return key
        target = action.get("kid") or action.get("label")
        raise PlanError(f"step {action['n']}: no key {target} in keyset {action['keyset']}",
                        "the ledger and the plan disagree: run `ceremony reconcile`")

    # --- steps -----------------------------------------------------------------------------

    def _do_reconcile(self, action: dict[str, Any]) -> str:
        report = reconcile(self.hsm.inventory(), self.keysets,
                           _plans_of(self.entries), private_visible=True)
        # Orphans this very plan was approved to destroy are expected here.
        resolving = {str(a["cka_id"]) for a in self.record.actions if a.get("orphan")}
        findings = [f for f in report.findings
                    if not (f.kind == "orphan" and f.cka_id in resolving)]
        self._append_many([self._done(action, objects=report.objects,
                                      findings=len(findings))])
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

    def _do_generate(self, action: dict[str, Any]) -> str:
        cka_id = self.hsm.random_id()
        label = str(action["label"])
        self._intent(action, keyset=action["keyset"], label=label, cka_id=cka_id.hex(),
                     alg=action["alg"])
        generated = self.hsm.generate_keypair(
            str(action["alg"]), label=label, rsa_bits=action.get("rsa_bits"), cka_id=cka_id
        )
        return self._record_generated(action, generated.public_key, cka_id, recovered=False)

    def _record_generated(self, action: dict[str, Any], public_key: Any, cka_id: bytes, *,
                          recovered: bool) -> str:
        jwk = public_jwk(public_key, str(action["alg"]))
        kid = jwk["kid"]
        self._append_many([
            self._done(action, kid=kid, label=action["label"], cka_id=cka_id.hex(),
                       recovered=recovered),
            ("key.generated", {
                "keyset": action["keyset"], "kid": kid, "alg": action["alg"],
                "label": action["label"], "cka_id": cka_id.hex(),
                "purpose": action.get("purpose", "token"), "jwk": jwk,
            }),
        ])
        return f"kid {short_kid(kid)} (attributes audited, self-test passed)"

    def _recover_generate(self, action: dict[str, Any], intent: dict[str, Any]) -> str:
        """A generation was in flight: adopt the object only if it matches the intent exactly
        and passes the full attribute audit and a self-test; else remove nothing and redo."""
        cka_id = bytes.fromhex(str(intent["cka_id"]))
        objects = self.hsm.find(cka_id)
        if not objects:
            self.progress.message(f"step {action['n']}: no key was made before the crash; "
                                  "generating again")
            return self._do_generate(action)
        labels = {o.label for o in objects}
        if labels != {intent["label"]}:
            raise ReconcileError(
                f"objects with the planned CKA_ID carry labels {sorted(labels)}, not the "
                f"planned {intent['label']}", "they were not made by this step: investigate "
                "with `ceremony reconcile`")
        audit = self.hsm.audit_key(cka_id, str(action["alg"]))
        if audit.problems():
            raise KeyAuditError(
                f"the key left by the interrupted step fails its audit: {audit.problems()[0]}",
                "it is not used; abort with `ceremony resume --abort` and destroy it after "
                "review",
            )
        public = self.hsm.public_key(cka_id)
        self.progress.message(f"step {action['n']}: adopting the key generated before the "
                              "crash (label and CKA_ID match the intent; audit passed)")
        return self._record_generated(action, public, cka_id, recovered=True)

    def _do_self_test(self, action: dict[str, Any]) -> str:
        key = self._key(action)
        header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
        payload = {"self_test": secrets.token_hex(16)}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64url(json.dumps(payload, separators=(",", ":")).encode()))
        signature = self.hsm.sign(bytes.fromhex(key.cka_id), key.alg, signing_input.encode())
        token = signing_input + "." + _b64url(signature)
        verify_jws(token, key.jwk, allowed_algs={key.alg})
        self._append_many([self._done(action, kid=key.kid, result="signature verified")])
        return f"a JWS signed in the HSM by {short_kid(key.kid)} verifies"

    def _transition(self, action: dict[str, Any], to: KeyState, **extra: Any) -> str:
        key = self._key(action)
        state = self.keysets[str(action["keyset"])]
        partner = action.get("paired_with")
        if to is KeyState.ACTIVE and partner is not None:
            active = state.active_key
            partner = partner if active is not None and active.kid == partner else None
        check_transition(state, key.kid, to, self._policy(action), self.clock(),
                         paired_with=partner, emergency=bool(action.get("waived")))
        self._append_many([
            self._done(action, kid=key.kid, **extra),
            ("key.state_changed", {"keyset": action["keyset"], "kid": key.kid,
                                   "from": key.state.value, "to": to.value,
                                   "reason": str(action.get("why", action["action"]))}),
        ])
        return f"{short_kid(key.kid)}: {key.state.value} → {to.value}"

    def _policy(self, action: dict[str, Any]) -> Any:
        if action["keyset"] == BUNDLE_KEYSET:
            return self.ws.policy.keysets[0] if self.ws.policy.keysets else None
        return self.ws.policy.keyset(str(action["keyset"]))

    def _do_publish(self, action: dict[str, Any]) -> str:
        return self._transition(action, KeyState.PUBLISHED)

    def _do_activate(self, action: dict[str, Any]) -> str:
        detail = self._transition(action, KeyState.ACTIVE)
        if action["keyset"] == BUNDLE_KEYSET:
            self._write_bundle_signing_key(self._key(action))
        return detail

    def _do_retire(self, action: dict[str, Any]) -> str:
        return self._transition(action, KeyState.RETIRED)

    def _do_unpublish(self, action: dict[str, Any]) -> str:
        return self._transition(action, KeyState.ARCHIVED)

    def _do_suspend(self, action: dict[str, Any]) -> str:
        return self._transition(action, KeyState.SUSPENDED)

    def _do_compromise(self, action: dict[str, Any]) -> str:
        return self._transition(action, KeyState.COMPROMISED)

    def _do_destroy(self, action: dict[str, Any]) -> str:
        if action.get("orphan"):
            return self._destroy_orphan(action)
        key = self._key(action)
        check_transition(self.keysets[str(action["keyset"])], key.kid, KeyState.DESTROYED,
                         self._policy(action), self.clock())
        self._intent(action, keyset=action["keyset"], kid=key.kid, label=key.label,
                     cka_id=key.cka_id)
        self.hsm.destroy_keypair(bytes.fromhex(key.cka_id))
        return self._record_destroyed(action, key)

    def _record_destroyed(self, action: dict[str, Any], key: Any) -> str:
        self._append_many([
            self._done(action, kid=key.kid),
            ("key.state_changed", {"keyset": action["keyset"], "kid": key.kid,
                                   "from": key.state.value, "to": "destroyed",
                                   "reason": str(action.get("why", "destruction"))}),
        ])
        return f"private key of {short_kid(key.kid)} destroyed; public key stays in the ledger"

    def _destroy_orphan(self, action: dict[str, Any]) -> str:
        cka_id = bytes.fromhex(str(action["cka_id"]))
        objects = self.hsm.find(cka_id)
        labels = {o.label for o in objects}
        if objects and labels != {action["label"]}:
            raise ReconcileError(
                f"objects with CKA_ID {action['cka_id'][:12]}… carry labels {sorted(labels)}, "
                f"not the recorded {action['label']}", "they are not the orphan: investigate")
        self._intent(action, cka_id=action["cka_id"], label=action["label"], orphan=True)
        if objects:
            self.hsm.destroy_keypair(cka_id)
        outcome = "destroyed" if objects else "absent"
        self._append_many([
            self._done(action, cka_id=action["cka_id"], orphan=True, outcome=outcome),
            ("reconcile.finding", {"kind": "orphan", "cka_id": action["cka_id"],
                                   "label": action["label"], "resolution": outcome}),
        ])
        return f"orphan {action['label']}: {outcome}"

    def _recover_destroy(self, action: dict[str, Any], intent: dict[str, Any]) -> str:
        if action.get("orphan"):
            objects = self.hsm.find(bytes.fromhex(str(action["cka_id"])))
            if objects:
                self.hsm.destroy_keypair(bytes.fromhex(str(action["cka_id"])))
            self._append_many([
                self._done(action, cka_id=action["cka_id"], orphan=True, outcome="destroyed"),
                ("reconcile.finding", {"kind": "orphan", "cka_id": action["cka_id"],
                                       "label": action["label"], "resolution": "destroyed"}),
            ])
            return f"orphan {action['label']}: destroyed"
        key = self._key(action)
        if self.hsm.find(bytes.fromhex(key.cka_id)):
            self.hsm.destroy_keypair(bytes.fromhex(key.cka_id))
        return self._record_destroyed(action, key)

    # --- exports ---------------------------------------------------------------------------

    def _bundle_signer(self) -> HsmBundleSigner:
        state = self.keysets.get(BUNDLE_KEYSET)
        key = state.active_key if state is not None else None
        if key is None:
            for candidate in (state.keys if state is not None else ()):
                if candidate.state is KeyState.ACTIVE:
                    key = candidate
        if key is None:
            raise ExportError("there is no active bundle-signing key", "run genesis first")
        return HsmBundleSigner(self.hsm, key.alg, key.kid, dict(key.jwk),
                               bytes.fromhex(key.cka_id))

    def _write_bundle_signing_key(self, key: Any) -> None:
        path = self.ws.exports_dir / BUNDLE_SIGNING_KEY_FILE
        if path.exists():
            current = json.loads(path.read_text(encoding="utf-8"))
            if current.get("kid") == key.kid:
                return
            path.rename(path.with_name(f"bundle-signing-key.{current.get('kid')}.jwk"))
        write_signing_key(path, dict(key.jwk))

    def _previous_bundle(self, keyset: str) -> tuple[int, str | None]:
        seq, digest = 0, None
        for entry in self.entries:
            if entry.type == "bundle.exported" and entry.data.get("keyset") == keyset:
                seq, digest = int(entry.data["seq"]), str(entry.data["sha256"])
        return seq, digest

    def _do_export_bundle(self, action: dict[str, Any]) -> str:
        keyset = str(action["keyset"])
        if not self.reconciled:
            # Once per ceremony: every HSM change after it is journaled by this run.
            report = reconcile(self.hsm.inventory(), self.keysets, _plans_of(self.entries),
                               private_visible=True)
            if not report.clean:
                raise ReconcileError("exports are blocked: the HSM and the ledger disagree",
                                     "run `ceremony reconcile` and resolve every finding first")
            self.reconciled = True
        previous_seq, previous_digest = self._previous_bundle(keyset)
        seq = previous_seq + 1
        self._intent(action, keyset=keyset, seq=seq)
        return self._export(action, keyset, seq, previous_digest)

    def _export(self, action: dict[str, Any], keyset: str, seq: int,
                previous_digest: str | None) -> str:
        policy = self.ws.policy.keyset(keyset)
        state = self.keysets[keyset]
        active = state.active_key
        uri = (self.hsm.key_uri(bytes.fromhex(active.cka_id), active.label)
               if active is not None else None)
        now = self.clock()
        result = export_bundle(
            self.ws.exports_dir, self._bundle_signer(), issuer=policy.issuer, keyset=keyset,
            keys=jwks_keys(state), seq=seq, prev=previous_digest, now=now,
            lifetime=policy.bundle_lifetime, consumers=[c.type for c in policy.consumers],
            active_kid=active.kid if active is not None else None, pkcs11_uri=uri,
            clock_skew_seconds=int(policy.clock_skew.total_seconds()),
        )
        return self._record_export(action, keyset, seq, result.path, result.sha256)

    def _record_export(self, action: dict[str, Any], keyset: str, seq: int, path: Path,
                       digest: str) -> str:
        state = self.keysets[keyset]
        kids = [str(j["kid"]) for j in jwks_keys(state)]
        relative = os.path.relpath(path, self.ws.root)
        self._append_many([
            self._done(action, keyset=keyset, seq=seq, sha256=digest),
            ("bundle.exported", {"keyset": keyset, "seq": seq, "sha256": digest,
                                 "path": relative, "kids": kids}),
        ])
        return f"bundle #{seq} of {keyset} ({len(kids)} keys) sha256 {digest[:16]}…"

    def _recover_export_bundle(self, action: dict[str, Any], intent: dict[str, Any]) -> str:
        keyset, seq = str(intent["keyset"]), int(intent["seq"])
        path = self.ws.exports_dir / keyset / str(seq)
        _, previous_digest = self._previous_bundle(keyset)
        if not path.exists():
            return self._export(action, keyset, seq, previous_digest)
        token = (path / "jwks.jwt").read_bytes()
        signer = self._bundle_signer()
        verified = verify_bundle(token, trust=signer.jwk, now=self.clock())
        if verified.seq != seq or verified.keyset != keyset or verified.prev != previous_digest:
            raise ExportError(f"{path} does not hold bundle #{seq} of {keyset}",
                              "move it aside after review, then `ceremony resume`")
        self.progress.message(f"step {action['n']}: adopting bundle #{seq} written before the "
                              "crash (signature and claims verified)")
        return self._record_export(action, keyset, seq, path,
                                   hashlib.sha256(token).hexdigest())

    def _do_export_audit(self, action: dict[str, Any]) -> str:
        from console.ledger import export_audit_pack

        out = self.ws.exports_dir / "audit" / (
            f"{format_time(self.clock())[:10]}-{self.ws.ledger.size}")
        self._intent(action, path=os.path.relpath(out, self.ws.root))
        path = export_audit_pack(self.ws.ledger, out)
        self._append_many([self._done(action, path=os.path.relpath(path, self.ws.root))])
        return f"audit pack in {path}"

    # --- checkpoint, officers, PIN ---------------------------------------------------------

    def _do_checkpoint(self, action: dict[str, Any]) -> str:
        from console.ledger import checkpoint_body, cosign_note, sign_note

        approvers = {str(a["officer"]) for a in self.record.approvals}
        signers = [c for c in self.officers if c.name in approvers]
        if not signers:
            raise PlanError("no approving officer is present to cosign the checkpoint",
                            "resume with officers who approved the plan")
        ledger = self.ws.ledger
        body = checkpoint_body(self.ws.config.origin, ledger.size, ledger.root())
        note = sign_note(body, signers[0].name, signers[0].ed25519_private)
        for card in signers[1:]:
            note = cosign_note(note, card.name, card.ed25519_private)
        entry = ledger.record_checkpoint(note, time=self.clock(), actor="console")
        self.entries.append(entry)
        self._append_many([self._done(action, size=int(entry.data["size"]),
                                      signers=[c.name for c in signers])])
        return (f"checkpoint at size {entry.data['size']} cosigned by "
                f"{', '.join(c.name for c in signers)}")

    def _do_enroll_officer(self, action: dict[str, Any]) -> str:
        self._append_many([
            self._done(action, officer=action["officer"]),
            ("officer.enrolled", {"name": action["officer"], "ed25519": action["ed25519"],
                                  "x25519": action["x25519"]}),
        ])
        return f"{action['officer']} enrolled"

    def _do_revoke_officer(self, action: dict[str, Any]) -> str:
        self._append_many([
            self._done(action, officer=action["officer"]),
            ("officer.revoked", {"name": action["officer"],
                                 "reason": f"officer-change {self.record.plan_id}"}),
        ])
        return f"{action['officer']} revoked"

    def _do_resplit_pin(self, action: dict[str, Any]) -> str:
        """Change the PIN and split it anew; the new sealed file is durable before C_SetPIN,
        so a crash at any point leaves a PIN that some sealed file opens."""
        registry = OfficerRegistry.from_entries(
            e for e in self.entries if e.type.startswith("officer."))
        names = [str(n) for n in action["officers"]]
        recipients = [
            (n, X25519PublicKey.from_public_bytes(registry.require_active(n).x25519_public))
            for n in names
        ]
        threshold = pin_threshold(self.ws.config, len(recipients))
        fresh = new_pin()
        sealed = seal_pin(fresh, recipients, threshold, now=self.clock(),
                          token=self.ws.config.hsm.token_label)
        pending = self.ws.sealed_pin_path.with_suffix(".next")
        _write_durably(pending, sealed)
        info = read_sealed_pin(sealed)
        self._intent(action, sealed_id=info.id)
        self.hsm.set_pin(self.pin, fresh)
        return self._finish_resplit(action, pending, sealed)

    def _finish_resplit(self, action: dict[str, Any], pending: Path, sealed: bytes) -> str:
        os.replace(pending, self.ws.sealed_pin_path)
        _fsync_dir(self.ws.sealed_pin_path.parent)
        info = read_sealed_pin(sealed)
        self._append_many([self._done(action, sealed_id=info.id),
                           ("pin.resplit", info.ledger_data())])
        return f"PIN changed and split {info.threshold} of {len(info.officers)}"

    def _recover_resplit_pin(self, action: dict[str, Any], intent: dict[str, Any]) -> str:
        pending = self.ws.sealed_pin_path.with_suffix(".next")
        if not pending.exists():
            # The rename happened; only the ledger record is missing.
            sealed = self.ws.sealed_pin_path.read_bytes()
            if read_sealed_pin(sealed).id != intent["sealed_id"]:
                raise PlanError("the sealed PIN file does not match the interrupted re-split",
                                "restore pin.sealed from your backup")
            info = read_sealed_pin(sealed)
            self._append_many([self._done(action, sealed_id=info.id),
                               ("pin.resplit", info.ledger_data())])
            return "re-split completed before the crash; recorded"
        sealed = pending.read_bytes()
        from console.quorum.pin_gate import open_pin

        try:
            fresh = open_pin(sealed, self.officers)
        except ConsoleError:
            fresh = b""
        # PinIncorrect: the old PIN no longer works, so C_SetPIN happened before the crash.
        with contextlib.suppress(PinIncorrectError):
            self.hsm.set_pin(self.pin, fresh)
        return self._finish_resplit(action, pending, sealed)

    def _do_note(self, action: dict[str, Any]) -> str:
        self._append_many([self._done(action, text=str(action.get("text", "")))])
        return "noted"


@dataclass(frozen=True)
class HsmBundleSigner:
    """The bundle-signing key on the HSM, as `exports` wants a signer."""

    hsm: Any
    alg: str
    kid: str
    jwk: dict[str, Any]
    cka_id: bytes

    def sign(self, data: bytes) -> bytes:
        signature: bytes = self.hsm.sign(self.cka_id, self.alg, data)
        return signature


def _plans_of(entries: list[EntryLike]) -> dict[str, PlanRecord]:
    from console.ceremony.journal import replay_plans

    return replay_plans(entries)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["BUNDLE_SIGNING_KEY_FILE", "CeremonyRun", "HsmBundleSigner"]

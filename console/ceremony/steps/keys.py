"""Key steps: reconciling the token with the ledger, generating a key pair (and finishing one a
crash interrupted), the self-test, and destroying keys and orphans.

Each step that changes the token records its intent (the planned CKA_LABEL and CKA_ID) before
the HSM call and its result, with the entries recording its effect, in one transaction after
(see `console.ceremony.engine`). Recovery adopts only what matches the intent and passes the
full attribute audit.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

from console.b64 import encode as b64url_encode
from console.ceremony.actions import (
    Destroy,
    DestroyOrphan,
    Generate,
    KeyRef,
    Reconcile,
    SelfTest,
)
from console.ceremony.reconcile import Reconciliation, token_kids
from console.ceremony.reconcile import reconcile as reconcile_token
from console.errors import KeyAuditError, ReconcileError
from console.exports.jwks import public_jwk
from console.exports.verify_bundle import verify_jws
from console.jsontypes import JsonMapping
from console.lifecycle import Key, KeyState, check_transition, short_kid

if TYPE_CHECKING:
    from console.ceremony.engine import CeremonyRun, Item


def reconciliation(run: CeremonyRun) -> Reconciliation:
    inventory = run.hsm.inventory()
    return reconcile_token(inventory, run.keysets, run.state.plans(),
                           private_visible=True,
                           token_kids=token_kids(run.hsm, inventory, run.keysets))


def reconcile(run: CeremonyRun, action: Reconcile) -> str:
    report = reconciliation(run)
    # Orphans this very plan was approved to destroy are expected here.
    resolving = {a.cka_id for a in run.record.actions if isinstance(a, DestroyOrphan)}
    findings = [f for f in report.findings
                if not (f.kind == "orphan" and f.cka_id in resolving)]
    done = [run.done(action, objects=report.objects, findings=len(findings))]
    run.reconciled = not findings
    if not findings:
        # A clean comparison changed nothing: its record joins the next step's first write.
        run.hold(done)
    else:
        run.append_many(done)
        first = findings[0]
        raise ReconcileError(
            f"the HSM and the ledger disagree ({first.describe()}"
            f"{' and more' if len(findings) > 1 else ''})",
            "run `ceremony reconcile` for the full report; nothing was changed",
        )
    expected = f"; {len(resolving)} orphan(s) to destroy" if resolving else ""
    return f"{report.objects} objects, all known{expected}"


def generate(run: CeremonyRun, action: Generate) -> str:
    # The intent is this step's first write and nothing is read before it: the previous
    # step's held result joins its transaction (`CeremonyRun.finish`).
    cka_id = run.hsm.random_id()
    run.intent(action, keyset=action.keyset, label=action.label, cka_id=cka_id.hex(),
               alg=action.alg)
    generated = run.hsm.generate_keypair(action.alg, label=action.label,
                                         rsa_bits=action.rsa_bits, cka_id=cka_id)
    return _record_generated(run, action, public_jwk(generated.public_key, action.alg),
                             cka_id, recovered=False)


def _record_generated(run: CeremonyRun, action: Generate, jwk: Mapping[str, str], cka_id: bytes, *,
                      recovered: bool) -> str:
    kid = jwk["kid"]
    run.append_many([
        run.done(action, kid=kid, label=action.label, cka_id=cka_id.hex(),
                 recovered=recovered),
        ("key.generated", {
            "keyset": action.keyset, "kid": kid, "alg": action.alg, "label": action.label,
            "cka_id": cka_id.hex(), "purpose": action.purpose, "jwk": dict(jwk),
        }),
    ])
    return f"kid {short_kid(kid)} (attributes audited, self-test passed)"


def recover_generate(run: CeremonyRun, action: Generate, intent: JsonMapping) -> str:
    """A generation was in flight: adopt the pair only if it matches the intent exactly
    and passes the full attribute audit. What the interrupted C_GenerateKeyPair left
    half-made (no key material, or half a pair, under the intent's fresh CKA_ID and label)
    is removed and the key generated again; anything else is left alone and stops."""
    cka_id = bytes.fromhex(str(intent["cka_id"]))
    objects = run.hsm.find(cka_id)
    labels = {o.label for o in objects}
    if objects and (labels != {action.label} or intent.get("label") != action.label):
        raise ReconcileError(
            f"objects with the planned CKA_ID carry labels {sorted(labels)}, not the "
            f"planned {action.label}", "they were not made by this step: investigate "
            "with `ceremony reconcile`")
    removed = run.hsm.remove_unfinished(cka_id, action.label)
    if removed:
        run.progress.message(
            f"step {action.n}: removed {len(removed)} object(s) the interrupted key "
            "generation left unfinished (no key material, never recorded or used)")
        objects = run.hsm.find(cka_id)
    if not objects:
        run.progress.message(f"step {action.n}: no key was made before the crash; "
                             "generating again")
        return generate(run, action)
    audit = run.hsm.audit_key(cka_id, action.alg)
    if audit.problems():
        raise KeyAuditError(
            f"the key left by the interrupted step fails its audit: {audit.problems()[0]}",
            "it is not used; abort with `ceremony resume --abort --officer NAME` and "
            "destroy it after review",
        )
    jwk = public_jwk(run.hsm.public_key(cka_id), action.alg)
    run.progress.message(f"step {action.n}: adopting the key generated before the "
                         "crash (label and CKA_ID match the intent; audit passed)")
    return _record_generated(run, action, jwk, cka_id, recovered=True)


def self_test(run: CeremonyRun, action: SelfTest) -> str:
    key = run.key(action.keyset, KeyRef(label=action.label))
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    payload = {"self_test": secrets.token_hex(16)}
    signing_input = (b64url_encode(json.dumps(header, separators=(",", ":")).encode())
                     + "." +
                     b64url_encode(json.dumps(payload, separators=(",", ":")).encode()))
    signature = run.hsm.sign(bytes.fromhex(key.cka_id), key.alg, signing_input.encode())
    verify_jws(signing_input + "." + b64url_encode(signature), key.jwk,
               allowed_algs={key.alg})
    # The signature changed nothing: its verdict joins the next step's first write.
    run.hold([run.done(action, kid=key.kid, result="signature verified")])
    return f"a JWS signed in the HSM by {short_kid(key.kid)} verifies"


def change_entry(keyset: str, key: Key, to: KeyState, why: str) -> Item:
    return ("key.state_changed", {"keyset": keyset, "kid": key.kid, "from": key.state.value,
                                  "to": to.value, "reason": why})


def destroy(run: CeremonyRun, action: Destroy) -> str:
    key = run.key(action.keyset, KeyRef(kid=action.kid))
    check_transition(run.keysets[action.keyset], key.kid, KeyState.DESTROYED,
                     run.policy(action.keyset), run.clock())
    run.intent(action, keyset=action.keyset, kid=key.kid, label=key.label,
               cka_id=key.cka_id)
    run.hsm.destroy_keypair(bytes.fromhex(key.cka_id))
    return _record_destroyed(run, action, key)


def _record_destroyed(run: CeremonyRun, action: Destroy, key: Key) -> str:
    run.append_many([
        run.done(action, kid=key.kid),
        change_entry(action.keyset, key, KeyState.DESTROYED, action.why),
    ])
    return f"private key of {short_kid(key.kid)} destroyed; public key stays in the ledger"


def recover_destroy(run: CeremonyRun, action: Destroy, intent: JsonMapping) -> str:
    key = run.key(action.keyset, KeyRef(kid=action.kid))
    if run.hsm.find(bytes.fromhex(key.cka_id)):
        run.hsm.destroy_keypair(bytes.fromhex(key.cka_id))
    return _record_destroyed(run, action, key)


def destroy_orphan(run: CeremonyRun, action: DestroyOrphan) -> str:
    cka_id = bytes.fromhex(action.cka_id)
    objects = run.hsm.find(cka_id)
    labels = {o.label for o in objects}
    if objects and labels != {action.label}:
        raise ReconcileError(
            f"objects with CKA_ID {action.cka_id[:12]}… carry labels {sorted(labels)}, "
            f"not the recorded {action.label}", "they are not the orphan: investigate")
    run.intent(action, cka_id=action.cka_id, label=action.label, orphan=True)
    if objects:
        run.hsm.destroy_keypair(cka_id)
    return _record_orphan(run, action, "destroyed" if objects else "absent")


def _record_orphan(run: CeremonyRun, action: DestroyOrphan, outcome: str) -> str:
    run.append_many([
        run.done(action, cka_id=action.cka_id, orphan=True, outcome=outcome),
        ("reconcile.finding", {"kind": "orphan", "cka_id": action.cka_id,
                               "label": action.label, "resolution": outcome}),
    ])
    return f"orphan {action.label}: {outcome}"


def recover_destroy_orphan(run: CeremonyRun, action: DestroyOrphan, intent: JsonMapping) -> str:
    cka_id = bytes.fromhex(action.cka_id)
    if run.hsm.find(cka_id):
        run.hsm.destroy_keypair(cka_id)
    return _record_orphan(run, action, "destroyed")

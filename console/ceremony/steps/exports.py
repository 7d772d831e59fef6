"""Export steps: the bundle-signing key, JWKS bundles with the key changes they show and the
evidence asked of consumers before an activation, and audit packs.

Publication is a fact: an `ExportBundle` step applies its key changes (publish, activate,
retire, unpublish, …) in the transaction that records the bundle showing them, so the ledger
never says a key is published before a signed bundle carries it, nor active before an exported
`signer.json` names it. A failed export leaves every key as it was.

Evidence before activation: before a bundle step activates a key (an `activate` change not
waived), the next key signs a canary token on the HSM and every consumer in the step's `probes`
is asked (`console.ceremony.probes`); one refusal fails the step before its intent, so nothing is
exported. The answers are recorded as `consumer.probed` entries: with the bundle when all
accepted, just before the failure otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from console.b64 import encode as b64url_encode
from console.ceremony.actions import ExportAudit, ExportBundle, KeyRef, PublishBundleKey
from console.ceremony.planner import BUNDLE_KEYSET, BUNDLE_SIGNING_KEY_FILE, jwks_keys
from console.ceremony.probes import Evidence, canary_claims, gather, refusal
from console.ceremony.steps import keys
from console.clock import format_time
from console.errors import DISK_HINT, ExportError, PlanError, ReconcileError, VerificationError
from console.exports._keys import string_members
from console.exports.jwks import sanitize_public_jwk
from console.exports.qr import qr_svg
from console.exports.verify_bundle import verify_bundle, verify_jws
from console.exports.writer import export_bundle as write_export
from console.exports.writer import write_signing_key
from console.jsontypes import JsonMapping
from console.lifecycle import Key, KeysetState, KeyState, check_transition, short_kid
from console.signing import jws_signing_input

if TYPE_CHECKING:
    from console.ceremony.engine import CeremonyRun, Item
    from console.hsm import Hsm


_VERB_TARGET: Mapping[str, KeyState] = {
    "publish": KeyState.PUBLISHED, "activate": KeyState.ACTIVE, "retire": KeyState.RETIRED,
    "unpublish": KeyState.ARCHIVED, "suspend": KeyState.SUSPENDED, "resume": KeyState.ACTIVE,
    "compromise": KeyState.COMPROMISED, "withdraw": KeyState.ARCHIVED,
}



def publish_bundle_key(run: CeremonyRun, action: PublishBundleKey) -> str:
    key = run.key(BUNDLE_KEYSET, KeyRef(label=action.label))
    _write_bundle_signing_key(run, action, key)
    now = run.clock()
    state = run.keysets[BUNDLE_KEYSET]
    published = state.moved(key.kid, KeyState.PUBLISHED, now)
    run.append_many([
        run.done(action, kid=key.kid),
        keys.change_entry(BUNDLE_KEYSET, key, KeyState.PUBLISHED, "the pinned bundle key"),
        keys.change_entry(BUNDLE_KEYSET, published.key(key.kid), KeyState.ACTIVE,
                          "signs every JWKS bundle from now on"),
    ])
    return f"bundle-signing key {short_kid(key.kid)} written to exports/" \
           f"{BUNDLE_SIGNING_KEY_FILE}"


def _bundle_signer(run: CeremonyRun) -> HsmBundleSigner:
    state = run.keysets.get(BUNDLE_KEYSET)
    key = state.active_key if state is not None else None
    if key is None and state is not None:
        key = next((k for k in state.keys if k.state is KeyState.ACTIVE), None)
    if key is None:
        raise ExportError("there is no active bundle-signing key", "run genesis first")
    return HsmBundleSigner(run.hsm, key.alg, key.kid, string_members(key.jwk),
                           bytes.fromhex(key.cka_id))


def _write_bundle_signing_key(run: CeremonyRun, action: PublishBundleKey, key: Key) -> None:
    """Make `exports/bundle-signing-key.jwk` the key the ledger records. A file already there is
    kept only if it is exactly that key; an earlier bundle key the ledger records is moved aside
    under its kid; anything else (altered, foreign, unreadable, a link) is moved aside as
    `…unrecognised-<random>.jwk` and said: operators pin what this file holds."""
    path = run.ws.exports_dir / BUNDLE_SIGNING_KEY_FILE
    if not os.path.lexists(path):
        write_signing_key(path, dict(key.jwk))
        return
    current = _json_file(path)
    if current == sanitize_public_jwk(key.jwk):
        return
    recorded = run.keysets.get(BUNDLE_KEYSET)
    known = next((k.kid for k in (recorded.keys if recorded is not None else ())
                  if current == sanitize_public_jwk(k.jwk)), None)
    name = f"bundle-signing-key.{known}.jwk"  # where an earlier key has always gone
    if known is None or os.path.lexists(path.with_name(name)):
        name = f"bundle-signing-key.{known or 'unrecognised'}-{secrets.token_hex(4)}.jwk"
    try:
        os.rename(path, path.with_name(name))
    except OSError as e:
        raise ExportError(f"cannot move {path} aside: {e.strerror or e}", DISK_HINT) from e
    if known is None:
        run.progress.message(f"step {action.n}: exports/{BUNDLE_SIGNING_KEY_FILE} was not a "
                             f"bundle-signing key the ledger records; moved aside as {name}")
    write_signing_key(path, dict(key.jwk))


def _json_file(path: Path) -> object:
    """A regular file's JSON, or None (missing, a link, unreadable, not JSON)."""
    from console.files import read_regular_file

    try:
        return json.loads(read_regular_file(path))
    except (VerificationError, ValueError):
        return None


def _after_changes(run: CeremonyRun, action: ExportBundle, now: datetime) -> tuple[
        KeysetState, list[Item]]:
    """The keyset as the bundle will show it, and the entries recording each change.

    Raises:
        TransitionRefusedError: a change breaks a timing rule now (naming the rule and the
            earliest permitted time): nothing is exported.
    """
    state = run.keysets.get(action.keyset, KeysetState(action.keyset))
    policy = run.policy(action.keyset)
    entries: list[Item] = []
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


def export_bundle(run: CeremonyRun, action: ExportBundle) -> str:
    if not run.reconciled:
        # Once per ceremony: every HSM change after it is journaled by this run.
        report = keys.reconciliation(run)
        if not report.clean:
            raise ReconcileError("exports are blocked: the HSM and the ledger disagree",
                                 "run `ceremony reconcile` and resolve every finding first")
        run.reconciled = True
    now = run.clock()
    after, changes = _after_changes(run, action, now)
    evidence = _evidence_before_activation(run, action)
    chain = run.state.bundle_chain(action.keyset)
    seq, previous_digest = chain.seq + 1, chain.digest
    kids = [str(j["kid"]) for j in jwks_keys(after)]
    active = after.active_key
    extra = {"evidence": [e.ledger_data(action.keyset) for e in evidence]} if evidence else {}
    run.intent(action, keyset=action.keyset, seq=seq, kids=kids,
               signer=active.kid if active is not None else None, **extra)
    return _export(run, action, after, changes, seq, previous_digest, now, evidence)


def _evidence_before_activation(run: CeremonyRun, action: ExportBundle) -> list[Evidence]:
    """Ask the step's consumers about each key it activates (not waived), with a canary
    signed by that key; record and refuse when one does not accept.

    Raises:
        TransitionRefusedError: rule "consumer-evidence", naming each consumer and answer.
    """
    activations = [c for c in action.changes if c.verb == "activate" and c.waived is None]
    if not activations or not action.probes:
        return []
    policy = run.ws.policy.keyset(action.keyset)
    consumers = []
    for name in action.probes:
        consumer = next((c for c in policy.consumers if c.name == name), None)
        if consumer is None:  # pragma: no cover - the plan's policy digest rules it out
            raise PlanError(f"consumer {name} is not in keyset {action.keyset}'s policy",
                            "make a new plan")
        consumers.append(consumer)
    state = run.keysets[action.keyset]
    evidence: list[Evidence] = []
    for change in activations:
        key = _find(state, change.key)
        header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
        signing_input = jws_signing_input(header, canary_claims(policy.issuer, run.wall()))
        signature = run.hsm.sign(bytes.fromhex(key.cka_id), key.alg, signing_input.encode())
        canary = f"{signing_input}.{b64url_encode(signature)}"
        verify_jws(canary, key.jwk, allowed_algs={key.alg})
        found = gather(consumers, canary=canary, kid=key.kid, jwk=key.jwk,
                       root=run.ws.root, clock=run.wall)
        for item in found:
            run.progress.message(f"step {action.n}: {item.line()}")
        evidence += found
    refused = refusal(evidence, keyset=action.keyset)
    if refused is not None:
        run.append_many([("consumer.probed", e.ledger_data(action.keyset))
                         for e in evidence])
        raise refused
    return evidence


def _export(run: CeremonyRun, action: ExportBundle, after: KeysetState,
            changes: list[Item], seq: int, previous_digest: str | None,
            now: datetime, evidence: Sequence[Evidence] = ()) -> str:
    policy = run.ws.policy.keyset(action.keyset)
    active = after.active_key
    uri = (run.hsm.key_uri(bytes.fromhex(active.cka_id), active.label)
           if active is not None else None)
    result = write_export(
        run.ws.exports_dir, _bundle_signer(run), issuer=policy.issuer,
        keyset=action.keyset, keys=jwks_keys(after), seq=seq, prev=previous_digest, now=now,
        lifetime=policy.bundle_lifetime, consumers=policy.consumers,
        active_kid=active.kid if active is not None else None, pkcs11_uri=uri,
        clock_skew_seconds=int(policy.clock_skew.total_seconds()),
        # The transcript shows this bundle's QR code: drawn while the bundle's files are synced.
        while_syncing=qr_svg,
    )
    return _record_export(run, action, after, changes, seq, result.path, result.sha256,
                          evidence)


def _record_export(run: CeremonyRun, action: ExportBundle, after: KeysetState,
                   changes: list[Item], seq: int, path: Path,
                   digest: str, evidence: Sequence[Evidence] = ()) -> str:
    kids = [str(j["kid"]) for j in jwks_keys(after)]
    run.finish(action.keyset, [
        run.done(action, keyset=action.keyset, seq=seq, sha256=digest),
        *[("consumer.probed", e.ledger_data(action.keyset)) for e in evidence],
        ("bundle.exported", {"keyset": action.keyset, "seq": seq, "sha256": digest,
                             "path": os.path.relpath(path, run.ws.root), "kids": kids}),
        *changes,
    ])
    shown = "; ".join(f"{c.verb} {c.key.text}" for c in action.changes)
    return (f"bundle #{seq} of {action.keyset} ({len(kids)} keys) sha256 {digest[:16]}…"
            + (f" — {shown}" if shown else ""))


def recover_export_bundle(run: CeremonyRun, action: ExportBundle, intent: JsonMapping) -> str:
    seq = intent.get("seq")
    evidence_data = intent.get("evidence", [])
    if not isinstance(seq, int) or not isinstance(evidence_data, list) or not all(
            isinstance(e, Mapping) for e in evidence_data):
        raise ExportError(f"step {action.n}: its recorded intent is malformed",
                          "restore the ledger from a verified copy, then "
                          "`ceremony resume --officer NAME …`")
    path = run.ws.exports_dir / action.keyset / str(seq)
    previous_digest = run.state.bundle_chain(action.keyset).digest
    now = run.clock()
    if not path.exists():
        after, changes = _after_changes(run, action, now)
        # Nothing was exported before the crash: the consumers are asked again, now.
        evidence = _evidence_before_activation(run, action)
        return _export(run, action, after, changes, seq, previous_digest, now, evidence)
    token = (path / "jwks.jwt").read_bytes()
    verified = verify_bundle(token, trust=_bundle_signer(run).jwk, now=now)
    # The bundle's own time is when the changes took effect.
    after, changes = _after_changes(run, action, verified.issued_at)
    kids = [str(j["kid"]) for j in jwks_keys(after)]
    if (verified.seq != seq or verified.keyset != action.keyset
        or verified.prev != previous_digest
        or sorted(k["kid"] for k in verified.keys) != sorted(kids)):
        raise ExportError(f"{path} does not hold bundle #{seq} of {action.keyset} as planned",
                          "move it aside after review, then `ceremony resume --officer NAME …`")
    run.progress.message(f"step {action.n}: adopting bundle #{seq} written before the "
                         "crash (signature, claims and keys verified)")
    # The evidence that let it be written was kept in the intent.
    evidence = [Evidence.from_ledger(e) for e in evidence_data]
    return _record_export(run, action, after, changes, seq, path,
                          hashlib.sha256(token).hexdigest(), evidence)


def export_audit(run: CeremonyRun, action: ExportAudit) -> str:
    from console.ledger import export_audit_pack

    out = run.ws.exports_dir / "audit" / (
        f"{format_time(run.clock())[:10]}-{run.ws.ledger.size}")
    run.intent(action, path=os.path.relpath(out, run.ws.root))
    path = export_audit_pack(run.ws.ledger, out)
    run.append_many([run.done(action, path=os.path.relpath(path, run.ws.root))])
    return f"audit pack in {path}"


def _find(state: KeysetState, ref: KeyRef) -> Key:
    for key in state.keys:
        if (ref.kid is not None and key.kid == ref.kid) or (
                ref.label is not None and key.label == ref.label):
            return key
    raise PlanError(f"no key {ref.text} in keyset {state.name}",
                    "the ledger and the plan disagree: run `ceremony reconcile`")


@dataclass(frozen=True)
class HsmBundleSigner:
    """The bundle-signing key on the HSM, as `exports` wants a signer."""

    hsm: Hsm
    alg: str
    kid: str
    jwk: Mapping[str, str]
    cka_id: bytes

    def sign(self, data: bytes) -> bytes:
        return self.hsm.sign(self.cka_id, self.alg, data)

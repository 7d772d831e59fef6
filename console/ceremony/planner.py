"""Planning: a script, the ledger's state, the policy and `now` become one typed `Plan`.

The plan is what officers approve: every action with its parameters, the computed times and why
each time is what it is, the inputs that decide the ceremony, and when it expires. Key changes
come from `lifecycle.plan_rotation` / `plan_emergency`, so the timing rules live in one place;
the script decides which kinds of action this ceremony may take. Changes that consumers see are
attached to the keyset's `ExportBundle` action (see `console.ceremony.actions`).

Pure: everything planning reads is gathered by the session into a `PlanningContext`. Which
keysets a plan covers is decided in `console.ceremony.selection`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from console.b64 import encode as b64url_encode
from console.ceremony.actions import (
    Action,
    Change,
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
    Recipient,
    Reconcile,
    RecordConfig,
    ReleaseSigner,
    ResplitPin,
    RevokeOfficer,
    RevokeSigner,
    SelfTest,
)
from console.ceremony.journal import PlanRecord
from console.ceremony.plan import CLASS_RANK as CLASS_RANK
from console.ceremony.plan import PLAN_LIFETIME, Deferred, Plan, PlanInputs, plan_class
from console.ceremony.probes import describe_checks, planned_checks
from console.ceremony.script import Script
from console.ceremony.selection import KEY_STEPS, select_keysets
from console.ceremony.signers import check_signer
from console.clock import format_time
from console.config import Policy, Quorum
from console.errors import PlanError
from console.ledger import OfficerRegistry
from console.lifecycle import (
    PUBLISHED_STATES,
    KeysetState,
    KeyState,
    RotationPlan,
    earliest_destruction,
    plan_emergency,
    plan_rotation,
    short_kid,
)
from console.quorum.cards import OfficerPublicKeys

BUNDLE_KEYSET = "_bundle"
"""The pseudo-keyset of the workspace's bundle-signing key (policy keyset names cannot start
with '_')."""

BUNDLE_ALG = "ES256"
BUNDLE_SIGNING_KEY_FILE = "bundle-signing-key.jwk"
"""The bundle-signing key's public JWK, the file operators pin: in `exports/`, and beside every
copy `ceremony export` makes."""


@dataclass(frozen=True, slots=True)
class PlanningContext:
    """Everything planning reads, gathered by the session from the workspace."""

    script: Script
    origin: str
    quorum: Quorum
    """The quorum rules in force (from the ledger, never from a file)."""
    policy: Policy
    keysets: Mapping[str, KeysetState]
    plans: Mapping[str, PlanRecord]
    officers: OfficerRegistry
    """The officers in force."""
    ledger_size: int
    ledger_root: bytes
    now: datetime
    inputs: PlanInputs
    requested_keysets: Sequence[str] = ()
    parameters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    enrolling: Sequence[OfficerPublicKeys] = ()
    signers: Mapping[str, str] = field(default_factory=dict)
    """Signing services holding the PIN now: name → age recipient."""
    config_change: tuple[Mapping[str, object], tuple[str, ...]] | None = None
    """For config-change: the record the files now make, and the differences, worded."""


def new_plan_id() -> str:
    return secrets.token_hex(6)


def build_plan(ctx: PlanningContext, *, plan_id: str | None = None) -> Plan:
    """The plan for `ctx.script` now.

    Raises:
        PlanError: nothing to do, a keyset not in the policy, or parameters that do not fit.
    """
    builder = _Builder(ctx)
    actions = builder.build()
    ceremony_class = plan_class(ctx.script.ceremony_class, actions, ctx.quorum)
    rule = ctx.quorum.for_class(ceremony_class)
    notes = list(builder.notes)
    ratifies = ([p.plan_id for p in _pending_ratifications(ctx.plans)]
                if ceremony_class == "routine" else [])
    notes += [f"ratifies emergency ceremony {ref}" for ref in ratifies]
    if ceremony_class != ctx.script.ceremony_class:
        notes.append(f"needs the {ceremony_class} quorum: an action in it always does")
    return Plan(
        id=plan_id or new_plan_id(), origin=ctx.origin, script=ctx.script.name,
        ceremony_class=ceremony_class, quorum_m=rule.m, quorum_n=rule.n,
        keysets=tuple(builder.keysets), parameters=dict(ctx.parameters), inputs=ctx.inputs,
        ledger_size=ctx.ledger_size, ledger_root=ctx.ledger_root,
        actions=tuple(_numbered(actions)), deferred=tuple(builder.deferred),
        notes=tuple(notes), ratifies=tuple(ratifies),
        created_at=ctx.now, expires_at=ctx.now + PLAN_LIFETIME,
    )


def pin_threshold(quorum: Quorum, officers: int) -> int:
    """The PIN opens with the smallest quorum of any class: every ceremony must log in."""
    smallest = min(r.m for r in (quorum.routine, quorum.destructive, quorum.emergency))
    return max(1, min(smallest, officers))


def _numbered(actions: Sequence[Action]) -> list[Action]:
    from dataclasses import replace

    return [replace(a, n=i) for i, a in enumerate(actions, start=1)]


def _pending_ratifications(plans: Mapping[str, PlanRecord]) -> list[PlanRecord]:
    from console.ceremony.journal import pending_ratifications

    return pending_ratifications(plans)


class _Labels:
    """CKA_LABELs for new keys: `<keyset>-<yyyymmdd>-<random>`; unique on any token."""

    def __init__(self, now: datetime) -> None:
        self.day = now.strftime("%Y%m%d")

    def make(self, keyset: str) -> str:
        return f"{keyset}-{self.day}-{secrets.token_hex(3)}"


class _Builder:
    def __init__(self, ctx: PlanningContext) -> None:
        self.ctx = ctx
        self.steps = {s.action for s in ctx.script.steps}
        self.labels = _Labels(ctx.now)
        self.keysets = select_keysets(ctx.script, ctx.policy, ctx.keysets,
                                      ctx.requested_keysets, ctx.now)
        self.deferred: list[Deferred] = []
        self.notes: list[str] = []
        self.changes: dict[str, list[Change]] = {}
        self.bundle_key = _bundle_key(ctx.keysets)
        self.actions: list[Action] = []

    def add(self, action: Action) -> None:
        self.actions.append(action)

    def build(self) -> list[Action]:
        keys_done = False
        for step in self.ctx.script.steps:
            kind = step.action
            if kind == "reconcile":
                self.add(Reconcile(0, "reconcile the HSM inventory with the ledger"))
            elif kind == "generate" and step.option("purpose") == "bundle":
                self._bundle_signing_key()
            elif kind in KEY_STEPS:
                if not keys_done:
                    keys_done = True
                    for name in self.keysets:
                        self._key_actions(name)
                    if "destroy" in self.steps and "generate" not in self.steps:
                        self._orphan_destructions()
            elif kind == "export_bundle":
                for name in self.keysets:
                    self._export_bundle(name)
            elif kind == "export_audit":
                self.add(ExportAudit(0, "write an audit pack"))
            elif kind == "checkpoint":
                self.add(Checkpoint(0, "checkpoint cosigned by the approving officers"))
            elif kind == "note":
                self.add(Note(0, "witness note", text=step.option("text")))
            elif kind == "enroll_officer":
                self._enrolments()
            elif kind == "revoke_officer":
                self._revocations()
            elif kind == "resplit_pin":
                self._resplit()
            elif kind == "record_config":
                self._record_config()
            elif kind == "release_signer":
                self._release_signer()
            elif kind == "revoke_signer":
                self._revoke_signer()
        self._check_something_to_do()
        return self.actions

    # --- keys ------------------------------------------------------------------------------

    def _bundle_signing_key(self) -> None:
        if self.bundle_key is not None:
            return
        label = self.labels.make("bundle-signing")
        self.add(Generate(0, f"generate the bundle-signing key {label} ({BUNDLE_ALG})",
                          keyset=BUNDLE_KEYSET, label=label, alg=BUNDLE_ALG, purpose="bundle",
                          why="the key that signs every JWKS bundle (never tokens)"))
        self.add(SelfTest(0, f"self-test {label}", keyset=BUNDLE_KEYSET, label=label))
        self.add(PublishBundleKey(0, f"make {label} the bundle-signing key operators pin "
                                  f"(exports/{BUNDLE_SIGNING_KEY_FILE})", label=label))
        self.bundle_key = label

    def _key_actions(self, name: str) -> None:
        policy = self.ctx.policy.keyset(name)
        state = self.ctx.keysets.get(name, KeysetState(name))
        now = self.ctx.now
        if "destroy" in self.steps and not ({"generate", "activate"} & self.steps):
            for key in state.in_state(KeyState.ARCHIVED, KeyState.COMPROMISED):
                ready = earliest_destruction(key, policy)
                if ready <= now:
                    self.add(Destroy(
                        0, f"destroy the private key of {short_kid(key.kid)}", keyset=name,
                        kid=key.kid, label=key.label, cka_id=key.cka_id,
                        why=f"unpublished {format_time(key.archived_at or now)} + wait "
                            f"{policy.destruction_wait.days} d ended {format_time(ready)}"))
                else:
                    self.deferred.append(Deferred("destroy", name, key.kid, format_time(ready),
                                                  "destruction wait"))
            return
        rotation: RotationPlan = (plan_emergency(state, policy, now) if "compromise" in self.steps
                                  else plan_rotation(state, policy, now))
        refs: dict[str, str] = {}
        pairs = _pairs(rotation)
        changes = self.changes.setdefault(name, [])
        for planned in rotation.actions:
            if planned.action not in self.steps:
                continue
            if planned.new_key is not None:
                label = refs.get(planned.new_key) or self.labels.make(name)
                refs[planned.new_key] = label
                ref = KeyRef(label=label)
            else:
                assert planned.kid is not None
                ref = KeyRef(kid=planned.kid)
            if planned.action == "generate":
                self.add(Generate(0, f"generate {policy.alg} key {ref.text} for {name}",
                                  keyset=name, label=ref.text, alg=policy.alg, purpose="token",
                                  why=planned.reason, rsa_bits=policy.rsa_bits))
                if "self_test" in self.steps:
                    self.add(SelfTest(0, f"self-test {ref.text}", keyset=name, label=ref.text))
                continue
            partner = pairs.get((planned.action, planned.kid or planned.new_key or ""))
            changes.append(Change(planned.action, ref, planned.reason, waived=planned.waived,
                                  paired_with=partner))
        for item in rotation.deferred:
            self.deferred.append(Deferred(item.action, name, item.kid,
                                          format_time(item.earliest), item.reason))
        self.notes += [f"{name}: {n}" for n in rotation.notes]

    def _export_bundle(self, name: str) -> None:
        if self.bundle_key is None:
            raise PlanError("there is no bundle-signing key yet", "run genesis first")
        changes = tuple(self.changes.pop(name, []))
        # The bundle this step will write, by shape: the keys published now (replayed state),
        # changed as the plan changes them, with the keys it generates by their alg. Every
        # target lints that shape now, so a plan that would fail its export is never offered
        # for approval (and no limit is discovered in the middle of a ceremony).
        from console.consumers import KeyShape
        from console.errors import TargetLintError
        from console.exports.targets import ShapeInput, lint_shapes

        policy = self.ctx.policy.keyset(name)
        state = self.ctx.keysets.get(name, KeysetState(name))
        published = {k.kid: k for k in state.token_keys if k.state in PUBLISHED_STATES}
        generated = {a.label: a for a in self.actions
                     if isinstance(a, Generate) and a.keyset == name and a.purpose == "token"}
        shapes: dict[str, KeyShape] = {}
        try:
            shapes = {kid: KeyShape.of_jwk(k.jwk) for kid, k in published.items()}
            for change in changes:
                ref = change.key
                if change.verb in ("unpublish", "compromise", "withdraw"):
                    shapes.pop(ref.kid or str(ref.label), None)
                elif change.verb == "publish" and ref.kid is not None:
                    shapes[ref.kid] = KeyShape.of_jwk(state.key(ref.kid).jwk)
                elif change.verb == "publish" and ref.label in generated:
                    new = generated[ref.label]
                    shapes[ref.label] = KeyShape(new.alg, name=f"{ref.label} (new)",
                                                 rsa_bits=new.rsa_bits)
            lint_shapes(ShapeInput(name, policy.issuer, tuple(shapes.values())),
                        policy.consumers)
        except TargetLintError as e:
            raise PlanError(f"the bundle of {name} this plan would export is refused: "
                            f"{e.message}", e.hint) from e
        described = "; ".join(f"{c.verb} {c.key.text}" for c in changes)
        # Evidence before activation (DESIGN.md §7): genesis and emergencies waive it, since
        # their keys are activated with the very bundle that publishes them.
        activations = [c.key.text for c in changes if c.verb == "activate" and c.waived is None]
        probes: tuple[str, ...] = ()
        evidence = ""
        if activations:
            policy = self.ctx.policy.keyset(name)
            probes = planned_checks(policy)[0]
            evidence = "".join(f"\n       {line}" for line in describe_checks(policy,
                                                                             activations))
        self.add(ExportBundle(
            0, f"sign and export the JWKS bundle of {name}"
               + (f" — with it: {described}" if described else " (no key changes)") + evidence,
            keyset=name, changes=changes, probes=probes))

    def _orphan_destructions(self) -> None:
        """Keys left on the token by generation steps of aborted ceremonies: reconciliation
        reports them; destroying them is this quorum-approved step (never done silently)."""
        resolved = {str(d.get("cka_id")) for p in self.ctx.plans.values()
                    for d in p.done.values() if d.get("orphan")}
        for record in self.ctx.plans.values():
            if record.aborted_at is None:
                continue
            for n, intent in sorted(record.intents.items()):
                cka_id = str(intent.get("cka_id", ""))
                if intent.get("action") != "generate" or n in record.done or cka_id in resolved:
                    continue
                label = str(intent.get("label", ""))
                self.add(DestroyOrphan(
                    0, f"destroy orphan key {label} (if on the token)",
                    keyset=str(intent.get("keyset", "")), cka_id=cka_id, label=label,
                    why=f"left by step {n} of aborted plan {record.plan_id}"))

    # --- officers, PIN, configuration, signers ---------------------------------------------

    def _enrolments(self) -> None:
        for officer in self.ctx.enrolling:
            if self.ctx.officers.get(officer.name) is not None:
                raise PlanError(f"{officer.name} was enrolled before (names are never reused)",
                                "make the new card under another name")
            self.add(EnrollOfficer(0, f"enrol officer {officer.name}", officer=officer.name,
                                   ed25519=b64url_encode(officer.ed25519_public),
                                   x25519=b64url_encode(officer.x25519_public)))

    def _revocations(self) -> None:
        for name in self.ctx.parameters.get("revoke", ()):
            if name not in {o.name for o in self.ctx.officers.active()}:
                raise PlanError(f"{name} is not an enrolled officer",
                                "see `ceremony officer list`")
            self.add(RevokeOfficer(0, f"revoke officer {name}", officer=name))

    def _remaining_officers(self) -> list[Recipient]:
        revoked = set(self.ctx.parameters.get("revoke", ()))
        out = [Recipient(o.name, b64url_encode(o.x25519)) for o in self.ctx.officers.active()
               if o.name not in revoked]
        out += [Recipient(o.name, b64url_encode(o.x25519_public)) for o in self.ctx.enrolling]
        return out

    def _resplit(self) -> None:
        remaining = self._remaining_officers()
        quorum = self.ctx.quorum
        hardest = max(quorum.routine.m, quorum.destructive.m, quorum.emergency.m)
        if len(remaining) < hardest:
            raise PlanError(
                f"the change leaves {len(remaining)} officers, but a quorum in force needs "
                f"{hardest}", "enrol a replacement in the same ceremony (--set enroll=CARD)")
        threshold = pin_threshold(quorum, len(remaining))
        names = ", ".join(r.officer for r in remaining)
        self.add(ResplitPin(0, f"change the HSM PIN and split it {threshold} of "
                            f"{len(remaining)} among {names}",
                            recipients=tuple(remaining), threshold=threshold))
        for signer, recipient in sorted(self.ctx.signers.items()):
            if signer in self.ctx.parameters.get("signer", ()) and "revoke_signer" in self.steps:
                continue
            self.add(ReleaseSigner(0, f"re-release the new PIN to signing service {signer}",
                                   signer=signer, recipient=recipient))

    def _record_config(self) -> None:
        if self.ctx.config_change is None:
            raise PlanError("the configuration is as the ledger records it: nothing to change",
                            "edit ceremony.toml, policy.toml or ceremonies/ first")
        record, lines = self.ctx.config_change
        self.add(RecordConfig(0, "record the configuration as it now is:\n"
                              + "\n".join(f"    {line}" for line in lines),
                              record=record, changes=lines))

    def _release_signer(self) -> None:
        names = self.ctx.parameters.get("signer", ())
        recipients = self.ctx.parameters.get("recipient", ())
        if len(names) != 1 or len(recipients) != 1:
            raise PlanError("signer-enrollment needs one signer and one recipient",
                            "--set signer=NAME --set recipient=age1…")
        name, recipient = names[0], recipients[0]
        check_signer(name, recipient)  # refused before the plan is recorded
        if name in self.ctx.signers:
            raise PlanError(f"signing service {name} already holds the PIN",
                            "revoke it first (signer-revocation) or choose another name")
        self.add(ReleaseSigner(0, f"release the token PIN to signing service {name}, "
                               f"encrypted to {recipient[:16]}…", signer=name,
                               recipient=recipient))

    def _revoke_signer(self) -> None:
        names = self.ctx.parameters.get("signer", ())
        if len(names) != 1 or names[0] not in self.ctx.signers:
            held = ", ".join(sorted(self.ctx.signers)) or "none"
            raise PlanError("signer-revocation needs the name of a signing service holding the "
                            f"PIN (now: {held})", "--set signer=NAME")
        self.add(RevokeSigner(0, f"revoke signing service {names[0]}: its PIN stops working "
                              "when the PIN changes below", signer=names[0]))

    def _check_something_to_do(self) -> None:
        busy = [a for a in self.actions if not isinstance(a, Reconcile | Checkpoint | Note)]
        if any(isinstance(a, ExportBundle) for a in busy) or busy:
            return
        raise PlanError(f"{self.ctx.script.name}: nothing to do now",
                        _nothing_to_do_hint(self.deferred))


def _bundle_key(keysets: Mapping[str, KeysetState]) -> str | None:
    state = keysets.get(BUNDLE_KEYSET)
    if state is None:
        return None
    return next((k.kid for k in state.keys if k.state is KeyState.ACTIVE), None)


def _pairs(rotation: RotationPlan) -> dict[tuple[str, str], str]:
    """For a retire+activate switch, each side's partner kid (the activation's is the retiree)."""
    retire = next((a for a in rotation.actions if a.action == "retire"), None)
    activate = next((a for a in rotation.actions if a.action == "activate" and a.kid), None)
    if retire is None or activate is None or retire.kid is None or activate.kid is None:
        return {}
    return {("retire", retire.kid): activate.kid, ("activate", activate.kid): retire.kid}


def _nothing_to_do_hint(deferred: Sequence[Deferred]) -> str:
    if deferred:
        first = min(deferred, key=lambda d: d.earliest)
        return (f"the next action ({first.action} {short_kid(first.kid)}) is allowed "
                f"from {first.earliest}")
    return "see `ceremony status`"


def jwks_keys(state: KeysetState) -> list[Mapping[str, object]]:
    """The public JWKs a keyset's bundle carries: published, active, retired, suspended."""
    return [k.jwk for k in state.token_keys if k.state in PUBLISHED_STATES]


__all__ = [
    "BUNDLE_ALG",
    "BUNDLE_KEYSET",
    "PLAN_LIFETIME",
    "PlanningContext",
    "build_plan",
    "jwks_keys",
    "new_plan_id",
    "pin_threshold",
    "plan_class",
]

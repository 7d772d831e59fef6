"""Reconciliation: the HSM's inventory against the ledger, classified, never acted upon.

Every key object on the token is *known* (the ledger recorded its generation and it is not
destroyed), an *orphan* (a generation intent without a result: a ceremony was interrupted), or
*unknown* (nothing in the ledger). Every live key in the ledger must be on the token, else it is
*missing*. Nothing is adopted or destroyed here; findings say what to do, and exports are
refused until there are none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from console.ceremony.journal import PlanRecord
from console.jsontypes import JsonMapping, JsonObject
from console.lifecycle import KeysetState, KeyState, short_kid

if TYPE_CHECKING:
    from console.hsm import Hsm, HsmObject
    from console.workspace import Workspace

_KEY_CLASSES = ("private key", "public key", "secret key")


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # "orphan" | "unknown" | "missing" | "incomplete" | "destroyed-present" | "mismatch"
    cka_id: str
    label: str
    kid: str | None
    detail: str
    todo: str
    critical: bool = False

    def describe(self) -> str:
        who = short_kid(self.kid) if self.kid else f"label {self.label!r}"
        return f"{self.kind}: {who} (CKA_ID {self.cka_id[:12]}…): {self.detail}"

    def to_json(self) -> JsonObject:
        return {"kind": self.kind, "cka_id": self.cka_id, "label": self.label, "kid": self.kid,
                "detail": self.detail, "todo": self.todo, "critical": self.critical}


@dataclass(frozen=True, slots=True)
class Reconciliation:
    objects: int
    known: int
    findings: tuple[Finding, ...]
    private_visible: bool

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_json(self) -> JsonObject:
        return {"objects": self.objects, "known": self.known, "clean": self.clean,
                "private_objects_checked": self.private_visible,
                "findings": [f.to_json() for f in self.findings]}


def reconcile(inventory: Sequence[HsmObject], keysets: Mapping[str, KeysetState],
              plans: Mapping[str, PlanRecord], *, private_visible: bool,
              token_kids: Mapping[str, str] | None = None) -> Reconciliation:
    """Classify every key object on the token and every live key in the ledger (pure).

    `private_visible` says whether the inventory was taken logged in (private keys are only
    visible then); without it, only public key objects are compared. `token_kids` maps a
    CKA_ID (hex) to the RFC 7638 thumbprint of the public key the token holds under it: a key
    the ledger records with other material (a forged `key.generated`, a swapped token object)
    is then a critical `mismatch`, and nothing is exported while it is.
    """
    by_id: dict[str, list[HsmObject]] = {}
    for obj in inventory:
        if obj.object_class in _KEY_CLASSES:
            by_id.setdefault(obj.cka_id.hex(), []).append(obj)
    ledger_keys = {k.cka_id: k for state in keysets.values() for k in state.keys}
    intents: dict[str, tuple[PlanRecord, JsonMapping]] = {}
    for record in plans.values():
        for n, intent in record.intents.items():
            if intent.get("action") == "generate" and n not in record.done and "cka_id" in intent:
                intents[str(intent["cka_id"])] = (record, intent)
    findings: list[Finding] = []
    known = 0
    interrupted = [(record, intent) for record, intent in intents.values()
                   if record.aborted_at is None]
    for cka_id, objects in sorted(by_id.items()):
        label = objects[0].label
        if not cka_id and interrupted and all(o.unfinished and not o.label for o in objects):
            record, intent = interrupted[-1]
            findings.append(Finding(
                "orphan", cka_id, label, None,
                f"{len(objects)} object(s) without key material, left unfinished by the key "
                f"generation of step {intent.get('step')} of interrupted plan "
                f"{record.plan_id}", "run `ceremony resume`: it removes them and generates "
                "the key again"))
            continue
        key = ledger_keys.get(cka_id)
        if key is not None and key.state is not KeyState.DESTROYED:
            held = (token_kids or {}).get(cka_id)
            if held is not None and held != key.kid:
                findings.append(Finding(
                    "mismatch", cka_id, label, key.kid,
                    f"the token holds another public key under this CKA_ID (kid {held[:8]}…)",
                    "stop: the ledger or the token was tampered with; restore and verify both",
                    critical=True))
                continue
            known += 1
            continue
        if key is not None:
            findings.append(Finding(
                "destroyed-present", cka_id, label, key.kid,
                "the ledger records this key as destroyed, but it is on the token",
                "destroy it again in a key-destruction ceremony; check who restored it",
                critical=True))
        elif cka_id in intents:
            record, intent = intents[cka_id]
            aborted = record.aborted_at is not None
            findings.append(Finding(
                "orphan", cka_id, label, None,
                f"made by step {intent.get('step')} of "
                f"{'aborted' if aborted else 'interrupted'} plan {record.plan_id}",
                "run key-destruction (destructive quorum) to destroy it" if aborted else
                "run `ceremony resume --officer NAME …` (its approvers) to audit and adopt it, or "
                "`ceremony resume --abort --officer NAME`"))
        else:
            findings.append(Finding(
                "unknown", cka_id, label, None,
                "not made by this console (no ledger record)",
                "check it with the token's own tools; the console never adopts or destroys it"))
    for cka_id, key in sorted(ledger_keys.items()):
        if key.state is KeyState.DESTROYED:
            continue
        classes = {o.object_class for o in by_id.get(cka_id, [])}
        wanted = {"public key", "private key"} if private_visible else {"public key"}
        missing = wanted - classes
        if missing == wanted:
            active = key.state is KeyState.ACTIVE
            findings.append(Finding(
                "missing", cka_id, key.label, key.kid,
                f"the ledger's {key.state.value} key is not on the token",
                "run emergency-rotation now" if active else
                "check the token (is it the right one?), then record the loss in a ceremony",
                critical=active))
        elif missing:
            findings.append(Finding(
                "incomplete", cka_id, key.label, key.kid,
                f"the {' and '.join(sorted(missing))} is gone from the token",
                "treat the key as lost: run emergency-rotation if it signs",
                critical=key.state is KeyState.ACTIVE))
    return Reconciliation(objects=sum(len(v) for v in by_id.values()), known=known,
                          findings=tuple(findings), private_visible=private_visible)


def reconcile_workspace(ws: Workspace) -> Reconciliation:
    """Read-only reconciliation from the CLI: the token is not logged in (no quorum needed),
    so only public key objects are compared; ceremonies reconcile logged in.

    Raises:
        ConfigDriftError: the configuration differs from the record (no module is loaded).
    """
    from console.ceremony.journal import STATE_ENTRY_TYPES, replay_plans
    from console.lifecycle import replay

    entries = list(ws.ledger.entries_of_type(*STATE_ENTRY_TYPES))
    keysets = replay(entries).keysets
    hsm = ws.hsm()
    inventory = hsm.inventory()
    return reconcile(inventory, keysets, replay_plans(entries), private_visible=False,
                     token_kids=token_kids(hsm, inventory, keysets))


def token_kids(hsm: Hsm, inventory: Sequence[HsmObject],
               keysets: Mapping[str, KeysetState]) -> dict[str, str]:
    """The thumbprint of the public key the token holds under each CKA_ID the ledger knows."""
    from console.exports.jwks import public_jwk

    algs = {k.cka_id: k.alg for state in keysets.values() for k in state.keys
            if k.state is not KeyState.DESTROYED}
    present = {o.cka_id.hex() for o in inventory if o.object_class == "public key"}
    wanted = [bytes.fromhex(cka_id) for cka_id in algs if cka_id in present]
    # One search of the token's public keys, not one per key the ledger knows.
    found = hsm.public_keys(wanted) if wanted else {}
    return {cka_id.hex(): public_jwk(public, algs[cka_id.hex()])["kid"]
            for cka_id, public in found.items()}


def render_reconciliation(report: Reconciliation) -> str:
    scope = ("private and public objects" if report.private_visible
             else "public key objects (private keys are visible only during a ceremony)")
    lines = [f"{report.objects} key objects on the token, {report.known} keys known to the "
             f"ledger; compared: {scope}"]
    if report.clean:
        lines.append("✓ the HSM and the ledger agree")
    for finding in report.findings:
        mark = "✗" if finding.critical else "!"
        lines.append(f"{mark} {finding.describe()} — {finding.todo}")
    return "\n".join(lines)

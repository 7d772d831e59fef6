"""`ceremony status`: keysets, keys, due dates and warnings, from the ledger and the policy.

The JSON shape is the contract of DESIGN.md §10 (built by `lifecycle.status_json`), extended
with the workspace, the ledger's size and last checkpoint, the bundle-signing key, open plans and
emergency ceremonies awaiting ratification.

Each replay reads only the entry types it folds, through the ledger's type index, so the time
status takes grows with the keys and ceremonies recorded, not with the ledger's size (findings,
checkpoints and exports can run to millions of entries).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypedDict, cast

from console.ceremony.journal import (
    CEREMONY_ENTRY_TYPES,
    KEY_ENTRY_TYPES,
    open_plans,
    pending_ratifications,
    replay_plans,
)
from console.ceremony.planner import BUNDLE_KEYSET, BUNDLE_SIGNING_KEY_FILE
from console.clock import format_time
from console.errors import ConsoleError, LedgerTamperedError, VerificationError
from console.lifecycle import KeyState, replay, short_kid, status_json

if TYPE_CHECKING:
    from console.jsontypes import JsonMapping
    from console.ledger import Entry
    from console.lifecycle import Key, KeysetState
    from console.workspace import Workspace


class KeyStatus(TypedDict):
    """One key of a keyset in the status report (`lifecycle.key_json`)."""

    kid: str
    alg: str
    state: str
    label: str
    purpose: str
    cka_id: str
    created_at: str
    published_at: str | None
    activated_at: str | None
    retired_at: str | None
    archived_at: str | None
    destroyed_at: str | None
    suspended_at: str | None
    compromised_at: str | None
    earliest_activation: str | None
    earliest_unpublish: str | None
    earliest_destruction: str | None


class BundleStatus(TypedDict):
    """A keyset's latest exported bundle (values as the `bundle.exported` entry holds them)."""

    seq: object
    sha256: object
    exported_at: str
    expires_at: str


class KeysetStatus(TypedDict):
    """One keyset in the status report (DESIGN.md §10, `lifecycle.status_json`), with its
    latest bundle."""

    name: str
    alg: str | None
    issuer: str | None
    keys: list[KeyStatus]
    active_kid: str | None
    next_due: str | None
    overdue: bool
    latest_ceremony: str | None
    c_max_seconds: int | None
    bundle: BundleStatus | None


class WorkspaceInfo(TypedDict):
    root: str
    org: str
    origin: str
    rehearsal: bool


class LedgerInfo(TypedDict):
    size: int
    root: str
    checkpoint: str | None


class BundleKeyInfo(TypedDict):
    kid: str
    alg: str
    label: str


class OpenPlan(TypedDict):
    plan_id: str
    script: str
    state: str
    keysets: list[str]
    approvals: int
    quorum: int
    steps_done: int
    steps: int
    expires_at: str


class StatusReport(TypedDict):
    """`ceremony status --json`: DESIGN.md §10's document, extended (see the module docstring).
    The members are built in this order, which `--json` keeps."""

    now: str
    keysets: list[KeysetStatus]
    warnings: list[str]
    workspace: WorkspaceInfo
    ledger: LedgerInfo
    bundle_signing_key: BundleKeyInfo | None
    open_plans: list[OpenPlan]
    config_drift: list[str]
    pending_ratification: list[str]


def _active_bundle_key(bundle: KeysetState | None) -> Key | None:
    return next((k for k in bundle.keys if k.state is KeyState.ACTIVE), None) if bundle \
        else None


def bundle_signing_jwk(ws: Workspace) -> JsonMapping | None:
    """The active bundle-signing key's public JWK as the ledger records it. Bundles are checked
    against this and its thumbprint is what operators pin, never the exported
    `bundle-signing-key.jwk`: a file swapped on disk would vouch for bundles forged with it."""
    replayed = replay(ws.ledger.entries_of_type(*KEY_ENTRY_TYPES))
    key = _active_bundle_key(replayed.keysets.get(BUNDLE_KEYSET))
    return key.jwk if key is not None else None


def workspace_status(ws: Workspace, now: datetime) -> StatusReport:
    # entries_of_type yields in seq order, which both replays depend on.
    replayed = replay(ws.ledger.entries_of_type(*KEY_ENTRY_TYPES))
    keysets = {k: v for k, v in replayed.keysets.items() if k != BUNDLE_KEYSET}
    base = status_json(keysets, ws.policy, now)  # the §10 document: now, keysets, warnings
    plans = replay_plans(ws.ledger.entries_of_type(*CEREMONY_ENTRY_TYPES))
    bundle_key = _active_bundle_key(replayed.keysets.get(BUNDLE_KEYSET))
    checkpoint = ws.ledger.latest_checkpoint()
    pending = pending_ratifications(plans)
    report: StatusReport = {
        # lifecycle.status_json builds these three members in exactly these shapes.
        "now": str(base["now"]),
        "keysets": cast(list[KeysetStatus], base["keysets"]),
        "warnings": cast(list[str], base["warnings"]),
        "workspace": {
            "root": str(ws.root), "org": ws.config.org, "origin": ws.config.origin,
            "rehearsal": ws.rehearsal,
        },
        "ledger": {
            "size": ws.ledger.size,
            "root": base64.b64encode(ws.ledger.root()).decode("ascii"),
            "checkpoint": checkpoint,
        },
        "bundle_signing_key": (
            {"kid": bundle_key.kid, "alg": bundle_key.alg, "label": bundle_key.label}
            if bundle_key is not None else None
        ),
        "open_plans": [
            {"plan_id": p.plan_id, "script": p.plan.script, "state": p.state(),
             "keysets": list(p.keysets), "approvals": len(p.approvers()),
             "quorum": p.plan.quorum_m, "steps_done": len(p.done), "steps": len(p.actions),
             "expires_at": format_time(p.expires_at)}
            for p in open_plans(plans, now)
        ],
        "config_drift": [str(d) for d in ws.drift],
        "pending_ratification": [p.plan_id for p in pending],
    }
    report["warnings"] += [
        f"emergency ceremony {p.plan_id} of {format_time(p.completed_at or now)[:10]} awaits "
        "ratification — the next routine ceremony records it" for p in pending
    ]
    _bundle_expiry(ws, report, now)
    first: list[str] = []
    for plan in report["open_plans"]:
        if plan["state"] in ("interrupted", "executing"):
            first.append(f"ceremony {plan['plan_id']} ({plan['script']}) was interrupted after "
                         f"step {plan['steps_done']} of {plan['steps']} — continue with "
                         "`ceremony resume --officer NAME …` or abort with `ceremony resume "
                         "--abort --officer NAME`")
        elif plan["approvals"] >= plan["quorum"]:
            first.append(f"plan {plan['plan_id']} ({plan['script']}) is approved by "
                         f"{plan['approvals']} of {plan['quorum']} and waits to run — `ceremony "
                         f"execute {plan['plan_id']} --officer NAME …` with the approving "
                         "officers, or abort it with `ceremony resume --abort --officer NAME`")
        else:
            first.append(f"plan {plan['plan_id']} ({plan['script']}) is open: approved by "
                         f"{plan['approvals']} of {plan['quorum']} — `ceremony approve "
                         f"{plan['plan_id']} --officer NAME`, then `ceremony execute "
                         f"{plan['plan_id']} --officer NAME …`")
    if not any(plan["state"] in ("interrupted", "executing") for plan in report["open_plans"]):
        first += _sealed_pin_warning(ws)
    if bundle_key is not None:
        first += _bundle_key_file_warning(ws, bundle_key.jwk)
    for difference in ws.drift:
        first.append(f"configuration differs from the ledger's record: {difference} — run "
                     "`ceremony plan config-change` (destructive quorum)")
    report["warnings"] = first + report["warnings"]
    return report


def authorization_warning(ws: Workspace) -> list[str]:
    """The entry no console writes under its rules, if the ledger holds one
    (`LedgerState.require_authorized`), as a warning: named as a configuration drift is, while
    the commands that act refuse it. Kept out of `workspace_status` (read before the first frame
    of the TUI): its callers add it."""
    from console.ceremony.ledgerstate import LedgerState

    try:
        LedgerState(ws.ledger).require_authorized()
    except LedgerTamperedError as e:
        return [f"{e.message} — plan, approve, execute and resume refuse until then: {e.hint}"]
    return []


def _sealed_pin_warning(ws: Workspace) -> list[str]:
    """Whether `pin.sealed` is the file the ledger's last PIN split recorded (an interrupted
    ceremony may be between the two, and says so itself)."""
    recorded = [str(e.data.get("sha256")) for e in ws.ledger.entries_of_type("pin.resplit")]
    if not recorded:
        return []
    try:
        current = ws.sealed_pin_sha256()
    except ConsoleError as e:
        return [f"{e.message} — {e.hint}"]
    if current == recorded[-1]:
        return []
    return [f"pin.sealed is not the sealed PIN the ledger records (sha256 {recorded[-1][:12]}… "
            f"→ {current[:12]}…) — restore it from your backup; no command opens it as it is"]


def _bundle_key_file_warning(ws: Workspace, recorded: JsonMapping) -> list[str]:
    """Whether `exports/bundle-signing-key.jwk`, the file operators pin, holds the bundle-signing
    key the ledger records (a swapped file would have them trust another key)."""
    import json

    from console.files import read_regular_file

    try:
        held: object = json.loads(read_regular_file(ws.exports_dir / BUNDLE_SIGNING_KEY_FILE))
    except (VerificationError, ValueError):
        held = None
    if held == dict(recorded):  # written from the ledger's record, member for member
        return []
    problem = "is missing or unreadable" if held is None else "is not the key the ledger records"
    return [f"exports/{BUNDLE_SIGNING_KEY_FILE} {problem} (the ledger's bundle-signing key is "
            f"{str(recorded.get('kid'))[:16]}…) — do not pin from it: pin the thumbprint "
            "`ceremony status` shows; `ceremony export KEYSET --out DIR` writes the recorded "
            "key beside the copy"]


BUNDLE_RENEWAL_LEAD = timedelta(days=14)


def _bundle_expiry(ws: Workspace, report: StatusReport, now: datetime) -> None:
    """Each keyset's latest bundle and when it expires (signed `exp` = export + lifetime)."""
    latest: dict[str, Entry] = {}
    for exported in ws.ledger.entries_of_type("bundle.exported"):
        latest[str(exported.data.get("keyset"))] = exported
    for keyset in report["keysets"]:
        entry = latest.get(keyset["name"])
        policy = ws.policy.get(keyset["name"])
        if entry is None or policy is None:
            keyset["bundle"] = None
            continue
        expires = entry.time + policy.bundle_lifetime
        keyset["bundle"] = {"seq": entry.data.get("seq"), "sha256": entry.data.get("sha256"),
                            "exported_at": format_time(entry.time),
                            "expires_at": format_time(expires)}
        if now >= expires:
            report["warnings"].append(f"{keyset['name']}: bundle #{entry.data.get('seq')} "
                                      f"expired {format_time(expires)} — run export-only now")
        elif now >= expires - BUNDLE_RENEWAL_LEAD:
            report["warnings"].append(f"{keyset['name']}: bundle #{entry.data.get('seq')} "
                                      f"expires {format_time(expires)} — run export-only "
                                      "(or the next rotation) before then")


def render_status(report: StatusReport) -> str:
    ws = report["workspace"]
    lines = [
        f"{ws['org']} · {'REHEARSAL' if ws['rehearsal'] else 'production'} · now {report['now']}",
        f"ledger: {report['ledger']['size']} entries, root {report['ledger']['root'][:16]}…",
    ]
    bundle = report.get("bundle_signing_key")
    if bundle:
        lines.append(f"bundle-signing key: {bundle['kid']} ({bundle['alg']})")
    for keyset in report["keysets"]:
        due = keyset.get("next_due") or "—"
        flag = " OVERDUE" if keyset.get("overdue") else ""
        lines.append("")
        lines.append(f"{keyset['name']} · {keyset['alg']} · next rotation due {due}{flag}")
        b = keyset.get("bundle")
        if b:
            lines.append(f"  bundle #{b['seq']} sha256 {str(b['sha256'])[:16]}… expires "
                         f"{b['expires_at']}")
        lines.append(f"  {'kid':<12} {'state':<11} {'published':<21} {'activated':<21} "
                     f"{'retired':<21}")
        for key in keyset["keys"]:
            lines.append(
                f"  {short_kid(key['kid']):<12} {key['state']:<11} "
                f"{key['published_at'] or '—':<21} {key['activated_at'] or '—':<21} "
                f"{key['retired_at'] or '—':<21}"
            )
    if report["warnings"]:
        lines.append("")
        lines += [f"! {w}" for w in report["warnings"]]
    else:
        lines += ["", "✓ nothing needs doing"]
    return "\n".join(lines)

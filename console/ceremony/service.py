"""Ceremony services: what the CLI and the TUI call to plan, approve, execute and resume.

Each function takes an open `Workspace` and explicit inputs (officers' unlocked cards, `now`, a
progress sink) and returns a value or a line to show. Validation and refusals come before any
side effect: no ledger write, no HSM login, until every check that can fail early has passed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from console.ceremony.engine import CeremonyRun
from console.ceremony.journal import (
    CEREMONY_ENTRY_TYPES,
    STATE_ENTRY_TYPES,
    PlanRecord,
    find_plan,
    open_plans,
    pending_ratifications,
    replay_plans,
)
from console.ceremony.officers import read_card_file
from console.ceremony.planner import PlanInputs, build_plan
from console.ceremony.progress import LineProgress, NullProgress, ProgressSink
from console.ceremony.script import load_script
from console.ceremony.transcript import build_transcript
from console.clock import format_time
from console.errors import (
    ExportError,
    PlanAlreadyExecutedError,
    PlanError,
    PlanExpiredError,
    QuorumError,
    UsageError,
    WorkspaceError,
)
from console.lifecycle import replay
from console.quorum.approvals import (
    Approval,
    OfficerRegistry,
    approval_status,
    plan_digest,
    require_quorum,
    sign_approval,
)
from console.quorum.cards import OfficerPublicKeys, UnlockedCard, read_card_public
from console.quorum.pin_gate import open_pin
from console.quorum.words import digest_words, grouped_hex


@dataclass(frozen=True, slots=True)
class PlannedCeremony:
    plan_id: str
    digest: bytes
    plan: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id, "digest": self.digest.hex(),
            "words": digest_words(self.digest), "script": self.plan["script"]["name"],
            "class": self.plan["class"], "quorum": self.plan["quorum"],
            "keysets": self.plan["keysets"], "actions": self.plan["actions"],
            "deferred": self.plan["deferred"], "notes": self.plan["notes"],
            "expires_at": self.plan["expires_at"],
        }


# --- planning ------------------------------------------------------------------------------


def plan_ceremony(ws: Any, script_name: str, *, keysets: Sequence[str], now: datetime,
                  parameters: Sequence[str]) -> PlannedCeremony:
    """Make a plan and record it (`ceremony.planned`).

    Raises:
        ScriptError, PlanError, ConfigError: nothing is written then.
    """
    script = load_script(script_name, workspace=ws.root)
    params = _parse_parameters(script, parameters)
    entries = list(ws.ledger.entries_of_type(*STATE_ENTRY_TYPES))
    plans = replay_plans(entries)
    replayed = replay(entries)
    registry = OfficerRegistry.from_entries(e for e in entries if e.type.startswith("officer."))
    enrolling = [_enrolment(Path(p)) for p in params.get("enroll", ())]
    inputs = PlanInputs(
        script=script, config=ws.config, policy=ws.policy, keysets=replayed.keysets,
        plans=plans, ledger_size=ws.ledger.size, ledger_root=ws.ledger.root(), now=now,
        requested_keysets=list(keysets), parameters=params, enrolling=enrolling,
        active_officers=[o.name for o in registry.active()],
        pending_ratification=[p.plan_id for p in pending_ratifications(plans)],
    )
    plan = build_plan(inputs)
    _refuse_overlapping_plan(plans, plan, now)
    digest = plan_digest(plan)
    ws.ledger.append("ceremony.planned", {"plan": plan, "digest": digest.hex()}, time=now,
                     actor="console", ceremony=plan["id"])
    return PlannedCeremony(plan["id"], digest, plan)


def _parse_parameters(script: Any, values: Sequence[str]) -> dict[str, tuple[str, ...]]:
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
    return {k: tuple(v) for k, v in out.items()}


def _enrolment(card: Path) -> OfficerPublicKeys:
    """Only the public half of a new officer's card enters the plan."""
    return read_card_public(read_card_file(card))


def _refuse_overlapping_plan(plans: dict[str, PlanRecord], plan: dict[str, Any],
                             now: datetime) -> None:
    mine = set(plan["keysets"])
    for other in open_plans(plans, now):
        theirs = set(other.keysets)
        if (mine & theirs) or (not mine and not theirs):
            scope = ", ".join(sorted(mine & theirs)) or "officers"
            raise PlanError(
                f"plan {other.plan_id} ({other.plan['script']['name']}) for {scope} is still "
                f"open ({other.state()})",
                "execute it, resume it, or abort it with `ceremony resume --abort`; plans that"
                f" never started expire at {other.plan['expires_at']}",
            )


def render_plan(planned: PlannedCeremony) -> str:
    plan = planned.plan
    lines = [
        f"plan {planned.plan_id} · {plan['script']['name']} · {plan['class']} quorum "
        f"{plan['quorum']['m']} of {plan['quorum']['n']} · expires {plan['expires_at']}",
        f"digest {grouped_hex(planned.digest)}",
        f"words  {' '.join(digest_words(planned.digest))}",
    ]
    for action in plan["actions"]:
        lines.append(f"  {action['n']:>2} {action.get('description', action['action'])}")
        if action.get("why") and action["action"] not in ("generate",):
            lines.append(f"       {action['why']}")
    for item in plan["deferred"]:
        lines.append(f"  later: {item['action']} {item['kid'][:8]}… from {item['earliest']} "
                     f"({item['why']})")
    lines += [f"  note: {n}" for n in plan["notes"]]
    return "\n".join(lines)


# --- approving -----------------------------------------------------------------------------


def _record_and_registry(ws: Any, plan_id: str) -> tuple[PlanRecord, OfficerRegistry]:
    entries = list(ws.ledger.entries_of_type(*STATE_ENTRY_TYPES))
    record = find_plan(replay_plans(entries), plan_id)
    registry = OfficerRegistry.from_entries(e for e in entries if e.type.startswith("officer."))
    return record, registry


def _approvals(record: PlanRecord) -> list[Approval]:
    return [Approval.from_dict(a) for a in record.approvals]


def _refuse_closed(record: PlanRecord) -> None:
    if record.completed_at is not None:
        raise PlanAlreadyExecutedError(
            f"plan {record.plan_id} was executed at {format_time(record.completed_at)}",
            "nothing to do; make a new plan for a new ceremony")
    if record.aborted_at is not None:
        raise PlanAlreadyExecutedError(
            f"plan {record.plan_id} was aborted at {format_time(record.aborted_at)}",
            "make a new plan")


def approve_plan(ws: Any, plan_id: str, officer: UnlockedCard, *, now: datetime) -> str:
    """One officer signs the plan's digest; the signature is recorded in the ledger.

    Raises:
        PlanError, PlanExpiredError, QuorumError: the refusal is recorded, nothing else.
    """
    record, registry = _record_and_registry(ws, plan_id)
    _refuse_closed(record)
    digest = bytes.fromhex(record.digest)
    if plan_digest(record.plan) != digest:
        raise PlanError(f"plan {record.plan_id} does not match its recorded digest",
                        "the ledger is damaged: run `ceremony verify audit`")
    expires_at = record.expires_at()
    need = int(record.plan["quorum"]["m"])
    if now >= expires_at:
        _refuse(ws, record, officer.name, "plan expired", now)
        raise PlanExpiredError(f"plan {record.plan_id} expired at {format_time(expires_at)}",
                               "make a new plan")
    known = registry.get(officer.name)
    if known is None or known.ed25519_public != officer.public.ed25519_public:
        _refuse(ws, record, officer.name, "not an enrolled officer with this card", now)
        raise QuorumError(f"{officer.name} is not an enrolled officer with this card",
                          "see `ceremony officer list`")
    if officer.name in approval_status(digest, _approvals(record), registry, need=need, now=now,
                                       expires_at=expires_at).counted:
        return f"{officer.name} already approved plan {record.plan_id}"
    approval = sign_approval(officer, digest, now=now)
    status = approval_status(digest, [*_approvals(record), approval], registry, need=need,
                             now=now, expires_at=expires_at)
    if officer.name not in status.counted:
        reason = next((str(r.reason) for r in status.rejected if r.officer == officer.name),
                      "not counted")
        _refuse(ws, record, officer.name, reason, now)
        raise QuorumError(f"{officer.name}'s approval does not count: {reason}",
                          "see `ceremony officer list`", have=status.have, need=need)
    ws.ledger.append("ceremony.approved", {"plan_id": record.plan_id, **approval.to_dict()},
                     time=now, actor=officer.name, ceremony=record.plan_id)
    return f"{officer.name} approved plan {record.plan_id}: {status.summary()}"


def _refuse(ws: Any, record: PlanRecord, officer: str, reason: str, now: datetime) -> None:
    ws.ledger.append("ceremony.approval_refused",
                     {"plan_id": record.plan_id, "officer": officer, "reason": reason},
                     time=now, actor="console", ceremony=record.plan_id)


# --- executing -----------------------------------------------------------------------------


def _gate(ws: Any, record: PlanRecord, registry: OfficerRegistry,
          officers: Sequence[UnlockedCard], now: datetime, *, resuming: bool) -> bytes:
    """Quorum by signatures, then quorum by secrets: returns the PIN, logs nothing in.

    Raises:
        QuorumError / ShareError: before any HSM login.
    """
    digest = bytes.fromhex(record.digest)
    need = int(record.plan["quorum"]["m"])
    # A started ceremony may finish after its approval window: the approvals were valid then.
    expires_at = record.expires_at()
    counted_at = min(now, record.planned_at) if resuming else now
    status = require_quorum(digest, _approvals(record), registry, need=need, now=counted_at,
                            expires_at=expires_at)
    names = [o.name for o in officers]
    present = [n for n in names if n in status.counted]
    if len(set(present)) < need:
        absent = ", ".join(n for n in names if n not in status.counted) or "none"
        raise QuorumError(
            f"execution needs {need} approving officers to unlock their cards; "
            f"{len(set(present))} present (not approvers: {absent})",
            "the officers who approved the plan unlock their cards",
            have=len(set(present)), need=need)
    for card in officers:
        known = registry.get(card.name)
        if known is None or known.ed25519_public != card.public.ed25519_public:
            raise QuorumError(f"{card.name}'s card is not the enrolled one",
                              "use the card enrolled in the ledger")
    try:
        sealed = ws.sealed_pin_path.read_bytes()
    except OSError as e:
        raise WorkspaceError(f"cannot read the sealed PIN {ws.sealed_pin_path}: {e.strerror}",
                             "restore pin.sealed from your backup") from e
    return open_pin(sealed, list(officers))


def _gated(ws: Any, record: PlanRecord, registry: OfficerRegistry,
           officers: Sequence[UnlockedCard], now: datetime, *, resuming: bool) -> bytes:
    """`_gate`, with every refusal recorded in the ledger (and nothing else changed)."""
    try:
        return _gate(ws, record, registry, officers, now, resuming=resuming)
    except (QuorumError, WorkspaceError) as error:
        ws.ledger.append("ceremony.execution_refused",
                         {"plan_id": record.plan_id, "officers": [o.name for o in officers],
                          "reason": error.user_message()},
                         time=now, actor="console", ceremony=record.plan_id)
        raise


def execute_plan(ws: Any, plan_id: str, officers: Sequence[UnlockedCard], *, now: datetime,
                 progress: ProgressSink | None = None) -> str:
    """Run an approved plan: quorum, PIN gate, login, steps, checkpoint, transcript.

    Raises:
        PlanAlreadyExecutedError: the plan was completed or aborted (nothing changes).
        PlanExpiredError, QuorumError, ShareError: before any HSM login.
        ConsoleError: a step failed; it is recorded and the plan can be resumed.
    """
    record, registry = _record_and_registry(ws, plan_id)
    _refuse_closed(record)
    if record.started:
        raise PlanError(f"plan {record.plan_id} already started ({record.state()})",
                        "continue it with `ceremony resume`")
    if now >= record.expires_at():
        raise PlanExpiredError(
            f"plan {record.plan_id} expired at {record.plan['expires_at']}", "make a new plan")
    if record.plan["policy_sha256"] != ws.policy.sha256():
        raise PlanError("policy.toml changed since the plan was made", "make a new plan")
    pin = _gated(ws, record, registry, officers, now, resuming=False)
    hsm = ws.hsm()
    hsm.login(pin)
    ws.ledger.append("ceremony.started", {"plan_id": record.plan_id,
                                          "officers": [o.name for o in officers]},
                     time=now, actor="console", ceremony=record.plan_id)
    _record_policy(ws, now, record.plan_id)
    return _run(ws, record.plan_id, officers, pin, now, progress)


def _record_policy(ws: Any, now: datetime, plan_id: str) -> None:
    current = replay(ws.ledger.entries_of_type("policy.changed")).policy
    if current is None or current.sha256() != ws.policy.sha256():
        ws.ledger.append("policy.changed", {"sha256": ws.policy.sha256(),
                                            "policy": ws.policy.to_dict()},
                         time=now, actor="console", ceremony=plan_id)


def _run(ws: Any, plan_id: str, officers: Sequence[UnlockedCard], pin: bytes, now: datetime,
         progress: ProgressSink | None) -> str:
    record, _ = _record_and_registry(ws, plan_id)
    requested = now if ws.rehearsal else None

    def clock() -> datetime:
        when: datetime = ws.now(requested)
        return when

    run = CeremonyRun(ws=ws, hsm=ws.hsm(), record=record, officers=list(officers), clock=clock,
                      progress=progress or NullProgress(), pin=pin)
    run.run()
    paths = write_transcript_again(ws, plan_id)
    return f"ceremony {plan_id} completed; transcript: {paths[0] if paths else '—'}"


def resume_plan(ws: Any, officers: Sequence[UnlockedCard], *, now: datetime,
                progress: ProgressSink | None = None) -> str:
    """Continue the interrupted ceremony from its last completed step.

    Raises:
        PlanError: nothing to resume. QuorumError / ShareError: before any login.
    """
    record = _interrupted(ws, now)
    _, registry = _record_and_registry(ws, record.plan_id)
    pin = _gated(ws, record, registry, officers, now, resuming=True)
    ws.hsm().login(pin)
    ws.ledger.append("ceremony.resumed", {"plan_id": record.plan_id,
                                          "officers": [o.name for o in officers]},
                     time=now, actor="console", ceremony=record.plan_id)
    return _run(ws, record.plan_id, officers, pin, now, progress)


def _interrupted(ws: Any, now: datetime) -> PlanRecord:
    plans = replay_plans(ws.ledger.entries_of_type(*CEREMONY_ENTRY_TYPES))
    started = [p for p in plans.values() if p.started and not p.closed]
    if not started:
        raise PlanError("no interrupted ceremony to resume", "see `ceremony status`")
    return started[-1]


def abort_unstarted_plan(ws: Any, plan_id: str, *, now: datetime, reason: str) -> None:
    """Close a plan that never started (e.g. `run` failed at an approval), so it does not
    block the next plan for its keysets."""
    record = find_plan(replay_plans(ws.ledger.entries_of_type(*CEREMONY_ENTRY_TYPES)), plan_id)
    if record.started or record.closed:
        return
    ws.ledger.append("ceremony.aborted", {"plan_id": plan_id, "after_step": 0,
                                          "reason": reason},
                     time=now, actor="console", ceremony=plan_id)


def abort_open_plan(ws: Any, *, now: datetime) -> str:
    """Close the interrupted (or merely planned) ceremony without running more steps."""
    plans = replay_plans(ws.ledger.entries_of_type(*CEREMONY_ENTRY_TYPES))
    candidates = [p for p in plans.values() if not p.closed and (p.started or
                                                                  p.expires_at() > now)]
    if not candidates:
        raise PlanError("no open ceremony to abort", "see `ceremony status`")
    record = candidates[-1]
    ws.ledger.append("ceremony.aborted", {"plan_id": record.plan_id,
                                          "after_step": max(record.done, default=0)},
                     time=now, actor="console", ceremony=record.plan_id)
    orphans = [i for n, i in record.intents.items()
               if n not in record.done and i.get("action") == "generate"]
    extra = (f"; {len(orphans)} key(s) from interrupted steps stay on the token: "
             "`ceremony reconcile` lists them") if orphans else ""
    return f"ceremony {record.plan_id} aborted after step {max(record.done, default=0)}{extra}"


# --- exports and transcripts ---------------------------------------------------------------


def copy_latest_export(ws: Any, keyset: str, out: Path | None) -> Path:
    """The latest signed bundle of `keyset` (in the workspace, or copied to `out`).

    Raises:
        ExportError: no bundle yet, or `out` exists.
    """
    ws.policy.keyset(keyset)
    latest = None
    for entry in ws.ledger.entries_of_type("bundle.exported"):
        if entry.data.get("keyset") == keyset:
            latest = entry
    if latest is None:
        raise ExportError(f"no bundle of {keyset} has been exported yet",
                          "run a ceremony (genesis, quarterly-rotation or export-only)")
    source = ws.root / str(latest.data["path"])
    token = (source / "jwks.jwt").read_bytes()
    if hashlib.sha256(token).hexdigest() != latest.data["sha256"]:
        raise ExportError(f"{source}/jwks.jwt does not match the ledger's digest",
                          "the export folder was altered: re-export with export-only")
    if out is None:
        return Path(source)
    target = out / keyset / str(latest.data["seq"])
    if target.exists():
        raise ExportError(f"{target} already exists", "an export never overwrites: pick --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".partial-{target.name}-{os.getpid()}")
    shutil.copytree(source, partial)
    os.replace(partial, target)
    return target


def export_audit(ws: Any, out: Path | None) -> Path:
    from console.ledger import export_audit_pack

    target = out or ws.exports_dir / "audit" / f"{ws.ledger.size}"
    return Path(export_audit_pack(ws.ledger, target))


def write_transcript_again(ws: Any, plan_id: str) -> list[Path]:
    """Write the plan's transcript (Markdown and HTML) unless it exists already."""
    from console.ledger import EntryFilter

    record = find_plan(replay_plans(ws.ledger.entries_of_type(*CEREMONY_ENTRY_TYPES)), plan_id)
    mine = EntryFilter(ceremony=record.plan_id)
    # The ceremony's own entries, and the checkpoints (recorded without a ceremony id).
    entries = sorted(
        [*ws.ledger.page(0, ws.ledger.count(mine), mine),
         *ws.ledger.entries_of_type("checkpoint.signed")],
        key=lambda e: e.seq)
    transcript = build_transcript(record, entries)
    ws.transcripts_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    files = [(f"{transcript.name}.md", transcript.markdown),
             (f"{transcript.name}.html", transcript.html), *transcript.images]
    for name, text in files:
        path = ws.transcripts_dir / name
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        if name.endswith((".md", ".html")):
            paths.append(path)
    return paths


__all__ = [
    "LineProgress",
    "PlannedCeremony",
    "abort_open_plan",
    "abort_unstarted_plan",
    "approve_plan",
    "copy_latest_export",
    "execute_plan",
    "export_audit",
    "plan_ceremony",
    "render_plan",
    "resume_plan",
    "write_transcript_again",
]

"""Shared builders for the ledger tests (no tests here): fixed officer keys, a ledger factory."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from console.b64 import encode as b64url_encode
from console.ceremony.actions import Action, Note
from console.ceremony.plan import PLAN_LIFETIME, Plan, PlanInputs
from console.errors import EntryRejectedError
from console.ledger import Ledger, cosign_note, sign_note
from console.ledger.entry import LineScan, Watch, parse_entry
from console.quorum.approvals import approval_message

T0 = datetime(2027, 1, 15, 10, 0, 0, tzinfo=UTC)
ORIGIN = f"example.com/ceremony-ledger/{uuid.UUID(int=1)}"
OFFICERS = ("alice", "bob", "carol")
QUORUM = {"routine": {"m": 2, "n": 3}, "destructive": {"m": 3, "n": 3},
          "emergency": {"m": 2, "n": 3}}
"""The quorum rules every test ledger records: a checkpoint counts with 2 officers in force."""
KEYS = {
    n: Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test-officer:" + n.encode()).digest())
    for n in (*OFFICERS, "mallory")
}


def raw_public(name: str) -> bytes:
    return KEYS[name].public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def enrol_data(name: str) -> dict[str, str]:
    return {
        "name": name,
        "ed25519": b64url_encode(raw_public(name)),
        "x25519": b64url_encode(hashlib.sha256(b"x:" + name.encode()).digest()),
    }


def new_ledger(folder: Path, *, officers: tuple[str, ...] = OFFICERS) -> Ledger:
    ledger = Ledger.create(
        folder / "ledger.sqlite", origin=ORIGIN, checkpoint_file=folder / ".checkpoint"
    )
    ledger.append(
        "workspace.created",
        {"origin": ORIGIN, "org": "example.com", "rehearsal": True},
        time=T0,
        actor="console",
    )
    ledger.append("config.recorded", {"quorum": QUORUM}, time=T0, actor="console")
    for name in officers:
        ledger.append("officer.enrolled", enrol_data(name), time=T0, actor="console")
    return ledger


def checkpoint_now(ledger: Ledger, *signers: str, minutes: int = 0) -> str:
    """Sign the current tree by `signers` (default alice and bob) and record it."""
    names = signers or ("alice", "bob")
    note = sign_note(ledger.checkpoint_body(), names[0], KEYS[names[0]])
    for n in names[1:]:
        note = cosign_note(note, n, KEYS[n])
    ledger.record_checkpoint(note, time=T0 + timedelta(minutes=minutes), actor="console")
    return note


def make_plan(ledger: Ledger, plan_id: str, *, actions: Sequence[Action] = (),
              ceremony_class: str = "routine", time: datetime = T0) -> Plan:
    """A plan as the console makes it on `ledger` now (its size and root, the test quorum, a
    life of `PLAN_LIFETIME`), for `actions` (default: one note), numbered from 1."""
    steps = [replace(a, n=i) for i, a in enumerate(actions or [Note(1, "test entries", "")], 1)]
    rule = QUORUM[ceremony_class]
    zeros = "0" * 64
    inputs = PlanInputs(policy_sha256=zeros, policy={}, config_sha256=zeros,
                        module_path="/usr/lib/softhsm/libsofthsm2.so", module_sha256=zeros,
                        server_address=None, token_label="test", token_serial=None,
                        quorum=QUORUM, rehearsal=True, pin_sealed_sha256=zeros,
                        script_sha256=zeros)
    return Plan(id=plan_id, origin=ledger.origin, script="test", ceremony_class=ceremony_class,
                quorum_m=rule["m"], quorum_n=rule["n"], keysets=(), parameters={},
                inputs=inputs, ledger_size=ledger.size, ledger_root=ledger.root(),
                actions=tuple(steps), deferred=(), notes=(), ratifies=(), created_at=time,
                expires_at=time + PLAN_LIFETIME)


def approve(ledger: Ledger, plan: Plan, officer: str, *, time: datetime = T0) -> None:
    """`officer`'s approval of `plan`, signed with their test key, as `ceremony approve` records
    it."""
    signature = KEYS[officer].sign(approval_message(plan.digest))
    ledger.append("ceremony.approved", {"plan_id": plan.id, "officer": officer,
                                        "digest": plan.digest.hex(),
                                        "signature": b64url_encode(signature)},
                  time=time, actor=officer, ceremony=plan.id)


def authorize(ledger: Ledger, plan_id: str = "c-1", *, approvers: Sequence[str] = ("alice", "bob"),
              actions: Sequence[Action] = (), ceremony_class: str = "routine",
              time: datetime = T0) -> Plan:
    """Record ceremony `plan_id` as the console does before it acts: its plan, the approvals of
    `approvers` and its start (4 entries with the default 2 approvers), so that the entries
    written under it after (`fill`) are authorized, as the audit pack verifier requires."""
    plan = make_plan(ledger, plan_id, actions=actions, ceremony_class=ceremony_class, time=time)
    ledger.append("ceremony.planned", {"plan": plan.to_dict(), "digest": plan.digest.hex()},
                  time=time, actor="console", ceremony=plan_id)
    for officer in approvers:
        approve(ledger, plan, officer, time=time)
    ledger.append("ceremony.started", {"plan_id": plan_id, "officers": list(approvers)},
                  time=time, actor="console", ceremony=plan_id)
    return plan


def fill(ledger: Ledger, count: int, *, minutes: int = 0, ceremony: str | None = "c-1") -> None:
    ledger.append_many(
        [
            (
                "key.state_changed",
                {"kid": f"kid-{i}", "n": i},
                T0 + timedelta(minutes=minutes),
                "console",
                ceremony,
            )
            for i in range(count)
        ]
    )


def strict_ok(raw: bytes, seq: int) -> bool:
    """Whether the strict line parser (`parse_entry`) accepts `raw` as entry `seq`: the
    reference every fast path of the ledger and the audit pack is held to."""
    try:
        parse_entry(raw, expect_seq=seq)
    except EntryRejectedError:
        return False
    return True


def all_strict(block: bytes, first_seq: int, special: frozenset[str],
               cuts: frozenset[int], watch: Watch | None = None) -> LineScan:
    """A `scan_block` stand-in that accepts no line at once: every line takes the strict path."""
    raws = block.split(b"\n")[:-1]
    return LineScan(len(raws), [(i, None, r) for i, r in enumerate(raws)],
                    [[]] * (len(raws) + 1), None, [] if watch is None else [{}] * (len(raws) + 1))


def tree_ledger(folder: Path) -> None:
    """The tree tests' ledger in `folder`: 235 entries over two checkpoints (the officer set
    changes between them), then an uncovered tail."""
    ledger = new_ledger(folder)
    fill(ledger, 60, minutes=1)
    checkpoint_now(ledger, "alice", "bob", minutes=2)
    ledger.append("officer.revoked", {"name": "carol", "reason": "left"},
                  time=T0.replace(minute=3), actor="alice")
    fill(ledger, 140, minutes=4)
    checkpoint_now(ledger, "alice", "bob", minutes=5)
    fill(ledger, 33, minutes=6)
    ledger.close()

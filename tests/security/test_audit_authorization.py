"""The audit pack proves each ceremony's authorization (red-team report: `verify audit` proved the
tree, the checkpoints and the officer replay, not that the entries that change state were
authorized by an approved plan carrying the quorum its class needs).

The insider here writes the ledger's SQLite file (triggers dropped and put back) and appends
entries at its end, with the tree's nodes recomputed; the officers then cosign a checkpoint of
the ledger as it is (they sign a root, they do not review every entry): the checkpoint is
signed with the demo officers' cards, as the console's closing step does. The console opens
the result and exports its pack; `ceremony verify audit`, offline, must refuse it with one
error line naming the first unauthorized entry. Before the fix every one of these packs
verified.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from console.ceremony.officers import write_new_card
from console.quorum.cards import unlock_card
from tests.integration.ceremony_helpers import after, assert_one_error, cli
from tests.security.conftest import ApprovedPlan, Target
from tests.security.support import (
    _connect,
    _restore_triggers,
    canonical,
    forge_history,
    leaf,
    note,
    perfect_nodes,
    root,
)

pytestmark = pytest.mark.hsm

ALL_THREE = ("--officer", "alice", "--officer", "bob", "--officer", "carol")
Entry = dict[str, Any]


def entries(ws: Path) -> list[Entry]:
    """The ledger's entries as JSON objects (read with sqlite3, not through the console)."""
    from tests.security.support import entries as rows

    return [dict(e) for e in rows(ws)]


# --- the insider's tools (written from the formats) ------------------------------------------


def _card_key(ws: Path, name: str) -> Ed25519PrivateKey:
    """An officer's Ed25519 key, from the demo's card and passphrase files."""
    card = (ws / "demo-cards" / f"{name}.card").read_bytes()
    secret = (ws / "demo-cards" / f"{name}.pass").read_text().strip()
    return unlock_card(card, secret).ed25519_private


def _entry(kind: str, data: dict[str, Any], ceremony: str | None, *,
           actor: str = "console") -> Entry:
    return {"v": 1, "type": kind, "ceremony": ceremony, "actor": actor, "data": data}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _new_officer(name: str) -> dict[str, str]:
    """`officer.enrolled` data of a new officer with fresh keys."""
    return {"name": name,
            "ed25519": _b64url(Ed25519PrivateKey.generate().public_key().public_bytes_raw()),
            "x25519": _b64url(X25519PrivateKey.generate().public_key().public_bytes_raw())}


def when_appended(ws: Path) -> str:
    """The time `append_cosigned` gives what it appends: a minute after the last entry."""
    last = datetime.strptime(entries(ws)[-1]["time"], "%Y-%m-%dT%H:%M:%SZ")
    return (last + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def append_cosigned(ws: Path, new: Sequence[Entry], *,
                    cosigners: Sequence[str] = ("alice", "bob")) -> list[int]:
    """Append `new` (seq and time filled in: a minute after the last entry) and a checkpoint of
    the whole ledger signed by `cosigners`' cards; recompute the stored nodes and the
    `.checkpoint` guard. Returns the seqs of `new`."""
    rows = entries(ws)
    leaves = [leaf(canonical(e)) for e in rows]
    origin = rows[0]["data"]["origin"]
    when = when_appended(ws)
    db = _connect(ws)
    seqs: list[int] = []

    def put(entry: Entry) -> None:
        raw = canonical(entry)
        db.execute("INSERT INTO entries (seq, raw, leaf_hash, type, ceremony, time) "
                   "VALUES (?,?,?,?,?,?)", (entry["seq"], raw, leaf(raw), entry["type"],
                                            entry["ceremony"], entry["time"]))
        leaves.append(leaf(raw))

    for item in new:
        entry = {**item, "seq": len(leaves), "time": when}
        seqs.append(entry["seq"])
        put(entry)
    size = len(leaves)
    tree_root = base64.b64encode(root(leaves)).decode()
    signed = note(f"{origin}\n{size}\n{tree_root}\n",
                  [(name, _card_key(ws, name)) for name in cosigners])
    put(_entry("checkpoint.signed", {"size": size, "root": tree_root, "note": signed}, None)
        | {"seq": size, "time": when})
    db.execute("DELETE FROM nodes")
    db.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", perfect_nodes(leaves))
    _restore_triggers(db)
    (ws / ".checkpoint").write_text(signed)
    return seqs


def verify_pack(target: Target, out: Path) -> subprocess.CompletedProcess[str]:
    """The console exports the pack (it opens the ledger: the appended entries pass every
    check made at open), then the auditor verifies it offline."""
    pack = out / "pack"
    exported = target.cli("audit", "export", "--out", str(pack))
    assert exported.returncode == 0, exported.stderr
    return cli(None, "verify", "audit", str(pack))


def refused(target: Target, out: Path, seq: int, contains: str) -> str:
    """`verify audit` fails with one error line naming entry `seq` and saying `contains`."""
    line = assert_one_error(verify_pack(target, out), 1, contains)
    assert f"(seq {seq})" in line, line
    return line


def _plan_entry(ws: Path, plan_id: str) -> Entry:
    return next(e for e in entries(ws) if e["type"] == "ceremony.planned"
                and e["ceremony"] == plan_id)


def _approval(ws: Path, plan_id: str, officer: str) -> Entry:
    return next(e for e in entries(ws) if e["type"] == "ceremony.approved"
                and e["ceremony"] == plan_id and e["data"]["officer"] == officer)


def _started(plan_id: str, officers: Sequence[str] = ("alice", "bob")) -> Entry:
    return _entry("ceremony.started", {"plan_id": plan_id, "officers": list(officers)}, plan_id)


def _kid(ws: Path, state: str) -> str:
    """A demo-api key now in `state` (the ledger's own key entries, replayed)."""
    states: dict[str, str] = {}
    for e in entries(ws):
        if e["type"] == "key.generated" and e["data"]["keyset"] == "demo-api":
            states[e["data"]["kid"]] = "generated"
        elif e["type"] == "key.state_changed" and e["data"]["keyset"] == "demo-api":
            states[e["data"]["kid"]] = e["data"]["to"]
    return next(kid for kid, s in states.items() if s == state)


def _replacing_carol(tmp_path: Path) -> tuple[str, ...]:
    """The officer-change parameters that revoke carol and enrol dave (a new card): the quorum
    in force needs three officers."""
    card = tmp_path / "dave.card"
    write_new_card("dave", "amber-falcon-river-stone-42x", card, unsafe_kdf_cost_for_tests=2**10)
    return ("--set", f"enroll={card}", "--set", "revoke=carol")


def _plan(target: Target, script: str, *extra: str, approvers: Sequence[str] = ()) -> str:
    """A plan the console makes, approved by `approvers` (the real commands)."""
    now = after(target.ws)
    plan_id = str(json.loads(target.ok("plan", script, "--now", now, "--json", *extra))["plan_id"])
    for officer in approvers:
        target.ok("approve", plan_id, "--officer", officer, "--now", now)
    return plan_id


# --- the genuine workspace ---------------------------------------------------------------------


def test_the_demo_pack_says_what_was_checked(target: Target, tmp_path: Path) -> None:
    result = verify_pack(target, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ceremonies: each plan approved by its quorum" in result.stdout
    assert "every state change inside an approved ceremony" in result.stdout
    assert "! emergency" not in result.stdout


def test_an_emergency_is_reported_until_a_routine_ceremony_ratifies_it(
        target: Target, tmp_path: Path) -> None:
    """A warning, not a failure: the console lets an emergency wait for the next ceremony."""
    ws = target.ws
    target.ok("run", "emergency-rotation", "--now", after(ws, 10), "--officer", "alice",
              "--officer", "bob")
    emergency = next(e["ceremony"] for e in entries(ws) if e["type"] == "ceremony.planned"
                     and e["data"]["plan"]["class"] == "emergency")
    waiting = verify_pack(target, tmp_path / "before")
    assert waiting.returncode == 0, waiting.stderr
    assert f"! emergency ceremony {emergency} (emergency-rotation, completed" in waiting.stdout
    target.ok("run", "quarterly-rotation", "--now", after(ws, 81), "--officer", "alice",
              "--officer", "bob")
    ratified = verify_pack(target, tmp_path / "after")
    assert ratified.returncode == 0, ratified.stderr
    assert "! emergency" not in ratified.stdout


# --- (a) a destructive effect under a routine ceremony --------------------------------------


@pytest.mark.parametrize("effect", ["officer.revoked", "key.state_changed", "officer.enrolled"])
def test_a_destructive_effect_in_a_routine_ceremony_is_refused(
        approved: tuple[Target, ApprovedPlan], tmp_path: Path, effect: str) -> None:
    """The export-only plan's two routine approvals are genuine; the insider starts it and
    appends what only a destructive action writes (3 of 3, and a plan that names it)."""
    target, plan = approved
    ws = target.ws
    data: dict[str, Any] = {
        "officer.revoked": {"name": "carol", "reason": "left"},
        "key.state_changed": {"keyset": "demo-api", "kid": _kid(ws, "retired"),
                              "from": "retired", "to": "destroyed", "reason": "cleanup"},
        "officer.enrolled": _new_officer("mallory"),
    }[effect]
    _, seq = append_cosigned(ws, [_started(plan.plan_id), _entry(effect, data, plan.plan_id)])
    line = refused(target, tmp_path, seq, "needs the destructive quorum")
    assert plan.plan_id in line and "routine quorum 2 of 3" in line


def test_a_plan_stored_with_a_lower_class_than_its_actions_need_is_refused(
        target: Target, tmp_path: Path) -> None:
    """A revocation planned as routine (its digest computed right) never counts as planned."""
    ws = target.ws
    genuine = _plan_entry(ws, _plan(target, "officer-change", *_replacing_carol(tmp_path)))
    forged = json.loads(json.dumps(genuine["data"]["plan"]))
    forged["id"] = "f0f0f0f0f0f0"
    forged["class"], forged["quorum"] = "routine", {"m": 2, "n": 3}
    rows = entries(ws)
    forged["ledger"] = {"size": len(rows),
                        "root": base64.b64encode(root([leaf(canonical(e))
                                                       for e in rows])).decode()}
    made = datetime.strptime(when_appended(ws), "%Y-%m-%dT%H:%M:%SZ")
    forged["created_at"] = made.strftime("%Y-%m-%dT%H:%M:%SZ")
    forged["expires_at"] = (made + timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha256(canonical(forged)).hexdigest()
    (seq,) = append_cosigned(ws, [_entry("ceremony.planned", {"plan": forged, "digest": digest},
                                         forged["id"])])
    refused(target, tmp_path, seq, "actions need the destructive quorum 3 of 3")


# --- (b) too few, unknown, revoked or duplicated approvals ----------------------------------


def test_a_destructive_ceremony_started_with_routine_approvals_is_refused(
        target: Target, tmp_path: Path) -> None:
    """An officer change planned by the console (destructive, 3 of 3) and approved by two: the
    insider starts it anyway and revokes carol."""
    plan_id = _plan(target, "officer-change", *_replacing_carol(tmp_path),
                    approvers=("alice", "bob"))
    seq, _ = append_cosigned(target.ws, [
        _started(plan_id), _entry("officer.revoked", {"name": "carol", "reason": "left"},
                                  plan_id)])
    refused(target, tmp_path, seq, "approvals of 2 of the 3 officers its class needs")


def test_an_approval_by_an_unknown_officer_is_refused(
        approved: tuple[Target, ApprovedPlan], tmp_path: Path) -> None:
    target, plan = approved
    mallory = Ed25519PrivateKey.generate()
    signature = mallory.sign(b"key-ceremony-approval/v1\n" + plan.digest.encode())
    forged = _entry("ceremony.approved", {
        "plan_id": plan.plan_id, "officer": "mallory", "digest": plan.digest,
        "signature": _b64url(signature)}, plan.plan_id, actor="mallory")
    (seq,) = append_cosigned(target.ws, [forged])
    refused(target, tmp_path, seq, "no such officer is in force")


def test_an_approval_by_a_revoked_officer_is_refused(target: Target, tmp_path: Path) -> None:
    """Carol was revoked under the destructive quorum (a checkpoint covers it); she still holds
    her card and signs a new plan's digest: her approval never counts."""
    ws = target.ws
    target.ok("run", "officer-change", *_replacing_carol(tmp_path), *ALL_THREE, "--now",
              after(ws))
    plan_id = _plan(target, "export-only", approvers=("alice",))
    digest = _plan_entry(ws, plan_id)["data"]["digest"]
    signature = _card_key(ws, "carol").sign(b"key-ceremony-approval/v1\n" + digest.encode())
    forged = _entry("ceremony.approved", {
        "plan_id": plan_id, "officer": "carol", "digest": digest,
        "signature": _b64url(signature)}, plan_id, actor="carol")
    seq, _ = append_cosigned(ws, [forged, _started(plan_id, ("alice", "carol"))])
    refused(target, tmp_path, seq, "the officer was revoked")


def test_a_duplicated_approval_is_refused(target: Target, tmp_path: Path) -> None:
    """Alice's genuine approval recorded twice, to make a quorum of one officer."""
    plan_id = _plan(target, "export-only", approvers=("alice",))
    copy = {k: v for k, v in _approval(target.ws, plan_id, "alice").items()
            if k not in ("seq", "time")}
    seq, _ = append_cosigned(target.ws, [copy, _started(plan_id, ("alice",))])
    refused(target, tmp_path, seq, "alice approved plan")


# --- (c) an approval of another digest ------------------------------------------------------


@pytest.mark.parametrize("digest_of", ["the replayed plan", "this plan"])
def test_an_approval_replayed_from_another_plan_is_refused(
        target: Target, tmp_path: Path, digest_of: str) -> None:
    """Bob's genuine signature of the quarterly rotation's digest, recorded as his approval of a
    new plan that alice alone approved: with the old digest it approves another plan; with
    the new plan's digest its signature does not verify."""
    ws = target.ws
    quarterly = next(e["ceremony"] for e in entries(ws) if e["type"] == "ceremony.planned"
                     and e["data"]["plan"]["script"]["name"] == "quarterly-rotation")
    replayed = _approval(ws, quarterly, "bob")["data"]
    plan_id = _plan(target, "export-only", approvers=("alice",))
    digest = (replayed["digest"] if digest_of == "the replayed plan"
              else _plan_entry(ws, plan_id)["data"]["digest"])
    forged = _entry("ceremony.approved", {**replayed, "plan_id": plan_id, "digest": digest},
                    plan_id, actor="bob")
    seq, _ = append_cosigned(ws, [forged, _started(plan_id)])
    refused(target, tmp_path, seq, "approves another digest" if digest_of == "the replayed plan"
            else "signature does not verify")


# --- (d) a state change with no ceremony ----------------------------------------------------


@pytest.mark.parametrize("kind", ["officer.enrolled", "key.generated", "pin.resplit"])
def test_a_state_change_with_no_ceremony_after_init_is_refused(
        target: Target, tmp_path: Path, kind: str) -> None:
    ws = target.ws
    model = next(e for e in entries(ws) if e["type"] == kind)
    data = dict(model["data"])
    if kind == "officer.enrolled":  # a new name and keys (the registry refuses a repeat)
        data = _new_officer("mallory")
    (seq,) = append_cosigned(ws, [_entry(kind, data, None)])
    refused(target, tmp_path, seq, f"{kind} with no ceremony")


# --- (e) a plan whose bytes are not its digest -----------------------------------------------


def test_a_plan_edited_under_its_digest_is_refused(target: Target, tmp_path: Path) -> None:
    """The quarterly rotation's plan, edited in place (one more action) under the digest the
    officers approved; the history is re-hashed and every checkpoint re-signed by alice and
    bob. The approvals still verify over the recorded digest: the plan's bytes betray it."""
    ws = target.ws
    edited: list[int] = []

    def change(entry: Entry) -> Entry | None:
        if entry["type"] != "ceremony.planned" or \
                entry["data"]["plan"]["script"]["name"] != "quarterly-rotation":
            return None
        plan = entry["data"]["plan"]
        plan["actions"].append({"n": len(plan["actions"]) + 1, "action": "note",
                                "description": "note", "text": "nothing to see"})
        edited.append(int(entry["seq"]))
        return entry

    forge_history(ws, change, [(name, _card_key(ws, name)) for name in ("alice", "bob")])
    (seq,) = edited
    refused(target, tmp_path, seq, "is not the SHA-256 of the plan's JCS bytes")


def test_the_appending_tool_makes_packs_the_verifier_accepts(
        approved: tuple[Target, ApprovedPlan], tmp_path: Path) -> None:
    """Control: what the attacks append is refused for what it says, not for how it is
    written: the approved plan started (its genuine approvals reach its quorum) and a key
    change inside it verify."""
    target, plan = approved
    kid = _kid(target.ws, "published")
    append_cosigned(target.ws, [_started(plan.plan_id), _entry(
        "key.state_changed", {"keyset": "demo-api", "kid": kid, "from": "published",
                              "to": "active", "reason": "test"}, plan.plan_id)])
    result = verify_pack(target, tmp_path)
    assert result.returncode == 0, result.stderr

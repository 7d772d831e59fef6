"""Attacks on what a plan is: its stored bytes, its digest, its approvals, the policy under it.

Sealed-trust issue, items 1, 2 and 9. Before the plan covered its inputs and was re-derived at
every step, the first attack ran the edited steps (a new officer given the whole PIN) and
`verify audit` passed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable

import pytest

from tests.integration.ceremony_helpers import after
from tests.security.conftest import ApprovedPlan, Target
from tests.security.support import (
    assert_refused,
    canonical,
    entries,
    rewrite_entries,
)

pytestmark = pytest.mark.hsm

APPROVERS = ("--officer", "alice", "--officer", "bob")
INTRUDER_ACTIONS = [
    {"action": "revoke_officer", "description": "revoke officer carol", "n": 1,
     "officer": "carol"},
    {"action": "checkpoint", "description": "checkpoint cosigned by the approving officers",
     "n": 2},
]
"""What the insider substitutes for an export: carol revoked under a routine quorum."""
HARMLESS_ACTIONS = [
    {"action": "checkpoint", "description": "checkpoint cosigned by the approving officers",
     "n": 1},
]
"""A substitute the plan's own rules accept (routine actions only): only the officers' digest
words tell it from the plan they were shown."""


def _plan(target: Target, script: str = "export-only") -> tuple[dict[str, object], str]:
    now = after(target.ws)
    return json.loads(target.ok("plan", script, "--now", now, "--json")), now


def _substitute(plan_id: object, *, recompute_digest: bool,
                actions: list[dict[str, object]] = INTRUDER_ACTIONS,
                ) -> Callable[[dict[str, object]], dict[str, object] | None]:
    def change(entry: dict[str, object]) -> dict[str, object] | None:
        if entry["type"] != "ceremony.planned" or entry["ceremony"] != plan_id:
            return None
        data = entry["data"]
        assert isinstance(data, dict)
        data["plan"]["actions"] = actions
        if recompute_digest:
            data["digest"] = hashlib.sha256(canonical(data["plan"])).hexdigest()
        return entry

    return change


def _carol_still_an_officer(target: Target) -> None:
    assert not [e for e in entries(target.ws) if e["type"] == "officer.revoked"]


@pytest.mark.parametrize(("rehash", "recompute_digest", "names"), [
    # The bytes edited, the stored leaf hash left stale: opening the ledger sees it.
    (False, False, "entry"),
    # Leaf hashes and tree recomputed, the digest field left: the plan is re-hashed (the
    # authorization replay, before anything else, finds the digest is not the plan's).
    (True, False, "is not the SHA-256 of the plan's JCS bytes"),
    # Everything recomputed, digest too: a revocation in a plan that asks for the routine
    # quorum is not a plan the console makes (and the officers' signatures are over the old
    # digest).
    (True, True, "its actions need the destructive quorum"),
], ids=["stale-leaf-hash", "tree-recomputed", "digest-recomputed"])
def test_plan_edited_after_approval_does_not_run(approved: tuple[Target, ApprovedPlan],
                                                 rehash: bool, recompute_digest: bool,
                                                 names: str) -> None:
    target, plan = approved
    changed = rewrite_entries(target.ws, _substitute(plan.plan_id,
                                                     recompute_digest=recompute_digest),
                              rehash=rehash)
    assert len(changed) == 1
    assert_refused(target.ws, lambda: target.cli("execute", plan.plan_id, *APPROVERS,
                                                 "--now", plan.now),
                   contains=names, spy_log=target.spy_log)
    _carol_still_an_officer(target)
    assert target.logins() == 0


def _swap_then_approve(target: Target, actions: list[dict[str, object]], contains: str
                      ) -> tuple[str, Callable[[], subprocess.CompletedProcess[str]]]:
    """Plan an export, swap its stored actions for `actions` (digest, leaf hashes and tree
    recomputed), then approve with the words heard at planning: refused, saying `contains`.
    Returns the error line and the approval command."""
    plan, now = _plan(target)
    rewrite_entries(target.ws, _substitute(plan["plan_id"], recompute_digest=True,
                                           actions=actions), rehash=True)
    heard = " ".join(plan["words"][:2])  # type: ignore[index]

    def approve() -> subprocess.CompletedProcess[str]:
        return target.cli("approve", str(plan["plan_id"]), "--officer", "alice", "--now", now,
                          "--words", heard)

    line = assert_refused(target.ws, approve, contains=contains, spy_log=target.spy_log)
    assert not [e for e in entries(target.ws)
                if e["type"] == "ceremony.approved" and e["ceremony"] == plan["plan_id"]]
    return line, approve


def test_plan_edited_between_plan_and_approve_cannot_be_signed_with_the_words_shown(
        target: Target) -> None:
    """The officers compared the words at planning; the insider then swaps the plan and its
    digest. Approving with the words they heard is refused: the approval signs what is stored
    now, and the words are checked against it."""
    line, approve = _swap_then_approve(target, HARMLESS_ACTIONS, "digest words")
    assert "not this plan's" in line
    # What approve showed before asking is the substituted plan: one action, no export.
    shown = approve()
    assert "checkpoint cosigned" in shown.stdout + shown.stderr
    assert "export the" not in shown.stdout + shown.stderr


def test_a_destructive_plan_swapped_in_before_approval_is_refused_as_not_the_consoles(
        target: Target) -> None:
    """The same swap with carol's revocation under the routine quorum: refused before any
    card is asked for, naming the plan entry."""
    line, _ = _swap_then_approve(target, INTRUDER_ACTIONS,
                                 "its actions need the destructive quorum")
    assert "(ceremony.planned)" in line


def test_an_approval_copied_from_another_plan_does_not_count(
        approved: tuple[Target, ApprovedPlan]) -> None:
    """Approvals are signatures over one digest: copying alice's and bob's approval entries of
    an export onto a second plan (tree recomputed) approves nothing."""
    target, first = approved
    target.ok("resume", "--abort", "--officer", "alice", "--now", first.now)
    second, now = _plan(target)
    copies = [e for e in entries(target.ws)
              if e["type"] == "ceremony.approved" and e["ceremony"] == first.plan_id]
    assert len(copies) == 2
    # The insider rewrites the two approvals to name the second plan.
    def retarget(entry: dict[str, object]) -> dict[str, object] | None:
        if entry["type"] != "ceremony.approved" or entry["ceremony"] != first.plan_id:
            return None
        entry["ceremony"] = second["plan_id"]
        data = entry["data"]
        assert isinstance(data, dict)
        for key in ("plan_id", "digest"):
            if key in data:
                data[key] = second["plan_id"] if key == "plan_id" else second["digest"]
        return entry

    rewrite_entries(target.ws, retarget, rehash=True)
    assert_refused(target.ws, lambda: target.cli("execute", str(second["plan_id"]), *APPROVERS,
                                                 "--now", now),
                   contains="", spy_log=target.spy_log)
    assert target.logins() == 0


@pytest.mark.parametrize(("old", "new"), [
    ('bundle_lifetime = "120d"', 'bundle_lifetime = "36500d"'),
    ('destruction_wait = "30d"', 'destruction_wait = "0d"'),
    ('install_delay = "3d"', 'install_delay = "0s"'),
], ids=["bundle-lifetime", "destruction-wait", "install-delay"])
def test_policy_edited_after_approval_refuses_and_names_the_change(
        approved: tuple[Target, ApprovedPlan], old: str, new: str) -> None:
    target, plan = approved
    now = plan.now
    policy = target.ws / "policy.toml"
    text = policy.read_text()
    assert old in text
    policy.write_text(text.replace(old, new))
    for args in (("execute", plan.plan_id, *APPROVERS, "--now", now),
                 ("plan", "export-only", "--now", now)):
        assert_refused(target.ws, lambda a=args: target.cli(*a),  # type: ignore[misc]
                       contains="policy.toml", spy_log=target.spy_log)
    # `status` still works and shows the exact difference, so the officers can judge it.
    status = target.ok("status")
    assert "policy.toml" in status and new.split(" = ")[0] in status
    assert target.logins() == 0


def test_policy_edited_during_an_interrupted_ceremony_stops_resume(
        approved: tuple[Target, ApprovedPlan]) -> None:
    """A crash inside the export step, a policy edit, then `resume`: refused, nothing more runs
    (before, `resume` finished the ceremony under the edited policy)."""
    target, plan = approved
    now = plan.now
    crashed = target.cli("execute", plan.plan_id, *APPROVERS, "--now", now,
                         CEREMONY_UNSAFE_CRASH_AT="intent:2")
    assert crashed.returncode == -9, crashed.stderr
    policy = target.ws / "policy.toml"
    policy.write_text(policy.read_text().replace('bundle_lifetime = "120d"',
                                                 'bundle_lifetime = "36500d"'))
    logins = target.logins()
    assert_refused(target.ws, lambda: target.cli("resume", *APPROVERS, "--now", now),
                   contains="policy.toml")
    assert target.logins() == logins

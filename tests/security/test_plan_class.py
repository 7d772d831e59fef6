"""A plan written into the ledger by an insider (a `ceremony.planned` entry, tree recomputed:
entries after the last checkpoint are signed by nobody) must not lower what the console fixes
in code: the quorum class each action needs (DESIGN.md §6), the quorum the ledger puts in force
for that class, and a plan's 24-hour life.

Before the review re-derived these, the officers approving such a plan saw "routine quorum 2 of
3" over a destructive action, and two of them revoked the third although revocations need the
destructive quorum (3 of 3 in the demo).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from console.ceremony.plan import Plan
from console.quorum.words import digest_words
from tests.integration.ceremony_helpers import after, assert_one_error
from tests.security.conftest import Target
from tests.security.support import canonical, entries, rewrite_entries

pytestmark = pytest.mark.hsm

APPROVERS = ("alice", "bob")
REVOKE_CAROL = [
    {"action": "revoke_officer", "description": "revoke officer carol", "n": 1,
     "officer": "carol"},
    {"action": "checkpoint", "description": "checkpoint cosigned by the approving officers",
     "n": 2},
]


def _forge(plan_id: str, change: Callable[[dict[str, object]], None]
           ) -> Callable[[dict[str, object]], dict[str, object] | None]:
    def edit(entry: dict[str, object]) -> dict[str, object] | None:
        if entry["type"] != "ceremony.planned" or entry["ceremony"] != plan_id:
            return None
        data = entry["data"]
        assert isinstance(data, dict)
        change(data["plan"])
        data["digest"] = hashlib.sha256(canonical(data["plan"])).hexdigest()
        return entry

    return edit


def _forged_plan(target: Target, change: Callable[[dict[str, object]], None]
                 ) -> tuple[str, str, str]:
    """An export-only plan, rewritten by the insider before anyone approved it; returns its
    id, the words the officers read on the forged plan, and the time."""
    now = after(target.ws)
    plan = json.loads(target.ok("plan", "export-only", "--now", now, "--json"))
    rewrite_entries(target.ws, _forge(plan["plan_id"], change), rehash=True)
    stored = next(e for e in entries(target.ws)
                  if e["type"] == "ceremony.planned" and e["ceremony"] == plan["plan_id"])
    _, digest = Plan.from_stored(stored["data"]["plan"])  # type: ignore[index]
    return plan["plan_id"], " ".join(digest_words(digest)[:2]), now


def _approve_and_execute(target: Target, plan_id: str, words: str, now: str) -> list[str]:
    """What the officers do, reading the forged plan's own words; the first error line."""
    errors = []
    for officer in APPROVERS:
        result = target.cli("approve", plan_id, "--officer", officer, "--now", now,
                            "--words", words)
        if result.returncode:
            errors.append(assert_one_error(result, (1, 2)))
    result = target.cli("execute", plan_id, *[a for o in APPROVERS for a in ("--officer", o)],
                        "--now", now, "--words", words)
    if result.returncode:
        errors.append(assert_one_error(result, (1, 2)))
    return errors


def test_a_destructive_action_in_a_plan_stored_as_routine_is_refused(target: Target) -> None:
    def revoke_carol(plan: dict[str, object]) -> None:
        plan["actions"] = REVOKE_CAROL  # class and quorum left as export-only's: routine 2/3

    plan_id, words, now = _forged_plan(target, revoke_carol)
    errors = _approve_and_execute(target, plan_id, words, now)
    assert not [e for e in entries(target.ws) if e["type"] == "officer.revoked"]
    assert errors and "destructive" in errors[0]


def test_a_plan_stored_with_a_smaller_quorum_than_its_class_is_refused(target: Target) -> None:
    def one_of_three(plan: dict[str, object]) -> None:
        plan["quorum"] = {"m": 1, "n": 3}

    plan_id, words, now = _forged_plan(target, one_of_three)
    result = target.cli("approve", plan_id, "--officer", "alice", "--now", now, "--words", words)
    assert_one_error(result, (1, 2), "quorum")


def test_a_plan_stored_with_a_life_longer_than_a_day_is_refused(target: Target) -> None:
    def ten_years(plan: dict[str, object]) -> None:
        created = datetime.fromisoformat(str(plan["created_at"]).replace("Z", "+00:00"))
        plan["expires_at"] = (created + timedelta(days=3650)).strftime("%Y-%m-%dT%H:%M:%SZ")

    plan_id, words, now = _forged_plan(target, ten_years)
    result = target.cli("approve", plan_id, "--officer", "alice", "--now", now, "--words", words)
    assert_one_error(result, (1, 2), "expire")

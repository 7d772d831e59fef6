"""SIGKILL at every step boundary of a quarterly rotation, then `ceremony resume`.

A prepared demo workspace holds an approved quarterly-rotation plan. Each run copies it and
executes the plan with CEREMONY_UNSAFE_CRASH_AT=<point>:<step>, so the console kills itself
(SIGKILL, as a power cut) at the `intent`, `effect` or `done` boundary of action <step>.
After the crash: no half-written export is visible, `ceremony reconcile` explains what it sees
(only orphans of the interrupted step), `ceremony resume` completes the ceremony, and then the
token holds every key exactly once (private and public), the ledger and token agree, the
result equals an uninterrupted run's, the audit pack verifies, and re-running `resume` or
`execute` changes nothing.

Every boundary is crashed once in `make test` (CRASH_REPEATS=5 under `make soak`; kills at
random instants are tests/reliability/test_kills_anywhere.py's); steps that only change the
ledger have no `intent` boundary: their result and effect are one SQLite transaction. The first
run of each boundary also verifies the audit pack and that re-running `resume`/`execute`
changes nothing, and asks `reconcile` to explain the state the crash left.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ceremony_helpers import (
    after,
    assert_one_error,
    check_manifest,
    cli,
    clone,
    export_dirs,
    inspect,
    ledger_rows,
    make_demo,
    ok,
    verify_everything,
)

pytestmark = [pytest.mark.hsm, pytest.mark.slow]

OFFICERS = ("--officer", "alice", "--officer", "bob")
EXPECTED_ACTIONS = ["reconcile", "generate", "self_test", "export_bundle", "checkpoint"]
"""Retire, activate, publish and unpublish are changes of the export_bundle step: they take
effect in the transaction that records the bundle showing them."""
WITH_INTENT = {"generate", "export_bundle"}
POINTS = ("intent", "effect", "done")
CRASH_REPEATS = int(os.environ.get("CRASH_REPEATS", "1"))


@dataclass(frozen=True)
class Prepared:
    root: Path
    plan_id: str
    now: str
    actions: list[dict[str, Any]]
    reference: dict[str, Any]  # what an uninterrupted run leaves


def _fingerprint(ws: Path, seen: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a completed ceremony left: key states per keyset and the visible export folders."""
    seen = seen if seen is not None else inspect(ws)
    states = Counter((k["keyset"], k["state"]) for k in seen["keys"])
    return {"states": sorted(states.items()), "exports": [p.name for p in export_dirs(ws)]}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    base = tmp_path_factory.mktemp("crash")
    root = clone(make_demo(base / "demo"), base / "prepared")
    now = after(root, 91)
    plan = json.loads(ok(root, "plan", "quarterly-rotation", "--now", now, "--json"))
    for officer in ("alice", "bob"):
        ok(root, "approve", plan["plan_id"], "--officer", officer, "--now", now)
    reference = clone(root, base / "reference")
    ok(reference, "execute", plan["plan_id"], *OFFICERS, "--now", now)
    fingerprint = _fingerprint(reference)
    assert fingerprint["exports"] == ["1", "2", "3"]
    yield Prepared(root, plan["plan_id"], now, plan["actions"], fingerprint)


def test_the_plan_has_the_expected_steps(prepared: Prepared) -> None:
    assert [a["action"] for a in prepared.actions] == EXPECTED_ACTIONS
    assert [a["n"] for a in prepared.actions] == list(range(1, len(EXPECTED_ACTIONS) + 1))


def _visible_exports_complete(ws: Path) -> None:
    """Every visible export folder is whole (hidden .partial-* folders are allowed)."""
    exports = export_dirs(ws)
    assert [int(p.name) for p in exports] == list(range(1, len(exports) + 1))
    for export in exports:
        check_manifest(export)


def _explained(ws: Path, point: str, action: str) -> None:
    """`ceremony reconcile` describes the state a crash left: only the interrupted step's
    orphan, if any, and a non-zero exit while there is one."""
    explained = cli(ws, "reconcile", "--json")
    assert "Traceback" not in explained.stderr
    report = json.loads(explained.stdout)
    assert {f["kind"] for f in report["findings"]} <= {"orphan"}, report
    assert explained.returncode == (0 if report["clean"] else 1)
    if report["findings"]:
        assert (action, point) == ("generate", "effect"), report


def _crash_once(prepared: Prepared, ws: Path, point: str, n: int, action: str, *,
                thorough: bool, explain: bool) -> None:
    clone(prepared.root, ws)
    crashed = cli(ws, "execute", prepared.plan_id, *OFFICERS, "--now", prepared.now,
                  env={"CEREMONY_UNSAFE_CRASH_AT": f"{point}:{n}"})
    if point == "intent" and action not in WITH_INTENT:
        # Ledger-only steps write their result in one transaction: no intent boundary.
        assert crashed.returncode in (0, -9), crashed.stderr
        if crashed.returncode == 0:
            assert _fingerprint(ws) == prepared.reference
            return
    else:
        assert crashed.returncode == -9, (point, n, crashed.returncode, crashed.stderr[-2000:])
    if point == "done" and n == len(EXPECTED_ACTIONS):
        # The last step's transaction also records the completion: nothing is left to resume.
        assert _fingerprint(ws) == prepared.reference
        assert_one_error(cli(ws, "resume", *OFFICERS, "--now", prepared.now), 1,
                         "no interrupted ceremony")
        return

    # Straight after the crash: nothing half-written is visible.
    _visible_exports_complete(ws)
    if explain:
        _explained(ws, point, action)

    resumed = ok(ws, "resume", *OFFICERS, "--now", prepared.now)
    assert "completed" in resumed

    # The result is the uninterrupted run's; every key is on the token once, in full.
    seen = inspect(ws)
    assert _fingerprint(ws, seen) == prepared.reference
    assert seen["reconcile"]["clean"], seen["reconcile"]
    for cka_id, objects in seen["objects"].items():
        assert sorted(c for c, _ in objects) == ["private key", "public key"], cka_id
    labels = [objects[0][1] for objects in seen["objects"].values()]
    assert len(labels) == len(set(labels)), "a key was generated twice"
    assert set(seen["objects"]) == {k["cka_id"] for k in seen["keys"]
                                    if k["state"] != "destroyed"}
    _visible_exports_complete(ws)

    if thorough:
        verify_everything(ws, ws.parent / f"audit-{point}-{n}")
        size = len(ledger_rows(ws))
        again = cli(ws, "resume", *OFFICERS, "--now", prepared.now)
        assert_one_error(again, 1, "no interrupted ceremony")
        again = cli(ws, "execute", prepared.plan_id, *OFFICERS, "--now", prepared.now)
        assert_one_error(again, 1, "was executed")
        assert len(ledger_rows(ws)) == size, "re-running a completed ceremony wrote entries"


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("n", range(1, len(EXPECTED_ACTIONS) + 1))
def test_sigkill_then_resume(prepared: Prepared, tmp_path: Path, point: str, n: int) -> None:
    action = EXPECTED_ACTIONS[n - 1]
    # One run documents that a ledger-only step has no intent boundary (or crashes if one is
    # added); every real boundary is crashed CRASH_REPEATS times.
    repeats = 1 if point == "intent" and action not in WITH_INTENT else CRASH_REPEATS
    for i in range(repeats):
        _crash_once(prepared, tmp_path / f"run-{i}", point, n, action, thorough=(i == 0),
                    explain=(i == 0))

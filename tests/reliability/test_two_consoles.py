"""Two consoles at once on one workspace: two CLIs racing to plan, to approve and to execute
the same approved plan, the second started at a random instant (seeded, printed) of the first.

Whatever the timing: one proceeds; the other either proceeds harmlessly (an approval already
recorded is found, not recorded again) or gets exactly one `ceremony: error:` line (the
workspace is busy, the plan was executed, an overlapping plan is open) with no traceback; and
nothing is recorded twice (one plan, one approval per officer, one `ceremony.started`, each
step done once, one completion, one key per label). After an execute race, every check of
`fault_kit.after_recovery` holds (the result equals an uninterrupted run's, verify audit,
integrity_check, re-runs change nothing).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import after, clone, ledger_entries, make_demo
from tests.reliability.fault_kit import (
    Figures,
    ForkServer,
    Prepared,
    Run,
    after_recovery,
    measure,
    prepare,
)

pytestmark = [pytest.mark.hsm, pytest.mark.slow]

ROUNDS = int(os.environ.get("CEREMONY_RACE_ROUNDS", "8"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prepared, Path,
                                                                        ForkServer, ForkServer]]:
    base = tmp_path_factory.mktemp("race")
    demo = make_demo(base / "demo")
    prepared = prepare("rotation", base / "prepared", demo)
    with ForkServer(base / "a") as first, ForkServer(base / "b") as second:
        measure(first, prepared, base / "a")
        yield prepared, demo, first, second


def _race(first: ForkServer, second: ForkServer, ws: Path, args: tuple[str, ...],
          delay: float) -> tuple[Run, Run]:
    results: dict[str, Run] = {}

    def go(name: str, server: ForkServer, wait: float) -> None:
        time.sleep(wait)
        results[name] = server.run(ws, *args, timeout=60)

    threads = [threading.Thread(target=go, args=("a", first, 0.0)),
               threading.Thread(target=go, args=("b", second, delay))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results["a"], results["b"]


def _loser_line(run: Run) -> str:
    assert "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("ceremony: error:")]
    assert run.code == 1 and len(errors) == 1, (run.code, run.stderr[-3000:])
    return errors[0]


def _kind(line: str) -> str:
    for word in ("busy", "was executed", "already started", "still open"):
        if word in line:
            return word
    return line


def test_two_consoles_race(setup: tuple[Prepared, Path, ForkServer, ForkServer],
                           tmp_path: Path) -> None:
    prepared, demo, first, second = setup
    seed = int(os.environ.get("CEREMONY_RACE_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    figures = Figures(f"two consoles (seed {seed})")
    losers: Counter[str] = Counter()
    for i in range(ROUNDS):
        delay = rng.uniform(0.0, prepared.duration)

        # Planning: one plan is made.
        ws = clone(demo, tmp_path / f"plan-{i}")
        now = after(ws, 91)
        a, b = _race(first, second, ws, ("plan", "quarterly-rotation", "--now", now, "--json"),
                     delay / 4)
        made = [r for r in (a, b) if r.code == 0]
        assert len(made) == 1, (a.stderr[-800:], b.stderr[-800:])
        losers["plan: " + _kind(_loser_line(a if a.code else b))] += 1
        planned = [e for e in ledger_entries(ws) if e["type"] == "ceremony.planned"]
        assert planned[-1]["data"]["plan"]["id"] == json.loads(made[0].stdout)["plan_id"]
        plan_id = json.loads(made[0].stdout)["plan_id"]

        # Approving: alice from two consoles; her approval is recorded once.
        a, b = _race(first, second, ws, ("approve", plan_id, "--officer", "alice", "--now",
                                         now), delay / 4)
        for run in (a, b):
            if run.code:
                losers["approve: " + _kind(_loser_line(run))] += 1
            else:
                assert "Traceback" not in run.stderr
        approvals = [e for e in ledger_entries(ws) if e["type"] == "ceremony.approved"
                     and e["data"]["plan_id"] == plan_id]
        assert [e["data"]["officer"] for e in approvals] == ["alice"], approvals
        shutil.rmtree(ws)

        # Executing the same approved plan.
        ws = clone(prepared.root, tmp_path / f"exec-{i}")
        a, b = _race(first, second, ws, prepared.execute_args(), delay)
        assert not a.hung and not b.hung
        done = [r for r in (a, b) if r.code == 0]
        assert len(done) == 1, (a.code, a.stderr[-1500:], b.code, b.stderr[-1500:])
        losers["execute: " + _kind(_loser_line(a if a.code else b))] += 1
        entries = [e for e in ledger_entries(ws) if e["data"].get("plan_id") == prepared.plan_id]
        kinds = Counter(e["type"] for e in entries)
        assert kinds["ceremony.started"] == 1 and kinds["ceremony.completed"] == 1, kinds
        steps = Counter(e["data"]["step"] for e in entries if e["type"] == "ceremony.step.done")
        assert set(steps.values()) == {1}, steps
        outcome = after_recovery(first, ws, prepared, tmp_path / "pack")
        figures.add("keys twice", len(outcome.keys_twice))
        figures.add("torn exports", len(outcome.torn))
        assert not outcome.keys_twice and not outcome.torn
        figures.add("races", 3)
        shutil.rmtree(ws)
    figures.add("commits lost", 0)
    figures.add("hangs", 0)
    print("\nthe second console's one line: " + "; ".join(
        f"{k} ×{n}" for k, n in sorted(losers.items())))
    figures.report()

"""A whole quarterly rotation driven by key presses on a real SoftHSM2 demo token, and key
presses handled during RSA-4096 generation on a worker.

Both run in one subprocess (`tests/tui/pilot_ceremony.py`): the demo token has its own
SOFTHSM2_CONF, which cannot be loaded into this pytest process (tests/conftest.py fixed another).
This test then checks the ledger itself, independently of what the TUI showed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from console.ledger import verify_note
from console.workspace import Workspace
from tests.tui.conftest import REPO, subprocess_env


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from tests.tui.conftest import make_demo

    root = make_demo(tmp_path_factory.mktemp("flow") / "demo")
    out = root.parent / "flow.json"
    run = subprocess.run([sys.executable, "-m", "tests.tui.pilot_ceremony", str(root), str(out)],
                         capture_output=True, text=True, timeout=240, env=subprocess_env(),
                         cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    return root, json.loads(out.read_text())


@pytest.mark.hsm
@pytest.mark.slow
def test_quarterly_rotation_by_key_presses(flow: tuple[Path, dict[str, Any]]) -> None:
    root, result = flow
    r = result["rotation"]
    assert r["script"] == "quarterly-rotation"
    assert r["errors"] == []
    assert set(r["approvals"]) == {"alice", "bob"}
    assert r["finished"] is True
    for action in ("generate", "activate", "retire", "publish", "checkpoint"):
        assert action in r["plan_text"]
    total = len(r["rows"])
    assert total >= 5 and all(status == "done" for _, status in r["rows"])
    # Every step reported started then done, through StepProgress messages: the starts in order,
    # the dones in order, each done after its start. A step whose record is held for the next
    # transaction (a self-test's verdict) is shown done once that transaction is durable, after
    # the next step started (`CeremonyRun.hold`).
    events = [tuple(e) for e in r["steps"]]
    assert sorted(events) == [(n, s) for n in range(1, total + 1) for s in ("done", "started")]
    assert [n for n, s in events if s == "started"] == list(range(1, total + 1))
    assert [n for n, s in events if s == "done"] == list(range(1, total + 1))
    assert all(events.index((n, "started")) < events.index((n, "done"))
               for n in range(1, total + 1))
    assert all(events.index((n, "done")) < events.index((n + 2, "started"))
               for n in range(1, total - 1))  # held for one step at most
    assert r["messages"][:2] == ["ApprovalRecorded", "ApprovalRecorded"]
    assert r["messages"][-1] == "CeremonyFinished"
    assert r["checkpoint_on_screen"] == r["checkpoint"]

    with Workspace.open(root) as ws:
        ledger = ws.ledger
        assert ledger.size > r["size_before"]
        ledger.verify_tree()
        completed = [e for e in ledger.entries(r["size_before"])
                     if e.type == "ceremony.completed"]
        assert len(completed) == 1 and completed[0].ceremony == r["plan_id"]
        approvers = {e.data["officer"] for e in ledger.entries(r["size_before"])
                     if e.type == "ceremony.approved"}
        assert approvers == {"alice", "bob"}
        assert ledger.latest_checkpoint() == r["checkpoint"]
        # The checkpoint on screen is the one both approving officers cosigned.
        officers = [_verifier(ws.config.officer(name)) for name in ("alice", "bob")]
        body = verify_note(r["checkpoint"], officers, required={"alice", "bob"},
                           origin=ws.config.origin)
        assert body.root == ledger.root(body.size)


def _verifier(officer: Any) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from console.ledger import parse_verifier_key, verifier_key

    key = Ed25519PublicKey.from_public_bytes(officer.ed25519)
    return parse_verifier_key(verifier_key(officer.name, key))


@pytest.mark.hsm
@pytest.mark.slow
def test_keys_handled_during_rsa4096_generation(flow: tuple[Path, dict[str, Any]]) -> None:
    _, result = flow
    r = result["responsiveness"]
    assert r["worker_state"] == "SUCCESS"
    assert r["rsa_bits"] and all(bits == 4096 for bits in r["rsa_bits"])
    modes = [(h["key"], h["mode"], h["help"]) for h in r["handled"]]
    assert modes == [("l", "ledger", False), ("e", "exports", False), ("o", "officers", False),
                     ("question_mark", "officers", True), ("escape", "officers", False),
                     ("d", "dashboard", False)]
    assert all(h["worker_running"] for h in r["handled"]), r["handled"]
    # The UI thread's timer kept firing while the HSM worked (how late it fired is a figure of
    # `make bench`, tests/bench/bench_responsiveness.py: no timed assertion in tests).
    assert r["ticks_while_generating"] >= 3, r

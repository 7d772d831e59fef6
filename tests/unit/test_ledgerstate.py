"""`LedgerState`: the session's state entries, read once and kept current with its own appends,
read again when another writer appended; and the same answers as a fresh replay."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from console.ceremony.actions import ExportBundle
from console.ceremony.journal import STATE_ENTRY_TYPES, extend_plans, replay_plans
from console.ceremony.ledgerstate import BundleChain, LedgerState
from console.ledger import Ledger
from tests.unit.plan_samples import sample_plan
from tests.unit.test_ledger_support import T0, new_ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = new_ledger(tmp_path)
    yield led
    led.close()


def _plan(ledger: Ledger, plan_id: str, minutes: int) -> None:
    plan = sample_plan(plan_id)
    ledger.append("ceremony.planned", {"plan": plan.to_dict(), "digest": plan.digest.hex()},
                  time=T0 + timedelta(minutes=minutes), actor="console", ceremony=plan.id)


class _Counting:
    """Counts the ledger's type-index reads."""

    def __init__(self, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        real = ledger.entries_of_type

        def counted(*types: str) -> Iterator[object]:
            self.reads += 1
            return real(*types)

        monkeypatch.setattr(ledger, "entries_of_type", counted)


def test_reads_once_and_follows_its_own_appends(ledger: Ledger,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _plan(ledger, "aaaaaaaaaaaa", 1)
    counting = _Counting(ledger, monkeypatch)
    state = LedgerState(ledger)
    assert set(state.plans()) == {"aaaaaaaaaaaa"}
    assert set(state.plans()) == {"aaaaaaaaaaaa"}
    state.append("ceremony.aborted", {"plan_id": "aaaaaaaaaaaa", "after_step": 0,
                                      "reason": "test"},
                 time=T0 + timedelta(minutes=2), actor="console", ceremony="aaaaaaaaaaaa")
    assert state.plans()["aaaaaaaaaaaa"].aborted_at is not None
    assert counting.reads == 1  # the append was kept, not read back


def test_reads_again_after_another_writer(ledger: Ledger,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _plan(ledger, "aaaaaaaaaaaa", 1)
    counting = _Counting(ledger, monkeypatch)
    state = LedgerState(ledger)
    assert set(state.plans()) == {"aaaaaaaaaaaa"}
    _plan(ledger, "bbbbbbbbbbbb", 2)  # not through `state`: another console
    assert set(state.plans()) == {"aaaaaaaaaaaa", "bbbbbbbbbbbb"}
    assert counting.reads == 2


def test_same_answers_as_a_fresh_replay(ledger: Ledger) -> None:
    state = LedgerState(ledger)
    state.entries()
    for i, plan_id in enumerate(("aaaaaaaaaaaa", "bbbbbbbbbbbb")):
        plan = sample_plan(plan_id)
        state.append("ceremony.planned", {"plan": plan.to_dict(), "digest": plan.digest.hex()},
                     time=T0 + timedelta(minutes=i + 1), actor="console", ceremony=plan.id)
    fresh = list(ledger.entries_of_type(*STATE_ENTRY_TYPES))
    assert [e.seq for e in state.entries()] == [e.seq for e in fresh]
    assert set(state.plans()) == set(replay_plans(fresh))
    assert [e.seq for e in state.of_type("officer.enrolled")] == [
        e.seq for e in fresh if e.type == "officer.enrolled"]


def _fixture_state_entries() -> list[object]:
    """The state entries of a real demo ledger (genesis and a quarterly rotation, with their
    exports and step journal): the TUI's fixture workspace, read-only."""
    import sqlite3

    from console.ledger.entry import parse_entry
    from tests.tui.snapshot_app import FIXTURE

    conn = sqlite3.connect(f"file:{FIXTURE / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT raw FROM entries ORDER BY seq").fetchall()
    finally:
        conn.close()
    entries = [parse_entry(bytes(raw)) for (raw,) in rows]
    return [e for e in entries if e.type in STATE_ENTRY_TYPES]


def _as_dict(records: dict[str, object]) -> dict[str, object]:
    return {k: dataclasses.asdict(v) for k, v in records.items()}  # type: ignore[call-overload]


def test_extending_plans_at_every_split_equals_a_fresh_replay() -> None:
    entries = _fixture_state_entries()
    whole = _as_dict(replay_plans(entries))  # type: ignore[arg-type]
    assert any(r["done"] for r in whole.values())  # the journal is in there
    for cut in range(0, len(entries) + 1, 3):
        before = replay_plans(entries[:cut])  # type: ignore[arg-type]
        handed_out = _as_dict(before)
        assert _as_dict(extend_plans(before, entries[cut:])) == whole  # type: ignore[arg-type]
        # A record handed out before the extension never changes under its holder.
        assert _as_dict(before) == handed_out


def test_bundle_chain_follows_recorded_and_intended_seqs(ledger: Ledger) -> None:
    state = LedgerState(ledger)
    assert state.bundle_chain("web") == BundleChain(0, None)
    when = T0 + timedelta(minutes=1)
    _plan(ledger, "aaaaaaaaaaaa", 1)
    state.append("ceremony.started", {"plan_id": "aaaaaaaaaaaa", "officers": ["alice"]},
                 time=when, actor="console", ceremony="aaaaaaaaaaaa")
    state.append("bundle.exported", {"keyset": "web", "seq": 1, "sha256": "ab" * 32,
                                     "path": "exports/web/1", "kids": []},
                 time=when, actor="console", ceremony="aaaaaaaaaaaa")
    assert state.bundle_chain("web") == BundleChain(1, "ab" * 32)
    # An export intended (then aborted) takes its seq for good; prev stays the recorded one.
    state.append("ceremony.step.intent", {"plan_id": "aaaaaaaaaaaa", "step": 2,
                                          "action": ExportBundle.kind, "keyset": "web",
                                          "seq": 2},
                 time=when, actor="console", ceremony="aaaaaaaaaaaa")
    assert state.bundle_chain("web") == BundleChain(2, "ab" * 32)
    assert state.bundle_chain("api") == BundleChain(0, None)
    # Kept incrementally, and the same as a state that reads the ledger afresh.
    assert LedgerState(ledger).bundle_chain("web") == state.bundle_chain("web")

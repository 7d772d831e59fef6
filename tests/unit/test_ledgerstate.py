"""`LedgerState`: the session's state entries, read once and kept current with its own appends,
read again when another writer appended; and the same answers as a fresh replay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from console.ceremony.journal import STATE_ENTRY_TYPES, replay_plans
from console.ceremony.ledgerstate import LedgerState
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

"""`Session.unlock_approver`, which the TUI uses to ask for cards again after they were wiped:
every check that needs no secret comes before any passphrase is asked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from console.ceremony.session import Session
from console.errors import QuorumError
from console.workspace import Workspace


class Cards:
    """Demo cards; records every passphrase the session asks for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.asked: list[str] = []

    def card_path(self, officer: str) -> Path:
        return self.root / "demo-cards" / f"{officer}.card"

    def passphrase(self, officer: str, attempt: int) -> str:
        self.asked.append(officer)
        return (self.root / "demo-cards" / f"{officer}.pass").read_text().strip()


def test_only_approvers_unlock_and_non_approvers_are_refused_before_any_passphrase(
        fresh_demo: Path) -> None:
    ws = Workspace.open(fresh_demo)
    try:
        last = ws.ledger.last_time()
        assert last is not None
        session = Session(ws, now=last + timedelta(days=91))
        view = session.plan("quarterly-rotation")
        cards = Cards(fresh_demo)
        session.approve(view.plan_id, "alice", cards, confirm=lambda v: None)
        cards.asked.clear()
        size = ws.ledger.size

        with pytest.raises(QuorumError, match=r"carol's approval of plan .* does not count"):
            session.unlock_approver(view.plan_id, "carol", cards)
        assert cards.asked == [] and ws.ledger.size == size  # nothing asked, nothing recorded

        card = session.unlock_approver(view.plan_id[:8], "alice", cards)
        assert card.name == "alice" and cards.asked == ["alice"]
        assert ws.ledger.size == size  # unlocking records nothing when it works
    finally:
        ws.close()

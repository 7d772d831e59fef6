"""App-wide messages: what thread workers post back to the UI thread (STYLE.md H.24-27).

Workers never touch widgets; they end by posting one of these. `post_message` is thread-safe.
Widget-owned messages live with their widget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from console.ceremony.progress import StepEvent
    from console.ceremony.review import PlanView
    from console.errors import ConsoleError
    from console.quorum.cards import UnlockedCard
    from console.tui.backend import Health

__all__ = [
    "ApprovalRecorded",
    "CeremonyFinished",
    "CeremonyNote",
    "HealthLoaded",
    "LedgerChanged",
    "OperationFailed",
    "PlanReady",
    "StepProgress",
]


@dataclass
class OperationFailed(Message):
    """A service refused or failed; `error.user_message()` is the line the CLI prints."""

    what: str
    error: ConsoleError


@dataclass
class HealthLoaded(Message):
    health: Health


@dataclass
class PlanReady(Message):
    planned: PlanView


@dataclass
class ApprovalRecorded(Message):
    officer: str
    status: str
    card: UnlockedCard | None
    """Kept in memory only until the ceremony runs, the screen is left, or the console idles."""


@dataclass
class LedgerChanged(Message):
    """Something was appended to the ledger (a plan, an approval, a run, an abort, or another
    console): the app refreshes the header and every screen re-reads what it shows."""

    what: str


@dataclass
class StepProgress(Message):
    event: StepEvent


@dataclass
class CeremonyNote(Message):
    text: str


@dataclass
class CeremonyFinished(Message):
    result: str
    checkpoint: str | None

"""App-wide messages: what thread workers post back to the UI thread (STYLE.md H.24-27).

Workers never touch widgets; they end by posting one of these. `post_message` is thread-safe.
Widget-owned messages live with their widget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from console.ceremony.progress import StepEvent
from console.errors import ConsoleError

__all__ = [
    "ApprovalRecorded",
    "CeremonyFinished",
    "CeremonyNote",
    "HealthLoaded",
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
    health: Any  # console.tui.backend.Health


@dataclass
class PlanReady(Message):
    planned: Any  # console.ceremony.service.PlannedCeremony


@dataclass
class ApprovalRecorded(Message):
    officer: str
    status: str
    card: Any  # UnlockedCard, kept in memory only until the ceremony runs


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

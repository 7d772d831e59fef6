"""The Ceremony screen's thread jobs: planning, and running (execute or resume) a plan with the
cards the dialogs unlocked, with the engine's progress turned into messages.

Each job calls one `Backend` method and ends by posting messages to the screen (a thread never
touches a widget): the result, or `OperationFailed` with the line the CLI would print. Every
ledger append is followed by `LedgerChanged` to the app, so that every screen re-reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from console.errors import ConsoleError
from console.tui.messages import (
    CeremonyFinished,
    CeremonyNote,
    LedgerChanged,
    OperationFailed,
    PlanReady,
    StepProgress,
)

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

    from console.ceremony.progress import StepEvent
    from console.quorum.cards import UnlockedCard
    from console.tui.backend import Backend


class TuiProgress:
    """The engine's ProgressSink for the TUI: every event becomes a message (thread-safe)."""

    def __init__(self, target: MessagePump) -> None:
        self._target = target

    def step(self, event: StepEvent) -> None:
        self._target.post_message(StepProgress(event))

    def message(self, text: str) -> None:
        self._target.post_message(CeremonyNote(text))


def plan_job(screen: MessagePump, app: MessagePump, backend: Backend, script: str,
             keyset: str | None) -> Callable[[], None]:
    """Plan `script` for `keyset`; posts `PlanReady` to the screen."""

    def job() -> None:
        try:
            planned = backend.plan(script, keyset)
        except ConsoleError as e:
            screen.post_message(OperationFailed("Planning the ceremony", e))
            return
        screen.post_message(PlanReady(planned))
        app.post_message(LedgerChanged("plan"))

    return job


def run_job(screen: MessagePump, backend: Backend, plan_id: str, cards: list[UnlockedCard], *,
            resume: bool) -> Callable[[], None]:
    """Execute (or resume) `plan_id`; posts progress, then `CeremonyFinished` (an empty result
    when it failed, after `OperationFailed`)."""
    progress = TuiProgress(screen)

    def job() -> None:
        try:
            if resume:
                result = backend.resume(plan_id, cards, progress)
            else:
                result = backend.execute(plan_id, cards, progress)
            checkpoint = backend.latest_checkpoint()
        except ConsoleError as e:
            screen.post_message(OperationFailed("Executing the ceremony", e))
            screen.post_message(CeremonyFinished("", None))
            return
        screen.post_message(CeremonyFinished(result, checkpoint))

    return job


def step_line(event: StepEvent) -> str | None:
    """The transcript's line for a step event (None for a step starting)."""
    if event.status == "started":
        return None
    mark = {"done": "✓", "skipped": "·", "failed": "✗"}.get(event.status, "?")
    detail = f" — {event.detail}" if event.detail else ""
    return (f"{mark} {event.n}/{event.total} {event.description} "
            f"({event.elapsed:.1f} s){detail}")

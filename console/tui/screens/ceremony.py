"""Ceremony: choose a script and keyset, review the plan and its digest, collect approvals one
officer at a time, run the steps with live progress, and show the closing checkpoint.

Every service call (plan, unlock + approve, execute) runs in a thread worker; the execute worker
is never exclusive (a thread cannot be cancelled) and the keys that start work are refused while
one runs. Unlocked cards stay in memory only until the ceremony has run.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, RichLog, Select, Static

from console.ceremony.progress import StepEvent
from console.clock import format_time
from console.errors import ConsoleError
from console.quorum import digest_words, grouped_hex
from console.tui.dialogs.approval import ApprovalDialog, ApprovalInput
from console.tui.dialogs.qr import QrDialog
from console.tui.messages import (
    ApprovalRecorded,
    CeremonyFinished,
    CeremonyNote,
    OperationFailed,
    PlanReady,
    StepProgress,
)
from console.tui.screens._base import ConsoleScreen
from console.tui.widgets.qr import QrCode
from console.tui.widgets.steps import StepList, StepRow


class TuiProgress:
    """The engine's ProgressSink for the TUI: every event becomes a message (thread-safe)."""

    def __init__(self, screen: CeremonyScreen) -> None:
        self._screen = screen

    def step(self, event: StepEvent) -> None:
        self._screen.post_message(StepProgress(event))

    def message(self, text: str) -> None:
        self._screen.post_message(CeremonyNote(text))


def _clock(when: datetime) -> str:
    return when.strftime("%H:%M UTC")


class CeremonyScreen(ConsoleScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "plan", "Plan"),
        Binding("a", "approve", "Approve"),
        Binding("x", "execute", "Execute"),
        Binding("w", "digest_qr", "Digest QR"),
        Binding("k", "checkpoint_qr", "Checkpoint QR", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.planned: Any = None
        self.approvals: dict[str, str] = {}
        self._cards: dict[str, Any] = {}
        self.running = False
        self.finished = False
        self.checkpoint: str | None = None
        self._choices_loaded = False

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="ceremony-body"):
            with Horizontal(id="choose"):
                yield Label("Script ", classes="field-label")
                yield Select([], id="script", prompt="script", compact=True)
                yield Label(" Keyset ", classes="field-label")
                yield Select([], id="keyset", prompt="keyset", compact=True)
                yield Label("  [p] plan", classes="hint")
            with Horizontal(id="plan-row"):
                with Vertical(id="plan-pane", classes="pane"):
                    yield Label("Plan", classes="pane-title", id="plan-title")
                    yield Static(Text("choose a script and a keyset, then press p", style="dim"),
                                 id="plan")
                with Vertical(id="digest-pane", classes="pane"):
                    yield Label("Digest", classes="pane-title")
                    yield Static("", id="digest")
            with Vertical(id="approvals-pane", classes="pane"):
                yield Label("Approvals", classes="pane-title", id="approvals-title")
                yield Static("", id="approvals")
            with Vertical(id="run-pane", classes="pane"):
                yield Label("Run", classes="pane-title")
                yield StepList(id="steps")
                yield RichLog(id="transcript", markup=False, wrap=True, max_lines=500)
            with Vertical(id="closing-pane", classes="pane"):
                yield Label("Closing checkpoint", classes="pane-title")
                with Horizontal():
                    yield Static("", id="checkpoint")
                    yield QrCode("", id="checkpoint-qr")

    def refresh_data(self) -> None:
        self.load("choices", lambda: (self.backend.scripts(), self.backend.keysets()),
                  "Reading ceremony scripts")

    def show_choices(self, value: tuple[list[str], list[str]]) -> None:
        scripts, keysets = value
        script = self.query_one("#script", Select)
        keyset = self.query_one("#keyset", Select)
        if self._choices_loaded:
            return
        self._choices_loaded = True
        script.set_options([(s, s) for s in scripts])
        if "quarterly-rotation" in scripts:
            script.value = "quarterly-rotation"
        keyset.set_options([(k, k) for k in keysets])
        if keysets:
            keyset.value = keysets[0]

    # --- plan ------------------------------------------------------------------------------

    def action_plan(self) -> None:
        if self.running:
            self.notify("a ceremony is running", severity="warning")
            return
        script = self.query_one("#script", Select).value
        keyset = self.query_one("#keyset", Select).value
        if not isinstance(script, str):
            self.notify("choose a script first", severity="warning")
            return
        chosen = keyset if isinstance(keyset, str) else None
        backend = self.backend

        def job() -> None:
            try:
                planned = backend.plan(script, chosen)
            except ConsoleError as e:
                self.post_message(OperationFailed("Planning the ceremony", e))
                return
            self.post_message(PlanReady(planned))

        self.run_worker(job, thread=True, exit_on_error=False, group="ceremony",
                        description=f"Planning {script}")

    @on(PlanReady)
    def _plan_ready(self, message: PlanReady) -> None:
        message.stop()
        self.planned = message.planned
        self.approvals.clear()
        self._cards.clear()
        self.finished = False
        plan = self.planned.record.plan
        lines = Text()
        for action in plan.actions:
            lines.append(f"{action.n:>2} ", style="bold")
            lines.append(action.description)
            lines.append("\n")
            for change in getattr(action, "changes", ()):
                lines.append(f"     {change.verb} {change.key.text} = {change.why}\n",
                             style="dim")
        for item in plan.deferred:
            # What the timing rules do not allow yet, and from when (the "why" of a wait).
            earliest = item.earliest[:16].replace("T", " ")
            lines.append(f" later: {item.action} {item.kid[:8]}… from {earliest} UTC\n",
                         style="yellow")
            lines.append(f"     = {item.why}\n", style="dim")
        for note in plan.notes:
            lines.append(f" note: {note}\n", style="dim")
        self.query_one("#plan", Static).update(lines)
        expires = format_time(plan.expires_at)[:16].replace("T", " ")
        self.query_one("#plan-title", Label).update(
            f"Plan · {plan.script} · {self.planned.plan_id[:8]} · expires {expires} UTC")
        digest = self.planned.digest
        self.query_one("#digest", Static).update(Text.assemble(
            (grouped_hex(digest), "bold"), "\n\n", (" ".join(digest_words(digest)), "italic"),
            "\n\n", ("[w] show as QR", "dim")))
        steps = self.query_one("#steps", StepList)
        steps.remove_children()
        steps.mount_all([StepRow(a.n, a.kind, a.description) for a in plan.actions])
        self.query_one("#transcript", RichLog).clear()
        self._log(f"planned {self.planned.plan_id} digest {digest.hex()[:16]}…")
        self._show_approvals()

    def _quorum(self) -> tuple[int, int]:
        if self.planned is None:
            return (0, 0)
        m, n = self.backend.quorum_for(self.planned.record.plan.ceremony_class)
        return int(m), int(n)

    def _show_approvals(self) -> None:
        m, n = self._quorum()
        cls = self.planned.record.plan.ceremony_class if self.planned is not None else ""
        self.query_one("#approvals-title", Label).update(
            f"Approvals · {cls} quorum {m} of {n}")
        line = Text()
        for name in self.backend.officer_names():
            if name in self.approvals:
                line.append(f"✓ {name} {self.approvals[name]}", style="bold green")
            else:
                line.append(f"○ {name}")
            line.append("   ")
        ready = len(self.approvals) >= m > 0
        line.append("   [a] approve as…", style="dim")
        line.append("   [x] execute" + (" ✓ quorum reached" if ready else ""),
                    style="bold" if ready else "dim")
        self.query_one("#approvals", Static).update(line)

    def action_digest_qr(self) -> None:
        if self.planned is None:
            self.notify("no plan yet: press p", severity="warning")
            return
        digest = self.planned.digest
        self.app.push_screen(QrDialog("Plan digest", digest.hex(), grouped_hex(digest)))

    def action_checkpoint_qr(self) -> None:
        if self.checkpoint:
            self.app.push_screen(QrDialog("Closing checkpoint", self.checkpoint))

    # --- approvals -------------------------------------------------------------------------

    def action_approve(self) -> None:
        if self.planned is None or self.running or self.finished:
            self.notify("plan a ceremony first (p)" if self.planned is None else
                        "the ceremony has already run", severity="warning")
            return
        officers = self.backend.officer_names()
        cards: dict[str, Path] = {}
        for name in officers:
            demo = self.backend.demo_card(name)
            if demo is not None:
                cards[name] = demo[0]
        pending = [o for o in officers if o not in self.approvals]
        digest = self.planned.digest
        self.app.push_screen(
            ApprovalDialog(officers, " ".join(digest_words(digest)), grouped_hex(digest),
                           cards, pending),
            self._approval_entered)

    def _approval_entered(self, given: ApprovalInput | None) -> None:
        if given is None or self.planned is None:
            return
        backend, plan_id = self.backend, self.planned.plan_id

        def job() -> None:
            try:
                approved = backend.approve(plan_id, given.officer, given.card, given.passphrase)
            except ConsoleError as e:
                self.post_message(OperationFailed(f"Approval by {given.officer}", e))
                return
            self.post_message(ApprovalRecorded(given.officer, approved.message, approved.card))

        self.run_worker(job, thread=True, exit_on_error=False, group="ceremony",
                        description=f"Unlocking {given.officer}'s card")

    @on(ApprovalRecorded)
    def _approved(self, message: ApprovalRecorded) -> None:
        message.stop()
        self.approvals[message.officer] = _clock(self.backend.now())
        self._cards[message.officer] = message.card
        self._log(f"{message.officer} approved: {message.status}")
        self._show_approvals()

    # --- execution -------------------------------------------------------------------------

    def action_execute(self) -> None:
        m, _ = self._quorum()
        if self.planned is None or self.running or self.finished:
            self.notify("nothing to execute", severity="warning")
            return
        if len(self._cards) < m:
            self.notify(f"approved by {len(self._cards)}/{m} officers: more approvals needed",
                        severity="warning")
            return
        self.running = True
        backend, plan_id = self.backend, self.planned.plan_id
        cards = list(self._cards.values())
        progress = TuiProgress(self)

        def job() -> None:
            try:
                result = backend.execute(plan_id, cards, progress)
                checkpoint = backend.latest_checkpoint()
            except ConsoleError as e:
                self.post_message(OperationFailed("Executing the ceremony", e))
                self.post_message(CeremonyFinished("", None))
                return
            self.post_message(CeremonyFinished(result, checkpoint))

        self._log("executing…")
        self.run_worker(job, thread=True, exit_on_error=False, group="ceremony-run",
                        description="Running the ceremony")

    @on(StepProgress)
    def _step(self, message: StepProgress) -> None:
        message.stop()
        event = message.event
        row = self.query_one("#steps", StepList).row(event.n)
        if row is not None:
            row.apply(event)
        if event.status != "started":
            mark = {"done": "✓", "skipped": "·", "failed": "✗"}.get(event.status, "?")
            detail = f" — {event.detail}" if event.detail else ""
            self._log(f"{mark} {event.n}/{event.total} {event.description} "
                      f"({event.elapsed:.1f} s){detail}")

    @on(CeremonyNote)
    def _note(self, message: CeremonyNote) -> None:
        message.stop()
        self._log(message.text)

    @on(CeremonyFinished)
    def _finished(self, message: CeremonyFinished) -> None:
        message.stop()
        self.running = False
        self._cards.clear()  # unlocked cards are dropped as soon as the run ends
        if not message.result:
            return
        self.finished = True
        self.checkpoint = message.checkpoint
        self._log(message.result)
        self.query_one("#checkpoint", Static).update(Text(message.checkpoint or "—"))
        self.query_one("#checkpoint-qr", QrCode).show(message.checkpoint or "")
        self.app.refresh_health()  # type: ignore[attr-defined]

    def _log(self, text: str) -> None:
        self.query_one("#transcript", RichLog).write(Text(f"{_clock(self.backend.now())}  {text}"))

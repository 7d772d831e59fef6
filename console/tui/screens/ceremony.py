"""Ceremony: choose a script and keyset, review the plan and its digest, collect approvals one
officer at a time, run the steps with live progress, and show the closing checkpoint.

Open and interrupted plans come first: the screen shows the newest one the ledger holds, with
what can be done about it (approve, execute, resume, abort). Every service call runs in a thread
worker; the run's worker is never exclusive (a thread cannot be cancelled) and the keys that
start work are refused while one runs.

Execution is deliberate: `x` (or `u` to resume) shows what will happen and asks again; a
destructive ceremony asks for the keyset name or the digest words to be typed. Cards unlocked at
approval stay in memory only until the run, until the screen is left, or until the console has
been idle for the app's `card_idle_seconds`; executing then asks the approving officers to
unlock their cards again. How plans read is `ceremony_text`; the thread jobs are `ceremony_run`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, RichLog, Select, Static

from console.errors import ConsoleError
from console.quorum import digest_words, grouped_hex
from console.tui.backend import OpenPlan, is_destructive
from console.tui.dialogs.approval import ApprovalDialog
from console.tui.dialogs.execute import DESTRUCTIVE_ACTIONS, ExecuteDialog
from console.tui.dialogs.qr import QrDialog
from console.tui.messages import (
    ApprovalRecorded,
    CeremonyFinished,
    CeremonyNote,
    LedgerChanged,
    OperationFailed,
    PlanReady,
    StepProgress,
)
from console.tui.screens._base import SCREENS_CSS, ConsoleScreen
from console.tui.screens.ceremony_run import plan_job, run_job, step_line
from console.tui.screens.ceremony_text import (
    abort_intro,
    approvals_text,
    banner_text,
    clock,
    digest_text,
    execute_steps,
    idle_minutes,
    plan_text,
    plan_title,
    unlock_intro,
)
from console.tui.widgets.qr import QrCode
from console.tui.widgets.steps import StepList, StepRow

if TYPE_CHECKING:
    from console.ceremony.review import PlanView
    from console.ceremony.session import Abort, Approved, CardSource
    from console.quorum.cards import UnlockedCard

IDLE_CHECK_SECONDS = 1.0


class CeremonyScreen(ConsoleScreen):
    CSS_PATH = SCREENS_CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "plan", "Plan"),
        Binding("a", "approve", "Approve"),
        Binding("x", "execute", "Execute"),
        Binding("u", "resume", "Resume", show=False),  # the open-plan line says [u], [b]
        Binding("b", "abort", "Abort", show=False),
        Binding("w", "digest_qr", "Digest QR", show=False),  # the digest says [w]
        Binding("k", "checkpoint_qr", "Checkpoint QR", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.planned: PlanView | None = None
        self.approvals: dict[str, str] = {}
        self._cards: dict[str, UnlockedCard] = {}
        self.cards_note = ""
        self.open_plans: list[OpenPlan] = []
        self.running = False
        self.finished = False
        self.checkpoint: str | None = None
        self._choices_loaded = False

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="ceremony-body"):
            yield Static("", id="open-banner")
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

    def on_mount(self) -> None:
        self.query_one("#open-banner", Static).display = False
        super().on_mount()
        self.set_interval(IDLE_CHECK_SECONDS, self._check_idle)

    def refresh_data(self) -> None:
        self.load("choices", lambda: (self.backend.scripts(), self.backend.keysets()),
                  "Reading ceremony scripts")
        self.load("open", self.backend.open_plans, "Reading open ceremonies")

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

    # --- open and interrupted plans --------------------------------------------------------

    def show_open(self, plans: list[OpenPlan]) -> None:
        self.open_plans = plans
        self._show_banner()
        if self.running or not plans:
            return
        shown = self.planned.plan_id if self.planned is not None else None
        ids = [p.plan_id for p in plans]
        self._load_view(shown if shown in ids else ids[-1])

    def _current_open(self) -> OpenPlan | None:
        if self.planned is None:
            return None
        return next((p for p in self.open_plans if p.plan_id == self.planned.plan_id), None)

    def _show_banner(self) -> None:
        banner = self.query_one("#open-banner", Static)
        if not self.open_plans:
            banner.display = False
            return
        banner.update(banner_text(self.open_plans))
        banner.display = True

    def _load_view(self, plan_id: str) -> None:
        backend = self.backend

        def read() -> PlanView | str:
            try:
                return backend.review(plan_id)
            except ConsoleError as e:
                return f"plan {plan_id[:8]}: {e.user_message()}"

        self.load("view", read, f"Reading plan {plan_id[:8]}")

    def show_view(self, value: PlanView | str) -> None:
        if isinstance(value, str):  # the plan cannot go on as it is: say why, keep the banner
            self.query_one("#plan", Static).update(Text(value, style="bold red"))
            return
        self._show_plan(value)

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
        self.run_worker(plan_job(self, self.app, self.backend, script, chosen), thread=True,
                        exit_on_error=False, group="ceremony", description=f"Planning {script}")

    @on(PlanReady)
    def _plan_ready(self, message: PlanReady) -> None:
        message.stop()
        self._show_plan(message.planned)

    def _show_plan(self, view: PlanView) -> None:
        same = self.planned is not None and self.planned.plan_id == view.plan_id
        self.planned = view
        if not same:
            self._wipe("", quiet=True)
            self.cards_note = ""
            self.finished = False
        record = view.record
        plan = record.plan
        self.approvals = {a.officer: clock(a.approved_at) if a.approved_at else "—"
                          for a in record.approvals if a.officer in view.status.counted}
        self.query_one("#plan", Static).update(plan_text(view))
        self.query_one("#plan-title", Label).update(plan_title(view))
        digest = view.digest
        self.query_one("#digest", Static).update(digest_text(digest))
        state = record.state()
        if not same:
            steps = self.query_one("#steps", StepList)
            steps.remove_children()
            rows = [StepRow(a.n, a.kind, a.description) for a in plan.actions]
            for row in rows:
                if row.n in record.done:
                    row.status = "done"
            steps.mount_all(rows)
            self.query_one("#transcript", RichLog).clear()
            self._log(f"{'planned' if not record.started else state} {view.plan_id} digest "
                      f"{digest.hex()[:16]}…")
        self._show_approvals()

    def _quorum(self) -> tuple[int, int]:
        if self.planned is None:
            return (0, 0)
        plan = self.planned.record.plan
        return int(plan.quorum_m), int(plan.quorum_n)

    def _show_approvals(self) -> None:
        m, n = self._quorum()
        cls = self.planned.record.plan.ceremony_class if self.planned is not None else ""
        self.query_one("#approvals-title", Label).update(
            f"Approvals · {cls} quorum {m} of {n}")
        started = self.planned is not None and self.planned.record.started
        self.query_one("#approvals", Static).update(approvals_text(
            self.backend.officer_names(), self.approvals, set(self._cards), started=started,
            ready=len(self.approvals) >= m > 0, note=self.cards_note))

    def action_digest_qr(self) -> None:
        if self.planned is None:
            self.notify("no plan yet: press p", severity="warning")
            return
        digest = self.planned.digest
        self.app.push_screen(QrDialog("Plan digest", digest.hex(), grouped_hex(digest)))

    def action_checkpoint_qr(self) -> None:
        if self.checkpoint:
            self.app.push_screen(QrDialog("Closing checkpoint", self.checkpoint))

    # --- cards -----------------------------------------------------------------------------

    def _wipe(self, reason: str, *, quiet: bool = False) -> None:
        """Drop every unlocked card (the run that needs them asks for them again)."""
        if not self._cards:
            return
        self._cards.clear()
        if quiet:
            return
        self.cards_note = (f"cards wiped {reason}: executing asks the approving officers to "
                           "unlock their cards again")
        self._log(self.cards_note)
        if self.planned is not None:
            self._show_approvals()

    def wipe_cards(self, reason: str) -> None:
        self._wipe(reason)

    def _check_idle(self) -> None:
        if not self._cards or self.running:
            return
        idle = self.console.card_idle_seconds
        if self.console.idle_seconds() >= idle:
            self._wipe(f"after {idle_minutes(idle)}")

    def on_screen_suspend(self) -> None:
        # A dialog over this screen keeps the mode; leaving for another screen does not.
        if self.app.current_mode != "ceremony" and not self.running:
            self._wipe("on leaving the Ceremony screen")

    # --- approvals -------------------------------------------------------------------------

    def action_approve(self) -> None:
        if self.planned is None or self.running or self.finished:
            self.notify("plan a ceremony first (p)" if self.planned is None else
                        "the ceremony has already run", severity="warning")
            return
        if self.planned.record.started:
            self.notify("this ceremony was interrupted: resume it (u) or abort it (b)",
                        severity="warning")
            return
        officers = self.backend.officer_names()
        pending = [o for o in officers if o not in self.approvals]
        digest = self.planned.digest
        backend, plan_id = self.backend, self.planned.plan_id

        def approve(officer: str, cards: CardSource) -> tuple[str, Approved]:
            return officer, backend.approve(plan_id, officer, cards)

        self.app.push_screen(
            ApprovalDialog(officers, " ".join(digest_words(digest)), grouped_hex(digest),
                           self.backend.demo_cards(officers), pending, act=approve, digest=digest),
            self._approval_done)

    def _approval_done(self, result: tuple[str, Approved] | None) -> None:
        if result is not None:
            officer, approved = result
            self.post_message(ApprovalRecorded(officer, approved.message, approved.card))

    @on(ApprovalRecorded)
    def _approved(self, message: ApprovalRecorded) -> None:
        message.stop()
        self.approvals[message.officer] = clock(self.backend.now())
        if message.card is not None:
            self._cards[message.officer] = message.card
            self.cards_note = ""
        self._log(message.status)
        self._show_approvals()
        self.app.post_message(LedgerChanged("approval"))

    def _approvers(self) -> list[str]:
        """Officers whose approval counts (the ledger's count, and any approval just made)."""
        counted = self.planned.status.counted if self.planned is not None else ()
        return list(dict.fromkeys([*counted, *self.approvals]))

    def _unlock_then(self, verb: str, then: Callable[[], None]) -> bool:
        """Ask the next approving officer without an unlocked card to unlock it, then `then`.
        False when enough cards are unlocked already."""
        assert self.planned is not None
        m, _ = self._quorum()
        counted = self._approvers()
        if sum(1 for name in counted if name in self._cards) >= m:
            return False
        missing = [name for name in counted if name not in self._cards]
        backend, plan_id = self.backend, self.planned.plan_id
        have = sum(1 for name in counted if name in self._cards)

        def unlock(officer: str, cards: CardSource) -> UnlockedCard:
            return backend.unlock(plan_id, officer, cards)

        def unlocked(card: UnlockedCard | None) -> None:
            if card is None:
                return
            self._cards[card.name] = card
            self.cards_note = ""
            self._log(f"{card.name}'s card unlocked to {verb}")
            self._show_approvals()
            then()

        intro = unlock_intro(verb, plan_id, m, have, self.cards_note)
        self.app.push_screen(
            ApprovalDialog(missing, "", "", self.backend.demo_cards(missing), missing, act=unlock,
                           title=f"Unlock a card to {verb}", button="Unlock", intro=intro),
            unlocked)
        return True

    # --- execution -------------------------------------------------------------------------

    def action_execute(self) -> None:
        m, _ = self._quorum()
        if self.planned is None or self.running or self.finished:
            self.notify("nothing to execute", severity="warning")
            return
        if self.planned.record.started:
            self.notify("this ceremony was interrupted: resume it (u) or abort it (b)",
                        severity="warning")
            return
        if len(self._approvers()) < m:
            self.notify(f"approved by {len(self.approvals)}/{m} officers: more approvals needed",
                        severity="warning")
            return
        if self._unlock_then("execute", self.action_execute):
            return
        self._confirm_and_run(resume=False)

    def action_resume(self) -> None:
        if self.planned is None or self.running or not self.planned.record.started or \
                self.finished:
            self.notify("no interrupted ceremony here to resume", severity="warning")
            return
        if self._unlock_then("resume", self.action_resume):
            return
        self._confirm_and_run(resume=True)

    def _confirm_and_run(self, *, resume: bool) -> None:
        assert self.planned is not None
        view = self.planned
        record = view.record
        plan = record.plan
        m, n = self._quorum()
        steps = execute_steps(view, DESTRUCTIVE_ACTIONS)
        officers = ", ".join(sorted(self._cards))
        quorum = (f"{plan.ceremony_class} quorum {m} of {n} ✓ — cards of {officers} "
                  "unlocked")
        verb = "Resume" if resume else "Execute"
        where = (f" from step {record.next_step()}" if resume and record.next_step() else "")
        dialog = ExecuteDialog(
            title=f"{verb} plan {view.plan_id[:8]} · {plan.script}{where}", steps=steps,
            quorum=quorum, destructive=is_destructive(view), keysets=plan.keysets,
            digest=view.digest, verb=verb)

        def answered(go: bool | None) -> None:
            if go:
                self._run(resume=resume)
            else:
                self._log(f"{verb.lower()} cancelled: nothing was run")

        self.app.push_screen(dialog, answered)

    def _run(self, *, resume: bool) -> None:
        assert self.planned is not None
        self.running = True
        backend, plan_id = self.backend, self.planned.plan_id
        cards = [self._cards[name] for name in self._approvers() if name in self._cards]
        self._log("resuming…" if resume else "executing…")
        self.run_worker(run_job(self, backend, plan_id, cards, resume=resume), thread=True,
                        exit_on_error=False, group="ceremony-run",
                        description="Running the ceremony")

    @on(StepProgress)
    def _step(self, message: StepProgress) -> None:
        message.stop()
        event = message.event
        row = self.query_one("#steps", StepList).row(event.n)
        if row is not None:
            row.apply(event)
        line = step_line(event)
        if line is not None:
            self._log(line)

    @on(CeremonyNote)
    def _note(self, message: CeremonyNote) -> None:
        message.stop()
        self._log(message.text)

    @on(CeremonyFinished)
    def _finished(self, message: CeremonyFinished) -> None:
        message.stop()
        self.running = False
        self._cards.clear()  # unlocked cards are dropped as soon as the run ends
        self.app.post_message(LedgerChanged("ceremony run"))
        if message.result:
            self.finished = True
            self.checkpoint = message.checkpoint
            self._log(message.result)
            self.query_one("#checkpoint", Static).update(Text(message.checkpoint or "—"))
            self.query_one("#checkpoint-qr", QrCode).show(message.checkpoint or "")
        self.console.run_finished()

    # --- abort -----------------------------------------------------------------------------

    def action_abort(self) -> None:
        if self.planned is None or self.running or self.finished:
            self.notify("no open ceremony here to abort", severity="warning")
            return
        backend, plan_id = self.backend, self.planned.plan_id
        record = self.planned.record
        try:
            officers = backend.abort_officers(plan_id)
        except ConsoleError as e:
            self.app.post_message(OperationFailed("Aborting the ceremony", e))
            return

        def abort(officer: str, cards: CardSource) -> Abort:
            return backend.abort(plan_id, officer, cards)

        self.app.push_screen(
            ApprovalDialog(officers, "", "", self.backend.demo_cards(officers), officers, act=abort,
                           title="Abort the ceremony", button="Abort",
                           intro=abort_intro(record)),
            self._aborted)

    def _aborted(self, result: Abort | None) -> None:
        if result is None:
            return
        for line in result.render().splitlines():
            self._log(line.strip())
        self._wipe("", quiet=True)
        self.finished = True
        self.query_one("#plan-title", Label).update(f"Plan · aborted {result.plan_id[:8]}")
        self.app.post_message(LedgerChanged("abort"))

    def _log(self, text: str) -> None:
        self.query_one("#transcript", RichLog).write(Text(f"{clock(self.backend.now())}  {text}"))

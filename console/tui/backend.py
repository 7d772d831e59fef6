"""What the TUI asks of the product: one object over an opened workspace and the services.

Screens never call the ledger, the HSM or the ceremony engine themselves: they call a
`Backend` method from a thread worker and show what comes back. The methods are thin calls into
the same services the CLI uses (`console.ceremony.*`, `console.hsm.doctor`, `console.lifecycle`);
the TUI owns no rule of its own. Tests replace the HSM-touching methods (doctor, reconcile) and
the clock with fixed values to make snapshots deterministic (harlequin's adapter seam).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from console.clock import format_time
from console.errors import CardError, ConsoleError, UsageError
from console.tui.prefetch import Prefetch
from console.tui.values import (
    BundleFile,
    BundleRow,
    ConsumerFacts,
    DashboardData,
    Health,
    KeysetFacts,
    LedgerSummary,
    dashboard_data,
)

if TYPE_CHECKING:
    from console.ceremony.journal import PlanRecord
    from console.ceremony.officers import OfficerRow
    from console.ceremony.progress import ProgressSink
    from console.ceremony.reconcile import Reconciliation
    from console.ceremony.review import PlanView
    from console.ceremony.session import Abort, Approved, CardSource, Session
    from console.ceremony.status import StatusReport
    from console.hsm.doctor import DoctorReport
    from console.jsontypes import JsonMapping
    from console.ledger import Ledger
    from console.quorum.cards import UnlockedCard
    from console.workspace import Workspace

__all__ = ["Backend", "BundleFile", "BundleRow", "ConsumerFacts", "DashboardData", "Health",
           "KeysetFacts", "LedgerSummary", "OpenPlan", "WorkspaceBackend"]

DESTRUCTIVE_SCRIPTS = frozenset({"key-destruction", "officer-change", "config-change"})
"""Scripts whose execution asks for the keyset name or the digest words to be typed (besides
every plan of the destructive quorum class)."""

def destinations(folder: Path) -> dict[str, str]:
    """Where each file of a bundle folder goes, as the export's own README.txt says it
    (`<file>: <where it goes>` lines), so the TUI repeats the exporter rather than guessing."""
    readme = folder / "README.txt"
    out: dict[str, str] = {"README.txt": "this list", "MANIFEST.sha256":
                           "keep with the bundle: SHA-256 of every file"}
    try:
        lines = readme.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        name, sep, where = line.partition(": ")
        if sep and name and " " not in name:
            out[name] = where
    return out


@dataclass(frozen=True, slots=True)
class OpenPlan:
    """A plan that is not closed and can still go on: what the dashboard leads with."""

    plan_id: str
    script: str
    keysets: tuple[str, ...]
    state: str
    """planned | approved | executing | interrupted"""
    approvers: tuple[str, ...]
    quorum_m: int
    steps_done: int
    steps: int
    expires_at: datetime

    @property
    def started(self) -> bool:
        return self.state in ("executing", "interrupted")

    def line(self) -> str:
        """One line for the dashboard and the ceremony screen."""
        scope = ", ".join(self.keysets) or "officers and configuration"
        head = f"ceremony {self.plan_id[:8]} ({self.script}, {scope})"
        if self.started:
            return f"{head} interrupted after step {self.steps_done} of {self.steps}"
        if self.state == "approved":
            return (f"{head} approved by {len(self.approvers)} of {self.quorum_m}: ready to "
                    "execute")
        expires = format_time(self.expires_at)[:16].replace("T", " ")
        return (f"{head} open: approved by {len(self.approvers)} of {self.quorum_m}, "
                f"expires {expires} UTC")

    @classmethod
    def of(cls, record: PlanRecord) -> OpenPlan:
        state = record.state()
        approvers = record.approvers()
        if state == "planned" and len(approvers) >= record.plan.quorum_m:
            state = "approved"
        return cls(record.plan_id, record.plan.script, record.keysets, state, approvers,
                   record.plan.quorum_m, len(record.done), len(record.actions),
                   record.expires_at)


def is_destructive(view: PlanView) -> bool:
    """Whether executing asks for the keyset name or the digest words typed."""
    plan = view.record.plan
    return plan.ceremony_class == "destructive" or plan.script in DESTRUCTIVE_SCRIPTS


class Backend:
    """The seam between the screens and the product (see the module docstring)."""

    def __init__(self, ws: Workspace | None, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._ws = ws
        self._clock = clock
        self._opener: Callable[[], Workspace] | None = None
        self._open_lock = threading.Lock()
        self.open_error: ConsoleError | None = None
        self._prefetch: Prefetch[DashboardData] | None = None

    @classmethod
    def opening(cls, opener: Callable[[], Workspace], *,
                clock: Callable[[], datetime] | None = None,
                prefetch: bool = False) -> Backend:
        """A backend whose workspace `opener()` opens on first use, so that the console paints
        first: the app calls `open` from a thread worker at start; until it returns, the
        screens' workers wait for it (and the header says the workspace is opening).

        With `prefetch` (the launch, before Textual is imported), a child process opens the
        workspace too and reads the dashboard's data meanwhile (`console.tui.prefetch`), on the
        other core, so that the keyset rows are painted as soon as the dashboard is.
        """
        backend = cls(None, clock=clock)
        backend._opener = opener
        if prefetch:
            backend._prefetch = Prefetch.start(backend.dashboard, decode=dashboard_data)
        return backend

    def wait_for_prefetch(self, timeout: float) -> None:
        """Wait until the launch's child process has ended, if there is one (the benchmark, so
        that a child reading a large ledger does not run into its next measurement)."""
        if self._prefetch is not None:
            self._prefetch.wait(timeout)

    def first_dashboard(self, later: Callable[[DashboardData], None],
                        failed: Callable[[], None] | None = None) -> DashboardData | None:
        """The dashboard's data the launch's child process read, if it has arrived; else None,
        and `later(data)` is called (from another thread) if it arrives, `failed()` if the
        child ended without it."""
        return self._prefetch.take(later, failed) if self._prefetch is not None else None

    @property
    def prefetching(self) -> bool:
        """Whether a launch's child process was started to read the dashboard's data."""
        return self._prefetch is not None

    @property
    def prefetch_pending(self) -> bool:
        """Whether the launch's child process is still reading the dashboard's data."""
        return self._prefetch is not None and self._prefetch.pending

    @property
    def ready(self) -> bool:
        """Whether the workspace is open (always, for a backend made over an opened one)."""
        return self._ws is not None

    def open(self) -> Workspace:
        """Open the workspace once (the first caller opens it, the others wait for it).

        Raises:
            ConsoleError: what opening raised, to every caller.
        """
        if self._ws is not None:
            return self._ws
        with self._open_lock:
            if self._ws is None:
                if self.open_error is not None:
                    raise self.open_error
                if self._opener is None:
                    raise UsageError("no workspace is open", "start the console again")
                try:
                    self._ws = self._opener()
                except ConsoleError as e:
                    self.open_error = e
                    raise
            return self._ws

    @property
    def ws(self) -> Workspace:
        return self._ws if self._ws is not None else self.open()

    # --- identity and time -----------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        return self.ws.ledger

    @property
    def title(self) -> str:
        if not self.ready:
            return "opening the workspace…"
        org = self.ws.config.org
        return f"{org} (rehearsal)" if self.ws.rehearsal else str(org)

    def now(self) -> datetime:
        """The time the console acts at: a fixed clock in tests, else the workspace's rule."""
        if not self.ready:
            self.open()  # the clock may be the workspace's own
        if self._clock is not None:
            return self._clock()
        return self.ws.now()

    # --- reads -----------------------------------------------------------------------------

    def status(self) -> StatusReport:
        from console.ceremony.status import workspace_status

        return workspace_status(self.ws, self.now())

    def authorization_warnings(self) -> list[str]:
        """The ledger's entry no console writes under its rules, as a warning, if it holds one
        (`ceremony.status.authorization_warning`)."""
        from console.ceremony.status import authorization_warning

        return authorization_warning(self.ws)

    def dashboard(self) -> DashboardData:
        """The status report and what the dashboard shows of each keyset's policy."""
        status = self.status()
        policies: dict[str, KeysetFacts] = {
            str(keyset.name): {
                "cryptoperiod_days": keyset.cryptoperiod.days,
                "consumers": [{"name": c.name,
                               "propagation_seconds": int(c.propagation.total_seconds())}
                              for c in keyset.consumers],
            }
            for keyset in self.ws.policy.keysets
        }
        return {"status": status, "policies": policies}

    def ledger_summary(self) -> LedgerSummary:
        from console.ledger import parse_checkpoint_body

        ledger = self.ws.ledger
        size = int(ledger.size)
        note = ledger.latest_checkpoint()
        cp_size: int | None = None
        signers: list[str] = []
        if note:
            body, _, sigs = note.partition("\n\n")
            try:
                cp_size = parse_checkpoint_body(body + "\n").size
            except ConsoleError:
                cp_size = None
            for line in sigs.splitlines():
                if line.startswith("— "):
                    signers.append(line[2:].split(" ", 1)[0].split("+", 1)[0])
        return LedgerSummary(size, ledger.root().hex(), ledger.last_time(), cp_size,
                             tuple(signers))

    def doctor(self) -> DoctorReport:
        from console.hsm.doctor import diagnose

        self.ws.prepare_module_environment()
        return diagnose([self.ws.module_path()], now=self.now())

    def doctor_text(self) -> str:
        from console.hsm.doctor import render_text

        return render_text(self.doctor())

    def reconcile(self) -> Reconciliation:
        from console.ceremony.reconcile import reconcile_workspace

        return reconcile_workspace(self.ws)

    def reconcile_text(self) -> str:
        from console.ceremony.reconcile import render_reconciliation

        return render_reconciliation(self.reconcile())

    def health(self) -> Health:
        """HSM, ledger and reconciliation facts for the header (slow: call from a worker)."""
        summary = self.ledger_summary()
        ledger = f"ledger {summary.size:,} entries"
        try:
            report = self.doctor()
            hsm_ok = bool(report.healthy)
            hsm = _token_name(report, self.ws.config.hsm.token_label) if hsm_ok else "HSM !"
        except ConsoleError as e:
            hsm, hsm_ok = f"HSM ! {e.message}", False
        try:
            rec = self.reconcile()
            rec_ok = rec.clean
            reconcile = "reconciled" if rec_ok else "reconcile !"
        except ConsoleError as e:
            reconcile, rec_ok = f"reconcile ! {e.message}", False
        return Health(hsm, hsm_ok, ledger, True, reconcile, rec_ok)

    def officers(self) -> list[OfficerRow]:
        from console.ceremony.officers import officer_rows

        return officer_rows(self.ws)

    def keysets(self) -> list[str]:
        return [str(k.name) for k in self.ws.policy.keysets]

    def scripts(self) -> list[str]:
        from console.ceremony.script import shipped_scripts

        return shipped_scripts()

    def signing_key(self) -> JsonMapping | None:
        from console.ceremony.status import bundle_signing_jwk

        return bundle_signing_jwk(self.ws)

    def bundles(self) -> list[BundleRow]:
        """Every exported bundle recorded in the ledger, newest first, each verified offline."""
        from console.exports import verify_bundle

        trust = self.signing_key()
        rows: list[BundleRow] = []
        previous: dict[str, bytes] = {}
        before: dict[str, tuple[int, tuple[str, ...]]] = {}  # keyset → (seq, kids) last seen
        for entry in self.ws.ledger.entries_of_type("bundle.exported"):
            data = entry.data
            keyset, seq = str(data.get("keyset")), int(data.get("seq", 0))
            folder = Path(str(data.get("path", "")))
            if not folder.is_absolute():
                folder = self.ws.root / folder
            where = destinations(folder)
            files = tuple(
                BundleFile(p.relative_to(folder).as_posix(), p.stat().st_size,
                           where.get(p.relative_to(folder).as_posix(), "—"))
                for p in sorted(folder.rglob("*")) if p.is_file()
            ) if folder.is_dir() else ()
            verified: bool | None = None
            problem = ""
            token_path = folder / "jwks.jwt"
            if trust is None:
                problem = "no bundle-signing key to check against"
            elif not token_path.is_file():
                verified, problem = False, f"{token_path} is missing"
            else:
                token = token_path.read_bytes()
                try:
                    verify_bundle(token, trust=trust, previous=previous.get(keyset),
                                  now=self.now(), keyset=keyset)
                    verified = True
                except ConsoleError as e:
                    verified, problem = False, e.message
                previous[keyset] = token
            kids = tuple(str(k) for k in data.get("kids", ()))
            shown = Path(str(data.get("path", ""))) if data.get("path") else folder
            previous_seq, previous_kids = before.get(keyset, (None, ()))
            rows.append(BundleRow(keyset, seq, entry.time, kids, str(data.get("sha256", "")),
                                  shown, verified, problem, files, previous_seq,
                                  added=tuple(k for k in kids if k not in previous_kids),
                                  removed=tuple(k for k in previous_kids if k not in kids)))
            before[keyset] = (seq, kids)
        rows.reverse()
        return rows

    # --- ceremonies ------------------------------------------------------------------------

    def session(self) -> Session:
        from console.ceremony.session import Session

        return Session(self.ws, now=self.now())

    def plan(self, script: str, keyset: str | None) -> PlanView:
        return self.session().plan(script, keysets=[keyset] if keyset else [])

    def approve(self, plan_id: str, officer: str, cards: CardSource) -> Approved:
        """One officer's approval; the card dialog answers the session's passphrase tries."""
        return self.session().approve(plan_id, officer, cards, confirm=_same_plan(plan_id))

    def unlock(self, plan_id: str, officer: str, cards: CardSource) -> UnlockedCard:
        """An approving officer's card, unlocked again for the execution that follows."""
        return self.session().unlock_approver(plan_id, officer, cards)

    def execute(self, plan_id: str, cards: list[UnlockedCard], progress: ProgressSink) -> str:
        names = [c.name for c in cards]
        return self.session().execute(plan_id, names, _NoCards(), progress=progress,
                                      unlocked=cards, confirm=_same_plan(plan_id))

    def resume(self, plan_id: str, cards: list[UnlockedCard], progress: ProgressSink) -> str:
        names = [c.name for c in cards]
        return self.session().resume(names, _NoCards(), progress=progress, unlocked=cards,
                                     confirm=_same_plan(plan_id))

    def abort(self, plan_id: str, officer: str, cards: CardSource) -> Abort:
        def confirm(record: PlanRecord) -> None:
            if record.plan_id != plan_id:
                raise UsageError(f"the open ceremony is {record.plan_id}, not {plan_id}",
                                 "refresh the Ceremony screen (r) and look again")

        return self.session().abort(officer, cards, confirm=confirm)

    def open_plans(self) -> list[OpenPlan]:
        """Open, approved and interrupted plans, newest last."""
        return [OpenPlan.of(r) for r in self.session().open_ceremonies()]

    def review(self, plan_id: str) -> PlanView:
        """The plan as the ledger stores it now (started plans too), checked against the files."""
        session = self.session()
        return session.review(plan_id, for_resume=session.record(plan_id).started)

    def abort_officers(self, plan_id: str) -> list[str]:
        """Who may abort: the plan's approvers, or every officer in force when nobody did."""
        return list(self.session().record(plan_id).approvers()) or self.officer_names()

    def quorum_for(self, ceremony_class: str) -> tuple[int, int]:
        quorum = self.ws.trust.quorum
        if quorum is None:
            return (0, 0)
        rule = quorum.for_class(ceremony_class)
        return int(rule.m), int(rule.n)

    def officer_names(self) -> list[str]:
        return [o.name for o in self.ws.trust.officers.active()]

    def demo_cards(self, officers: list[str]) -> dict[str, Path]:
        """The demo workspace's card file of each officer that has one (none in production)."""
        found = {name: self.ws.demo_card(name) for name in officers}
        return {name: demo[0] for name, demo in found.items() if demo is not None}

    def latest_checkpoint(self) -> str | None:
        return self.ws.ledger.latest_checkpoint()

    # --- ledger ----------------------------------------------------------------------------

    def verify_tree(self, progress: Callable[[int, int], None]) -> None:
        self.ws.ledger.verify_tree(progress)


WorkspaceBackend = Backend


class _NoCards:
    """A `CardSource` for runs whose cards the dialogs already unlocked: it has none to give."""

    def card_path(self, officer: str) -> Path:
        raise UsageError(f"{officer}'s card is not unlocked",
                         "press x again: each approving officer unlocks their card")

    def passphrase(self, officer: str, attempt: int) -> str:
        from console.quorum.cards import UNLOCK_FAILED

        raise CardError(UNLOCK_FAILED, "unlock the card in the dialog")


def _same_plan(plan_id: str) -> Callable[[PlanView], None]:
    """The confirmation the dialogs already gave, tied to the plan they showed."""

    def confirm(view: PlanView) -> None:
        if view.plan_id != plan_id:
            raise UsageError(f"the plan is {view.plan_id}, not {plan_id}",
                             "refresh the Ceremony screen (r) and look again")

    return confirm


def _token_name(report: DoctorReport, label: str | None) -> str:
    for module in report.modules:
        for slot in module.slots:
            if slot.token is None:
                continue
            info = slot.token.info
            if label is None or info.label == label:
                return f"HSM {info.label} #{info.serial} ✓"
    return "HSM ✓"


def clock_text(when: datetime) -> str:
    return format_time(when).replace("T", " ")[:16] + " UTC"

"""Dashboard: keysets, each key's state on a timeline, due rotations, warnings, health.

Open, approved and interrupted ceremonies lead: a line above everything else says which and
what to do (`g` goes to the Ceremony screen, which shows the plan with resume and abort); the
keysets they touch say so instead of "ok", and "nothing needs doing" is never shown then.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from console.tui.screens._base import ConsoleScreen, after_next_frame
from console.tui.widgets.key_table import KeyTable
from console.tui.widgets.timeline import KeyTimeline

if TYPE_CHECKING:
    from console.ceremony.status import KeysetStatus, OpenPlan, StatusReport
    from console.jsontypes import JsonMapping
    from console.tui.backend import DashboardData, KeysetFacts


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _day(value: str | None) -> str:
    return str(value)[:10] if value else "—"


def due_label(keyset: KeysetStatus, now: datetime) -> tuple[str, str]:
    """("due 12 d" | "OVERDUE 3 d" | "ok 64 d" | "no keys", style)."""
    due = _time(keyset.get("next_due"))
    if keyset.get("overdue"):
        days = (now - due).days if due else 0
        return f"! OVERDUE {days} d", "bold red"
    if due is None:
        return "! no keys", "yellow"
    days = (due - now).days
    latest = _time(keyset.get("latest_ceremony"))
    if latest is not None and (latest - now).days <= 14:
        return f"! due {(latest - now).days} d", "yellow"
    return f"✓ ok {days} d", "green"


def open_plan_line(plan: OpenPlan) -> tuple[str, str]:
    """One open plan from `status --json`'s `open_plans`: (line, style)."""
    scope = ", ".join(plan.get("keysets") or []) or "officers and configuration"
    head = f"ceremony {str(plan['plan_id'])[:8]} ({plan['script']}, {scope})"
    if plan.get("state") in ("interrupted", "executing"):
        return (f"{head} interrupted after step {plan['steps_done']} of {plan['steps']} — "
                "[g] resume or abort it", "bold red")
    if int(plan.get("approvals", 0)) >= int(plan.get("quorum", 0)) > 0:
        return (f"{head} approved by {plan['approvals']} of {plan['quorum']}, not executed — "
                "[g] execute or abort it", "bold yellow")
    return (f"{head} open: approved by {plan.get('approvals', 0)} of {plan.get('quorum')} — "
            "[g] approve, execute or abort it", "bold yellow")


def keyset_plan_label(keyset: str, plans: list[OpenPlan]) -> tuple[str, str] | None:
    """What an open plan on this keyset means for its line in the list, if any."""
    for plan in reversed(plans):
        if keyset in (plan.get("keysets") or []):
            if plan.get("state") in ("interrupted", "executing"):
                return "! interrupted", "bold red"
            return "! plan open", "yellow"
    return None


class DashboardScreen(ConsoleScreen):
    """What needs doing, at a glance."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "go_to_plan", "Open plan", show=False),  # the plan line says [g]
    ]

    status: StatusReport | None
    policies: dict[str, KeysetFacts]
    now: datetime
    open_plans: list[OpenPlan]

    def __init__(self) -> None:
        super().__init__()
        self.status = None
        self.policies = {}
        self.open_plans = []
        self._own_data = False
        """Whether the console's own workspace supplied what is shown (the launch's child
        process's data never replaces it)."""
        self._unauthorized: list[str] = []
        """The ledger's entry no console writes under its rules, if any (its own worker: on a
        large ledger the check takes longer than the rest of the dashboard's data)."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="open-plans")
        # The fixed pane titles are border titles, not widgets: fewer widgets to style and
        # lay out before the first frame (issue 16).
        with Horizontal(id="dash-top"):
            with Vertical(id="keysets-pane", classes="pane") as keysets:
                keysets.border_title = "Keysets"
                yield OptionList(id="keysets")
                yield Static("", id="dash-signing-key")
            with VerticalScroll(id="keyset-pane", classes="pane"):
                # A Static sized as a Label (app.tcss): Label's own stylesheet is not parsed.
                yield Static("", id="keyset-title", classes="pane-title")
                yield KeyTable(id="keys")
                yield KeyTimeline(id="timeline")
                yield Static("", id="consumers")
        with VerticalScroll(id="warnings-pane", classes="pane") as warnings:
            warnings.border_title = "Warnings"
            yield Static(Text("loading…", style="dim"), id="warnings")

    def on_mount(self) -> None:
        self.query_one("#open-plans", Static).display = False
        super().on_mount()
        if not self.backend.ready:
            # The launch's child process read the data while Textual loaded: shown in this
            # first frame if it is here, else as soon as it arrives.
            data = self.backend.first_dashboard(self._prefetched_later, self._prefetch_failed)
            if data is not None:
                self._show(data)
                self.console.prefetch_settled()  # in the first frame

    def _prefetched_later(self, data: DashboardData) -> None:
        self.post_message(self.Loaded("prefetched", data))

    def _prefetch_failed(self) -> None:
        self.post_message(self.Loaded("prefetch_failed", None))

    def show_prefetch_failed(self, _nothing: object) -> None:
        self.console.prefetch_settled()

    def refresh_data(self) -> None:
        self.load("dashboard", self.backend.dashboard, "Reading keysets and due dates")
        self.load("authorization", self.backend.authorization_warnings,
                  "Holding the ledger's entries to the console's rules")

    def show_authorization(self, warnings: list[str]) -> None:
        self._unauthorized = list(warnings)
        if self.status is not None:
            self._show_warnings(self.status)

    def show_prefetched(self, data: DashboardData) -> None:
        if not self._own_data:
            self._show(data)
        # Once these rows are drawn, the app starts its workers (`CeremonyApp.start_loading`).
        if not self.console.first_frame_drawn:  # they will be in the first frame
            self.console.prefetch_settled()
        else:
            after_next_frame(self, self.screen_layout_refresh_signal,
                             self.console.prefetch_settled)

    def show_dashboard(self, data: DashboardData) -> None:
        self._own_data = True
        self._show(data)

    def _show(self, data: DashboardData) -> None:
        status = data["status"]
        self.status = status
        self.policies = data["policies"]
        # Always in the report (the time it was read at): the workspace may not be open yet.
        self.now = datetime.fromisoformat(status["now"].replace("Z", "+00:00"))
        plans = list(status.get("open_plans") or [])
        self.open_plans = plans
        banner = self.query_one("#open-plans", Static)
        lead = Text()
        for plan in plans:
            said, style = open_plan_line(plan)
            lead.append("! " + said + "\n", style=style)
        lead.rstrip()
        banner.update(lead)
        banner.display = bool(plans)
        options = self.query_one("#keysets", OptionList)
        highlighted = options.highlighted or 0
        options.clear_options()
        rows: list[Option] = []
        for keyset in status.get("keysets", []):
            label, style = keyset_plan_label(str(keyset["name"]), plans) or \
                due_label(keyset, self.now)
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"{str(keyset['name'])[:13]:<14}")
            line.append(label, style=style)
            rows.append(Option(line, id=str(keyset["name"])))
        # One call: each add_option re-measures every line of the list (200 keysets: 0.15 s).
        options.add_options(rows)
        if status.get("keysets"):
            options.highlighted = min(highlighted, len(status["keysets"]) - 1)
            self._show_keyset(status["keysets"][options.highlighted or 0])
        self.query_one("#dash-signing-key", Static).update(
            signing_key_text(status.get("bundle_signing_key")))
        self._show_warnings(status)

    def _show_warnings(self, status: StatusReport) -> None:
        warnings = [*self._unauthorized, *(status.get("warnings") or [])]
        body = Text()
        for warning in warnings:
            body.append("! ", style="bold yellow")
            body.append(str(warning) + "\n")
        if not warnings and not self.open_plans:
            body.append("✓ nothing needs doing", style="green")
        self.query_one("#warnings", Static).update(body)

    def action_go_to_plan(self) -> None:
        if not self.open_plans:
            self.notify("no open or interrupted ceremony", severity="information")
            return
        self.console.action_show("ceremony")

    @on(OptionList.OptionHighlighted, "#keysets")
    def _keyset_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        for keyset in self.status["keysets"] if self.status else []:
            if keyset["name"] == event.option.id:
                self._show_keyset(keyset)

    def _show_keyset(self, keyset: KeysetStatus) -> None:
        policy = self.policies.get(keyset["name"])
        period = f" · every {policy['cryptoperiod_days']} days" if policy is not None else ""
        latest = keyset.get("latest_ceremony")
        title = f"{keyset['name']} · {keyset.get('alg') or '?'}{period}"
        if latest:
            title += f" · next ceremony by {_day(latest)}"
        self.query_one("#keyset-title", Static).update(title)
        rows: list[tuple[str, ...]] = []
        keys = [k for k in keyset.get("keys", []) if k.get("purpose", "token") == "token"]
        for key in keys:
            why = ""
            if key.get("earliest_activation"):
                why = f"activate {_day(key['earliest_activation'])} (publish + C_max + margin)"
            elif key.get("earliest_unpublish"):
                why = f"unpublish {_day(key['earliest_unpublish'])} (retire + T_tok + skew)"
            elif key.get("earliest_destruction"):
                why = f"destroy {_day(key['earliest_destruction'])} (archive + wait)"
            rows.append((str(key["kid"])[:8] + "…", key["state"], _day(key.get("published_at")),
                         _day(key.get("activated_at")), _day(key.get("retired_at")), why))
        self.query_one("#keys", KeyTable).show(rows)
        self.query_one("#timeline", KeyTimeline).show(keys, self.now)
        consumers = Text()
        if policy is not None and policy["consumers"]:
            consumers.append("Consumers  ", style="bold")
            consumers.append(" · ".join(
                f"{c['name']} {_short(c['propagation_seconds'])}" for c in policy["consumers"]))
        self.query_one("#consumers", Static).update(consumers)


def _short(seconds: int) -> str:
    if seconds >= 86400:
        return f"{seconds // 86400} d"
    if seconds >= 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def signing_key_text(key: JsonMapping | None) -> Text:
    """The bundle-signing key's thumbprint, whole (it wraps): the value operators pin."""
    text = Text()
    if key is None or not key.get("kid"):
        text.append("no bundle-signing key yet", style="dim")
        return text
    text.append("Bundle-signing key", style="bold")
    text.append(f" {key.get('alg', '')} (pin it)\n", style="dim")
    text.append(str(key["kid"]))
    return text

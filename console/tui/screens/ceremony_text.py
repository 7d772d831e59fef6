"""How a ceremony reads on the Ceremony screen: the open-plan banner, the plan's steps and
title, its digest, the approvals line and the steps the execute dialog lists.

Pure presentation of what the session service returns (`PlanView`, `OpenPlan`): each function
takes the values and returns rich `Text` or plain strings; no widget, no service call, no rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text

from console.clock import format_time
from console.quorum import digest_words, grouped_hex

if TYPE_CHECKING:
    from console.ceremony.journal import PlanRecord
    from console.ceremony.review import PlanView
    from console.tui.backend import OpenPlan


def clock(when: datetime) -> str:
    return when.strftime("%H:%M UTC")


def idle_minutes(seconds: float) -> str:
    if seconds >= 60:
        minutes = seconds / 60
        return f"{minutes:g} idle minute" + ("" if minutes == 1 else "s")
    return f"{seconds:g} idle seconds"


def banner_text(plans: list[OpenPlan]) -> Text:
    """One line per open plan, with the keys that act on it."""
    text = Text()
    for plan in plans:
        text.append("! ", style="bold yellow")
        text.append(plan.line())
        if plan.started:
            text.append(" — [u] resume  [b] abort", style="bold")
        elif plan.state == "approved":
            text.append(" — [x] execute  [b] abort", style="bold")
        else:
            text.append(" — [a] approve  [b] abort", style="bold")
        text.append("\n")
    text.rstrip()
    return text


def plan_text(view: PlanView) -> Text:
    """The plan's steps (done ones marked), its changes, what waits and its notes."""
    record = view.record
    plan = record.plan
    lines = Text()
    for action in plan.actions:
        lines.append(f"{action.n:>2} ", style="bold")
        lines.append(action.description)
        if action.n in record.done:
            lines.append("  ✓ done", style="green")
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
    return lines


def plan_title(view: PlanView) -> str:
    record = view.record
    plan = record.plan
    expires = format_time(plan.expires_at)[:16].replace("T", " ")
    return (f"Plan · {plan.script} · {view.plan_id[:8]} · "
            + (f"{record.state()} after step {record.last_done} of {len(plan.actions)}"
               if record.started else f"expires {expires} UTC"))


def digest_text(digest: bytes) -> Text:
    return Text.assemble((grouped_hex(digest), "bold"), "\n\n",
                         (" ".join(digest_words(digest)), "italic"), "\n\n",
                         ("[w] show as QR", "dim"))


def approvals_text(officers: list[str], approvals: dict[str, str], unlocked: set[str], *,
                   started: bool, ready: bool, note: str) -> Text:
    """Who approved (and whose card is unlocked), who did not, and the keys that go on."""
    line = Text()
    for name in officers:
        if name in approvals:
            line.append(f"✓ {name} {approvals[name]}", style="bold green")
            if name in unlocked:
                line.append(" (card unlocked)", style="green")
        else:
            line.append(f"○ {name}")
        line.append("   ")
    if started:
        line.append("   [u] resume  [b] abort", style="bold")
    else:
        line.append("   [a] approve as…", style="dim")
        line.append("   [x] execute" + (" ✓ quorum reached" if ready else ""),
                    style="bold" if ready else "dim")
    if note:
        line.append(f"\n! {note}", style="bold yellow")
    return line


def execute_steps(view: PlanView, destructive_actions: frozenset[str]) -> list[tuple[str, str]]:
    """(mark, line) per step for the execute dialog: ✓ done, ✗ destructive, · the others."""
    record = view.record
    steps: list[tuple[str, str]] = []
    for action in record.plan.actions:
        if action.n in record.done:
            steps.append(("✓", f"{action.n} {action.description} (done)"))
        else:
            mark = "✗" if action.kind in destructive_actions else "·"
            steps.append((mark, f"{action.n} {action.description}"))
    return steps


def unlock_intro(verb: str, plan_id: str, m: int, have: int, note: str) -> Text:
    return Text.assemble(
        (f"To {verb} plan {plan_id[:8]}, {m} approving officers unlock their cards "
         f"({have} of {m} unlocked). ", ""),
        (note or "", "yellow"))


def abort_intro(record: PlanRecord) -> Text:
    who = ("an officer who approved it" if record.approvers()
           else "any officer in force (nobody approved it)")
    return Text.assemble(
        (f"Abort plan {record.plan_id[:8]} ({record.plan.script}): no further step runs. ",
         "bold"),
        (f"{record.last_done} of {len(record.actions)} steps are done and stay done. "
         f"Aborting needs {who} to unlock their card; the ledger records who.", ""))

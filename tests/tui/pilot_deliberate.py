"""Issue 15 in the TUI, driven by key presses on real demo workspaces (own process; see conftest).

    python -m tests.tui.pilot_deliberate SCENARIO WORKSPACE OUT.json [NOW]

Scenarios (each writes what it saw to OUT.json; tests/tui/test_deliberate.py asserts on it and
re-reads the ledger itself):

- `rotation`: the dashboard is read first; then a quarterly rotation where alice types a wrong
  passphrase once, carol three times, and `x` shows what will happen before anything runs
  (escape: nothing runs; x, enter: it runs); then `d` (no `r`) shows the new states.
- `destructive`: a signer-enrollment plan made by the CLI is found on the Ceremony screen; three
  officers approve; execution is refused until the first two digest words are typed.
- `idle`: cards are wiped after the (short) idle time and on leaving the screen; `x` then asks
  the approving officers to unlock again; ctrl+q during the run asks, and quits when it ends.
- `resume` / `abort`: a ceremony the CLI left interrupted leads the dashboard; `g` opens it
  on the Ceremony screen, where `u` resumes it or `b` aborts it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static
from textual.worker import Worker, WorkerState

from console.tui.app import CeremonyApp
from console.tui.backend import Backend
from console.tui.dialogs import (
    ApprovalDialog,
    ErrorDialog,
    ExecuteDialog,
    QuitDialog,
)
from console.tui.messages import LedgerChanged
from console.workspace import Workspace


def _waits_for_an_officer(app: Any, worker: Worker[Any]) -> bool:
    """A card dialog's worker waiting for the next passphrase (after a wrong one)."""
    screen = app.screen
    return (worker.group == "card" and isinstance(screen, ApprovalDialog)
            and screen.cards is not None and screen.cards.waiting)


async def settle(pilot: Pilot[None]) -> None:
    """Wait until every worker has finished or waits for an officer to type, and its messages
    are handled."""
    app: Any = pilot.app
    for _ in range(3):
        for _ in range(3000):
            busy = [w for w in app.workers
                    if w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                    and not _waits_for_an_officer(app, w)]
            if not busy:
                break
            await asyncio.sleep(0.02)
        await pilot.pause()


def text_of(app: CeremonyApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def secret(root: Path, officer: str) -> str:
    return (root / "demo-cards" / f"{officer}.pass").read_text().strip()


def officer_in(app: CeremonyApp) -> str:
    return str(app.screen.query_one("#officer").value)  # type: ignore[attr-defined]


async def type_passphrase(pilot: Pilot[None], passphrase: str) -> None:
    """As an officer: the first two digest words read aloud (an approval's first try), then
    the passphrase."""
    screen = pilot.app.screen
    if isinstance(screen, ApprovalDialog) and screen.digest is not None and screen.cards is None:
        await pilot.press(*" ".join(screen.words.split()[:2]), "enter")
    await pilot.press(*passphrase)
    await pilot.press("enter")
    await settle(pilot)


async def unlock_all(pilot: Pilot[None], root: Path) -> list[str]:
    """Answer every card dialog in turn with the officer's right passphrase."""
    app: Any = pilot.app
    asked: list[str] = []
    while isinstance(app.screen, ApprovalDialog):
        officer = officer_in(app)
        asked.append(officer)
        dialog = app.screen
        await type_passphrase(pilot, secret(root, officer))
        # The right passphrase closes this officer's dialog; on a loaded machine the unlock
        # (scrypt) may still be running when `settle` returns: wait for it, never type twice.
        for _ in range(1500):
            if app.screen is not dialog or officer_in(app) != officer:
                break
            await asyncio.sleep(0.02)
    return asked


def ledger_types(ws: Workspace, since: int) -> list[str]:
    return [e.type for e in ws.ledger.entries(since)]


class GatedBackend(Backend):
    """The real backend whose run waits for the test to open a gate (so keys land mid-run)."""

    def __init__(self, ws: Workspace, *, clock: Any) -> None:
        super().__init__(ws, clock=clock)
        self.gate = threading.Event()
        self.gate.set()

    def execute(self, *args: Any, **kwargs: Any) -> str:
        self.gate.wait(60)
        return super().execute(*args, **kwargs)


def header(app: CeremonyApp) -> str:
    return str(app.screen.query_one("#header", Static).render())


async def rotation(root: Path, now: datetime) -> dict[str, Any]:
    ws = Workspace.open(root)
    seen: list[Message] = []
    app = CeremonyApp(Backend(ws, clock=lambda: now), check_health=False)
    out: dict[str, Any] = {}
    async with app.run_test(size=(120, 44), message_hook=seen.append) as pilot:
        await settle(pilot)
        keysets = app.screen.query_one("#keysets", OptionList)
        out["dashboard_before"] = str(keysets.get_option_at_index(0).prompt)
        out["keys_before"] = app.screen.query_one("#keys").row_count  # type: ignore[attr-defined]
        await pilot.press("c")
        await settle(pilot)
        screen: Any = app.screen
        await pilot.press("p")
        await settle(pilot)
        out["plan_id"] = screen.planned.plan_id
        size = ws.ledger.size

        # alice: a wrong passphrase keeps the dialog, its card path, and asks again.
        await pilot.press("a")
        await settle(pilot)
        card_typed = str(app.screen.query_one("#card", Input).value)
        await type_passphrase(pilot, "not-alices-passphrase")
        out["after_wrong"] = {
            "dialog": isinstance(app.screen, ApprovalDialog),
            "card": str(app.screen.query_one("#card", Input).value),
            "card_typed": card_typed,
            "status": text_of(app, "#approval-status"),
        }
        await type_passphrase(pilot, secret(root, "alice"))
        out["alice_closed"] = not isinstance(app.screen, ApprovalDialog)

        # carol: three wrong passphrases close the dialog with the error.
        await pilot.press("a")
        await settle(pilot)
        select: Any = app.screen.query_one("#officer")
        select.value = "carol"
        await pilot.pause()
        statuses = []
        for n in range(3):
            await type_passphrase(pilot, f"wrong-{n}")
            if isinstance(app.screen, ApprovalDialog):
                statuses.append(text_of(app, "#approval-status"))
        out["carol_statuses"] = statuses
        out["carol_error"] = isinstance(app.screen, ErrorDialog)
        out["errors"] = list(app.errors)
        await pilot.press("escape")
        await settle(pilot)

        await pilot.press("a")
        await settle(pilot)
        out["bob_selected"] = officer_in(app)
        await type_passphrase(pilot, secret(root, "bob"))
        out["approvals"] = sorted(screen.approvals)

        # x shows what will happen; escape runs nothing.
        size = ws.ledger.size
        await pilot.press("x")
        await settle(pilot)
        out["confirm_shown"] = isinstance(app.screen, ExecuteDialog)
        out["confirm_text"] = text_of(app, "#execute-body") + "\n" + \
            text_of(app, "#execute-quorum")
        out["confirm_destructive"] = bool(app.screen.query("#confirm-text"))
        await pilot.press("escape")
        await settle(pilot)
        out["after_cancel_types"] = ledger_types(ws, size)
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        out["finished"] = screen.finished
        out["run_errors"] = list(app.errors)[len(out["errors"]):]

        # Back to the dashboard without r: it shows the ledger as it is now.
        await pilot.press("d")
        await settle(pilot)
        keysets = app.screen.query_one("#keysets", OptionList)
        out["dashboard_after"] = str(keysets.get_option_at_index(0).prompt)
        out["keys_after"] = app.screen.query_one("#keys").row_count  # type: ignore[attr-defined]
        out["header"] = header(app)
        out["ledger_size"] = ws.ledger.size
        out["ledger_changed"] = [m.what for m in seen if isinstance(m, LedgerChanged)]
    ws.close()
    return out


async def destructive(root: Path, now: datetime) -> dict[str, Any]:
    ws = Workspace.open(root)
    app = CeremonyApp(Backend(ws, clock=lambda: now), check_health=False)
    out: dict[str, Any] = {}
    async with app.run_test(size=(120, 44)) as pilot:
        await settle(pilot)
        out["dashboard_banner"] = text_of(app, "#open-plans")
        await pilot.press("c")
        await settle(pilot)
        screen: Any = app.screen
        out["plan_id"] = screen.planned.plan_id if screen.planned else None
        out["banner"] = text_of(app, "#open-banner")
        for _ in range(3):
            await pilot.press("a")
            await settle(pilot)
            await type_passphrase(pilot, secret(root, officer_in(app)))
        out["approvals"] = sorted(screen.approvals)
        size = ws.ledger.size
        await pilot.press("x")
        await settle(pilot)
        out["confirm_shown"] = isinstance(app.screen, ExecuteDialog)
        out["confirm_destructive"] = bool(app.screen.query("#confirm-text"))
        await pilot.press("enter")  # nothing typed
        await settle(pilot)
        out["empty_refused"] = isinstance(app.screen, ExecuteDialog)
        await pilot.press(*"not the words")
        await pilot.press("enter")
        await settle(pilot)
        out["wrong_refused"] = isinstance(app.screen, ExecuteDialog)
        out["refusal"] = text_of(app, "#execute-status")
        out["types_while_asking"] = ledger_types(ws, size)
        field = app.screen.query_one("#confirm-text", Input)
        field.value = ""
        words = " ".join(screen.planned.words[:2])
        await pilot.press(*words)
        await pilot.press("enter")
        await settle(pilot)
        out["finished"] = screen.finished
        out["errors"] = list(app.errors)
    ws.close()
    return out


async def idle(root: Path, now: datetime) -> dict[str, Any]:
    ws = Workspace.open(root)
    backend = GatedBackend(ws, clock=lambda: now)
    app = CeremonyApp(backend, check_health=False, card_idle_seconds=2.0)
    out: dict[str, Any] = {}
    async with app.run_test(size=(120, 44)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        screen: Any = app.screen
        await pilot.press("p")
        await settle(pilot)
        for _ in range(2):
            await pilot.press("a")
            await settle(pilot)
            await type_passphrase(pilot, secret(root, officer_in(app)))
        out["cards_after_approval"] = sorted(screen._cards)
        await pilot.pause(3.5)  # no key pressed: longer than the idle time
        out["cards_after_idle"] = sorted(screen._cards)
        out["approvals_text"] = text_of(app, "#approvals")

        # x asks the approving officers to unlock again before showing the plan to run.
        await pilot.press("x")
        await settle(pilot)
        out["x_asks_cards"] = isinstance(app.screen, ApprovalDialog)
        out["unlock_title"] = str(app.screen.query_one(".dialog-title", Static).render())
        out["unlocked"] = await unlock_all(pilot, root)
        out["then_confirm"] = isinstance(app.screen, ExecuteDialog)
        await pilot.press("escape")
        await settle(pilot)

        # Leaving the Ceremony screen wipes them too.
        out["cards_before_leaving"] = sorted(screen._cards)
        await pilot.press("l")
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        out["cards_after_leaving"] = sorted(screen._cards)
        out["leaving_text"] = text_of(app, "#approvals")

        # Run with the gate closed: ctrl+q asks and does not quit.
        await pilot.press("x")
        await settle(pilot)
        out["unlocked_again"] = await unlock_all(pilot, root)
        backend.gate.clear()
        await pilot.press("enter")
        await pilot.pause(0.2)
        out["running"] = app.ceremony_running()
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        out["quit_asks"] = isinstance(app.screen, QuitDialog)
        await pilot.press("escape")
        await pilot.pause(0.2)
        out["still_running_after_escape"] = app.is_running and app.ceremony_running()
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        await pilot.click("#quit-later")
        await pilot.pause(0.2)
        out["running_after_quit_later"] = app.is_running
        backend.gate.set()
        for _ in range(300):
            if not app.is_running:
                break
            await asyncio.sleep(0.1)
        out["exited_after_run"] = not app.is_running
        out["finished"] = screen.finished
        out["errors"] = list(app.errors)
    ws.close()
    return out


async def interrupted(root: Path, now: datetime, *, key: str) -> dict[str, Any]:
    ws = Workspace.open(root)
    size = ws.ledger.size
    app = CeremonyApp(Backend(ws, clock=lambda: now), check_health=False)
    out: dict[str, Any] = {}
    async with app.run_test(size=(120, 44)) as pilot:
        await settle(pilot)
        out["dashboard_banner"] = text_of(app, "#open-plans")
        out["dashboard_warnings"] = text_of(app, "#warnings")
        keysets = app.screen.query_one("#keysets", OptionList)
        out["dashboard_keyset"] = str(keysets.get_option_at_index(0).prompt)
        await pilot.press("g")
        await settle(pilot)
        out["mode"] = app.current_mode
        screen: Any = app.screen
        out["plan_id"] = screen.planned.plan_id if screen.planned else None
        out["banner"] = text_of(app, "#open-banner")
        out["plan_title"] = str(screen.query_one("#plan-title").render())
        await pilot.press("a")  # approving an interrupted plan is not what it needs
        await settle(pilot)
        out["approve_refused"] = not isinstance(app.screen, ApprovalDialog)
        await pilot.press(key)
        await settle(pilot)
        out["dialog_title"] = str(app.screen.query_one(".dialog-title", Static).render())
        out["dialog_officers"] = [str(o[0]) for o in
                                  app.screen.query_one("#officer")._options]  # type: ignore
        out["unlocked"] = await unlock_all(pilot, root)
        if key == "u":
            out["confirm_shown"] = isinstance(app.screen, ExecuteDialog)
            out["confirm_text"] = text_of(app, "#execute-body")
            await pilot.press("enter")
            await settle(pilot)
        out["finished"] = screen.finished
        out["errors"] = list(app.errors)
        out["transcript"] = [str(line.text) for line in screen.query_one("#transcript").lines]
        out["types"] = ledger_types(ws, size)
        await pilot.press("d")
        await settle(pilot)
        out["dashboard_banner_after"] = text_of(app, "#open-plans")
    ws.close()
    return out


async def other_console(root: Path, now: datetime) -> dict[str, Any]:
    """The TUI stays open on the dashboard while the CLI runs a whole ceremony in another
    process; the TUI shows the new ledger size and bundle without a key press."""
    from tests.integration.ceremony_helpers import after, cli

    ws = Workspace.open(root)
    app = CeremonyApp(Backend(ws, clock=lambda: now), check_health=False)
    out: dict[str, Any] = {}
    async with app.run_test(size=(120, 44)) as pilot:
        await settle(pilot)
        out["header_before"] = header(app)
        out["dashboard_before"] = app.screen.query_one("#keysets", OptionList) \
            .get_option_at_index(0).prompt.__str__()
        run = await asyncio.to_thread(cli, root, "run", "export-only", "--officer", "alice",
                                      "--officer", "bob", "--now", after(root))
        out["cli_returncode"], out["cli_stderr"] = run.returncode, run.stderr[-2000:]
        out["size_after_cli"] = Workspace.open(root).ledger.size
        for _ in range(60):  # the poll is a few seconds; give it ten times that at most
            await pilot.pause(0.5)
            if str(out["size_after_cli"]) in header(app):
                break
        out["header_after"] = header(app)
        out["dashboard_after"] = str(
            app.screen.query_one("#keysets", OptionList).get_option_at_index(0).prompt)
    ws.close()
    return out


def main() -> None:
    scenario, root, dest = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    now = datetime.fromisoformat(sys.argv[4].replace("Z", "+00:00")) if len(sys.argv) > 4 \
        else Workspace.open(root).now()
    runs = {
        "rotation": lambda: rotation(root, now),
        "destructive": lambda: destructive(root, now),
        "idle": lambda: idle(root, now),
        "resume": lambda: interrupted(root, now, key="u"),
        "abort": lambda: interrupted(root, now, key="b"),
        "other_console": lambda: other_console(root, now),
    }
    result = asyncio.run(runs[scenario]())
    dest.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()

"""The Textual app: six screens as modes, a header of health facts, keys, palette, help, errors.

The app holds the `Backend` (one opened workspace) and no rule of its own. Health (HSM, ledger,
reconciliation) loads in a thread worker at start and after each ceremony; errors from any worker
arrive as `OperationFailed` and open an `ErrorDialog` with the line the CLI would print.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console.errors import ConsoleError
from console.tui.backend import Backend, Health, clock_text
from console.tui.dialogs.error import ErrorDialog
from console.tui.dialogs.help import HelpDialog
from console.tui.messages import HealthLoaded, OperationFailed
from console.tui.screens import (
    CeremonyScreen,
    DashboardScreen,
    ExportsScreen,
    HsmScreen,
    LedgerScreen,
    OfficersScreen,
)

SCREENS_BY_KEY: tuple[tuple[str, str, str], ...] = (
    ("d", "dashboard", "Dashboard"),
    ("c", "ceremony", "Ceremony"),
    ("l", "ledger", "Ledger"),
    ("e", "exports", "Exports"),
    ("o", "officers", "Officers"),
    ("h", "hsm", "HSM"),
)


class CeremonyApp(App[None]):
    """The Key Ceremony Console."""

    TITLE = "Key Ceremony Console"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "dashboard": DashboardScreen,
        "ceremony": CeremonyScreen,
        "ledger": LedgerScreen,
        "exports": ExportsScreen,
        "officers": OfficersScreen,
        "hsm": HsmScreen,
    }
    DEFAULT_MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"show('{mode}')", title) for key, mode, title in SCREENS_BY_KEY),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    health: reactive[Health | None] = reactive(None)
    clock_text: reactive[str] = reactive("")

    def __init__(self, backend: Backend, *, check_health: bool = True) -> None:
        super().__init__()
        self.backend = backend
        self._check_health = check_health
        self.errors: list[str] = []

    def on_mount(self) -> None:
        self._tick()
        self.set_interval(30, self._tick)
        if self._check_health:
            self.refresh_health()

    def _tick(self) -> None:
        try:
            self.clock_text = clock_text(self.backend.now())
        except ConsoleError as e:
            self.clock_text = f"clock ! {e.message}"

    # --- navigation ------------------------------------------------------------------------

    def action_show(self, mode: str) -> None:
        if self.current_mode != mode:
            self.switch_mode(mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpDialog):
            self.push_screen(HelpDialog())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, mode, title in SCREENS_BY_KEY:
            yield SystemCommand(f"Go to {title}", f"switch to the {title} screen ({key})",
                                _call(self.action_show, mode))
        yield SystemCommand("Help", "every key the console understands", self.action_help)
        yield SystemCommand("Refresh health", "re-check the HSM, ledger and reconciliation",
                            self.refresh_health)
        for binding in getattr(screen, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description:
                yield SystemCommand(f"{binding.description}", f"key {binding.key}",
                                    _call(screen.run_action, binding.action))

    # --- health ----------------------------------------------------------------------------

    def refresh_health(self) -> None:
        backend = self.backend

        def job() -> None:
            try:
                health = backend.health()
            except ConsoleError as e:
                self.post_message(OperationFailed("Checking health", e))
                return
            self.post_message(HealthLoaded(health))

        self.run_worker(job, thread=True, exit_on_error=False, group="health", exclusive=True,
                        description="Checking HSM, ledger and reconciliation")

    @on(HealthLoaded)
    def _health_loaded(self, message: HealthLoaded) -> None:
        self.health = message.health
        self._tick()

    # --- errors ----------------------------------------------------------------------------

    @on(OperationFailed)
    def _failed(self, message: OperationFailed) -> None:
        line = message.error.user_message()
        self.errors.append(line)
        self.push_screen(ErrorDialog(message.what, line))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            line = (error.user_message() if isinstance(error, ConsoleError)
                    else f"internal error: {type(error).__name__}: {error}")
            self.errors.append(line)
            self.push_screen(ErrorDialog(event.worker.description or "Error", line))


def _call(fn: Callable[[str], Any], arg: str) -> Callable[[], Any]:
    return lambda: fn(arg)


def run_app(ws: Any, *, clock: Callable[[], datetime] | None = None) -> None:
    """Open the TUI on an opened workspace (the CLI's `ceremony [--workspace DIR]`)."""
    CeremonyApp(Backend(ws, clock=clock)).run()

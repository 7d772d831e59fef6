"""The Textual app: six screens as modes, a header of health facts, keys, palette, help, errors.

The app holds the `Backend` (one opened workspace) and no rule of its own. Health (HSM, ledger,
reconciliation) loads in a thread worker at start and after each ceremony; errors from any worker
arrive as `OperationFailed` and open an `ErrorDialog` with the line the CLI would print.

Screens stay true: whatever appends to the ledger posts `LedgerChanged` (and a timer notices
appends by another console); the app then re-reads the header's ledger facts and bumps
`ledger_version`, which every screen watches (re-reading at once if shown, else when next shown).
The app also keeps the time of the last key or click, by which the Ceremony screen wipes idle
unlocked cards, and refuses to quit silently while a ceremony step runs.

It paints first (DESIGN: "a console that paints at once"): this module imports only the
dashboard and what its first frame needs; the other screens and the dialogs are imported when
first shown, and the workspace (its ledger checks, the trust chain) opens in a thread worker
started after the first frame, while the screens say they are loading.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console.errors import ConsoleError
from console.tui.backend import Backend, Health, clock_text
from console.tui.messages import HealthLoaded, LedgerChanged, OperationFailed
from console.tui.screens.dashboard import DashboardScreen

if TYPE_CHECKING:
    from console.workspace import Workspace

SCREENS_BY_KEY: tuple[tuple[str, str, str], ...] = (
    ("d", "dashboard", "Dashboard"),
    ("c", "ceremony", "Ceremony"),
    ("l", "ledger", "Ledger"),
    ("e", "exports", "Exports"),
    ("o", "officers", "Officers"),
    ("h", "hsm", "HSM"),
)

SCREEN_KEYS = Binding.Group("screens", compact=True)

SCREEN_CLASSES: dict[str, str] = {
    "dashboard": "console.tui.screens.dashboard:DashboardScreen",
    "ceremony": "console.tui.screens.ceremony:CeremonyScreen",
    "ledger": "console.tui.screens.ledger:LedgerScreen",
    "exports": "console.tui.screens.exports:ExportsScreen",
    "officers": "console.tui.screens.officers:OfficersScreen",
    "hsm": "console.tui.screens.hsm:HsmScreen",
}
"""Where each mode's screen lives: imported when the screen is first shown (or its bindings
are listed), so that launching imports the dashboard only."""


def screen_class(mode: str) -> type[Screen[None]]:
    """The screen class of `mode` (imported on first use)."""
    module, _, name = SCREEN_CLASSES[mode].partition(":")
    found: type[Screen[None]] = getattr(importlib.import_module(module), name)
    return found


def _screen_factory(mode: str) -> Callable[[], Screen[None]]:
    return lambda: screen_class(mode)()

CARD_IDLE_SECONDS = 5 * 60.0
"""Unlocked officer cards are wiped after this long without a key press or click."""
LEDGER_POLL_SECONDS = 5.0
"""How often the app looks for entries another console appended."""
PREFETCH_GRACE_SECONDS = 0.25
"""How long after the first frame the console's own open of the workspace waits for the keyset
rows the launch's child process reads (demo workspace: they come within a few tens of ms; a
large ledger's come later, and its open goes ahead meanwhile)."""
RUN_GROUP = "ceremony-run"
"""The worker group of a ceremony's run (execute or resume)."""


class CeremonyApp(App[None]):
    """The Key Ceremony Console."""

    TITLE = "Key Ceremony Console"
    CSS_PATH = "app.tcss"
    # The dashboard is the default mode's screen from `get_default_screen`, not a MODES entry:
    # Textual installs a MODES screen with a full CSS re-parse and lays it out and renders it
    # once inside its start-up batch (a frame never shown), then again for the first frame;
    # the default screen is composed once, after the batch (about 30 ms of a 250 ms launch,
    # issue 16). `on_mount` names the mode, so that `d` switches back to it.
    MODES: ClassVar[dict[str, str | Callable[[], Screen[None]]]] = {
        mode: _screen_factory(mode) for mode in SCREEN_CLASSES if mode != "dashboard"
    }
    DEFAULT_MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        # One compact footer group ("d c l e o h screens"): every screen key stays visible at
        # 80 columns, with ? and ^q, whatever the screen's own keys.
        *(Binding(key, f"show('{mode}')", title, group=SCREEN_KEYS)
          for key, mode, title in SCREENS_BY_KEY),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    health: reactive[Health | None] = reactive(None)
    clock_text: reactive[str] = reactive("")
    ledger_version: reactive[int] = reactive(0)
    workspace_open: reactive[bool] = reactive(False)
    """Set once the workspace opened (at once for a backend made over an opened one)."""

    def __init__(self, backend: Backend, *, check_health: bool = True,
                 card_idle_seconds: float = CARD_IDLE_SECONDS) -> None:
        super().__init__()
        self.backend = backend
        self._check_health = check_health
        self.card_idle_seconds = card_idle_seconds
        self.errors: list[str] = []
        self.last_input = time.monotonic()
        self.quit_after_run = False
        self._ledger_size: int | None = None
        self.set_reactive(CeremonyApp.workspace_open, backend.ready)

    def get_default_screen(self) -> Screen[None]:
        return DashboardScreen()

    def on_mount(self) -> None:
        # The default mode's stack holds the dashboard by now (see MODES): named, `d` finds it.
        self.add_mode(self.DEFAULT_MODE, DashboardScreen)
        self._tick()
        self.set_interval(30, self._tick)
        self.set_interval(LEDGER_POLL_SECONDS, self._poll_ledger)
        if self.backend.ready:
            self._take_ledger_baseline()

    _first_frame = False
    _loading = False

    def on_ready(self) -> None:
        """The first frame is drawn: Textual posts `Ready` once, right after the first layout
        of the first screen is drawn. The loading starts now (`start_loading`), or once the
        keyset rows the launch's child read are drawn too."""
        self._first_frame = True
        if self.backend.prefetching and not self._prefetch_settled:
            # The keyset rows are still to come from the launch's child process: drawing them
            # is this thread's work, which the open's worker would slow by half (it holds the
            # GIL while it imports and checks). The dashboard says when they are drawn or the
            # child failed (`prefetch_settled`); a child slower than this waits no longer.
            self.set_timer(PREFETCH_GRACE_SECONDS, self.start_loading)
            return
        self.start_loading()

    _prefetch_settled = False

    @property
    def first_frame_drawn(self) -> bool:
        return self._first_frame

    def prefetch_settled(self) -> None:
        """The dashboard drew the launch's child's data, or the child ended without it."""
        self._prefetch_settled = True
        self.start_loading()

    def start_loading(self) -> None:
        """Open the workspace and check health in workers (once, and not before the first
        frame).

        After the first frame: a worker holds the GIL for most of its run, and started sooner
        it would delay the first paint by about its own duration (on a large ledger, the trust
        checks at open take a second).
        """
        if self._loading or not self._first_frame:
            return
        self._loading = True
        if not self.backend.ready:
            self._open_workspace()
        if self._check_health:
            self.refresh_health()

    def _take_ledger_baseline(self) -> None:
        # Taken as soon as the ledger is open: a ceremony another console finishes before the
        # first poll must still count as a change.
        with contextlib.suppress(ConsoleError):
            self._ledger_size = int(self.backend.ledger.size)

    def _open_workspace(self) -> None:
        """Open the workspace (its ledger checks, the trust chain) after the first paint; a
        failure ends the app, and `run_app` reports it as the CLI does."""
        backend = self.backend

        def job() -> None:
            try:
                backend.open()
            except ConsoleError:
                self.call_from_thread(self.exit)
                return
            self.call_from_thread(self._workspace_opened)

        self.run_worker(job, thread=True, exit_on_error=False, group="open",
                        description="Opening the workspace")

    def _workspace_opened(self) -> None:
        if self._ledger_size is None:
            self._take_ledger_baseline()
        self.workspace_open = True
        self._tick()
        self.refresh(layout=True)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown):
            self.last_input = time.monotonic()
        await super().on_event(event)

    def idle_seconds(self) -> float:
        return time.monotonic() - self.last_input

    # --- quitting --------------------------------------------------------------------------

    def ceremony_running(self) -> bool:
        return any(w.group == RUN_GROUP and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in self.workers)

    async def action_quit(self) -> None:
        if not self.ceremony_running():
            self.exit()
            return
        from console.tui.dialogs.quit import QuitDialog

        if isinstance(self.screen, QuitDialog):
            return
        self.push_screen(QuitDialog(), self._quit_answered)

    def _quit_answered(self, later: bool | None) -> None:
        if not later:
            return
        self.quit_after_run = True
        if not self.ceremony_running():
            self.exit()
            return
        self.notify("the console quits when the run has finished", timeout=10)

    def run_finished(self) -> None:
        """The Ceremony screen's run ended (its result is on screen): quit if asked to."""
        if self.quit_after_run:
            self.exit()

    def _tick(self) -> None:
        if not self.backend.ready:
            self.clock_text = "opening the workspace…"
            return
        try:
            self.clock_text = clock_text(self.backend.now())
        except ConsoleError as e:
            self.clock_text = f"clock ! {e.message}"

    # --- navigation ------------------------------------------------------------------------

    def action_show(self, mode: str) -> None:
        if self.current_mode != mode:
            self.switch_mode(mode)

    def action_help(self) -> None:
        from console.tui.dialogs.help import HelpDialog

        if not isinstance(self.screen, HelpDialog):
            self.push_screen(HelpDialog())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, mode, title in SCREENS_BY_KEY:
            yield SystemCommand(f"Go to {title}", f"switch to the {title} screen ({key})",
                                _call(self.action_show, mode))
        yield SystemCommand("Help", "every key the console understands", self.action_help)
        yield SystemCommand("Refresh health", "re-check the HSM, ledger and reconciliation",
                            self.refresh_health)
        # Every action of every screen, by name, from wherever the palette is opened: choosing
        # one goes to its screen and does it there.
        for _key, mode, title in SCREENS_BY_KEY:
            for binding in screen_bindings(screen_class(mode)):
                key = binding.key_display or binding.key.split(",")[0]
                yield SystemCommand(f"{title}: {binding.description}",
                                    f"key {key} on the {title} screen",
                                    self._on_screen(mode, binding.action))

    def _on_screen(self, mode: str, action: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            if self.current_mode != mode:
                await self.switch_mode(mode)
            await self.screen.run_action(action)

        return run

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

    # --- ledger changes --------------------------------------------------------------------

    @on(LedgerChanged)
    def _ledger_changed(self, message: LedgerChanged) -> None:
        self.ledger_version += 1
        self._refresh_ledger_fact()
        if self._check_health:
            self.refresh_health()

    def _refresh_ledger_fact(self) -> None:
        """The header's entry count at once (health also re-checks the HSM, which is slow)."""
        backend = self.backend

        def job() -> None:
            try:
                summary = backend.ledger_summary()
            except ConsoleError as e:
                self.post_message(OperationFailed("Reading the ledger", e))
                return
            self._ledger_size = summary.size
            health = self.health or Health("HSM", None, "", True, "reconcile", None)
            self.post_message(HealthLoaded(dataclasses.replace(
                health, ledger=f"ledger {summary.size:,} entries")))

        self.run_worker(job, thread=True, exit_on_error=False, group="ledger-fact",
                        description="Reading the ledger size")

    def _poll_ledger(self) -> None:
        """Entries appended without a message (another console, the CLI, failed unlocks)."""
        if self.ceremony_running() or not self.backend.ready:
            return
        try:
            size = int(self.backend.ledger.size)
        except ConsoleError:
            return
        if self._ledger_size is None:
            self._ledger_size = size
        elif size != self._ledger_size:
            self._ledger_size = size
            self.post_message(LedgerChanged("ledger grew"))

    # --- errors ----------------------------------------------------------------------------

    @on(OperationFailed)
    def _failed(self, message: OperationFailed) -> None:
        self._show_error(message.what, message.error.user_message())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            line = (error.user_message() if isinstance(error, ConsoleError)
                    else f"internal error: {type(error).__name__}: {error}")
            self._show_error(event.worker.description or "Error", line)

    def _show_error(self, what: str, line: str) -> None:
        from console.tui.dialogs.error import ErrorDialog

        self.errors.append(line)
        self.push_screen(ErrorDialog(what, line))


def screen_bindings(screen: type[Screen[None]]) -> list[Binding]:
    """A screen's named bindings, its bases' included (each action once, the subclass's
    first)."""
    found: dict[str, Binding] = {}
    for klass in screen.__mro__:
        for binding in vars(klass).get("BINDINGS", ()):
            if isinstance(binding, Binding) and binding.description:
                found.setdefault(binding.action, binding)
    return list(found.values())


def _call(fn: Callable[[str], None], arg: str) -> Callable[[], None]:
    return lambda: fn(arg)


def launched(backend: Backend, *, check_health: bool = True) -> CeremonyApp:
    """The app as a launch makes it, once everything the first frame needs is imported.

    The modules, classes and functions imported by now live as long as the process: frozen out
    of the garbage collector (`gc.freeze`), they are no longer scanned at every full collection,
    of which composing the first screen triggers dozens (each scanning the few hundred thousand
    objects Textual's import left: tens of milliseconds before the first frame, issue 16).
    """
    gc.freeze()
    return CeremonyApp(backend, check_health=check_health)


def run_app(ws: Workspace | Callable[[], Workspace] | Backend, *,
            clock: Callable[[], datetime] | None = None) -> None:
    """Open the TUI on an opened workspace, on one that `ws()` opens (a callable: the CLI's
    `ceremony [--workspace DIR]`, which paints before the workspace opens), or on a `Backend`
    made before this module was imported (`Backend.opening(..., prefetch=True)`: the launch's
    child process reads the dashboard's data while Textual loads; `clock` is then the
    backend's).

    Raises:
        ConsoleError: what opening the workspace raised (the app ended at once).
    """
    if isinstance(ws, Backend):
        backend = ws
    else:
        backend = Backend.opening(ws, clock=clock) if callable(ws) else Backend(ws, clock=clock)
    launched(backend).run()
    if backend.open_error is not None:
        raise backend.open_error

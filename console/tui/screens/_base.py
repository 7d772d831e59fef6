"""What every screen shares: the header, the footer, loading data in thread workers, and
re-reading it whenever the ledger changes (the app's `ledger_version`): at once when shown,
else when the screen is next shown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import Screen
from textual.signal import Signal

from console.errors import ConsoleError
from console.tui.messages import OperationFailed
from console.tui.widgets.footer import ConsoleFooter
from console.tui.widgets.header import ConsoleHeader

if TYPE_CHECKING:
    from console.tui.app import CeremonyApp
    from console.tui.backend import Backend

T = TypeVar("T")

SCREENS_CSS = Path(__file__).parents[1] / "screens.tcss"
"""The rules of every screen but the dashboard, and of the dialogs: each of them names it as
its CSS_PATH, so that Textual reads it when the first of them is shown, not at launch (the
dashboard's are in app.tcss)."""


def after_next_frame(screen: DOMNode, signal: Signal[Screen[object]],
                     callback: Callable[[], None]) -> None:
    """Call `callback` once `screen` (whose layout-refresh signal is `signal`) has drawn its
    next frame.

    Textual publishes the signal right after drawing the frame, or, inside a batch update, right
    after queueing the drawing on the screen; the callback is queued on the screen too, so it
    runs after the frame either way (`call_after_refresh` can run before the first frame is
    drawn). Loading workers start here:
    a worker holds the GIL for most of its run, and started before the first frame it would
    delay it by about its own duration (opening a large ledger takes a second).
    """
    done = False

    def painted(_screen: Screen[object]) -> None:
        nonlocal done
        if done:
            return
        done = True
        # Not `signal.unsubscribe(screen)`: that drops every callback of the screen, Textual's
        # own tooltip clearing among them. Once done, this one returns at once.
        callback()

    signal.subscribe(screen, painted)


class ConsoleScreen(Screen[None]):
    """A screen whose body comes from `compose_body` and whose data from `refresh_data`."""

    # Screens refresh themselves on every ledger change; r stays (help, palette), the footer
    # keeps its room for the screen keys, ? and ^q at 80 columns.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh", show=False)]

    @dataclass
    class Loaded(Message):
        key: str
        value: object
        """What the load's call returned: `show_<key>` takes it with its own type."""

    @property
    def console(self) -> CeremonyApp:
        """The app, typed (every ConsoleScreen runs inside the CeremonyApp)."""
        return cast("CeremonyApp", self.app)

    @property
    def backend(self) -> Backend:
        return self.console.backend

    def compose(self) -> ComposeResult:
        yield ConsoleHeader(id="header")
        yield from self.compose_body()
        yield ConsoleFooter()

    def compose_body(self) -> ComposeResult:
        yield from ()

    _stale = False

    def on_mount(self) -> None:
        if self.backend.ready:
            after_next_frame(self, self.screen_layout_refresh_signal, self.refresh_data)
        else:
            # The workspace opens in the app's worker after the first frame: load then, one
            # job after the other rather than competing for the GIL with the first paint.
            self.watch(self.console, "workspace_open", self._workspace_opened, init=False)
        self.watch(self.app, "ledger_version", self._ledger_changed, init=False)

    def _workspace_opened(self, is_open: bool) -> None:
        if is_open:
            self.refresh_data()

    def _ledger_changed(self, version: int) -> None:
        if version == 0:  # the app's reactive being initialised, not a change
            return
        if self.is_current:
            self.refresh_data()
        else:
            self._stale = True

    def on_screen_resume(self) -> None:
        if self._stale:
            self._stale = False
            self.refresh_data()

    def refresh_data(self) -> None:
        """Start the workers that load this screen's data."""

    def action_refresh(self) -> None:
        self.refresh_data()

    def load(self, key: str, call: Callable[[], T], description: str) -> None:
        """Run `call` in a thread worker; its value arrives as `Loaded(key, value)`."""

        def job() -> None:
            try:
                value = call()
            except ConsoleError as e:
                self.post_message(OperationFailed(description, e))
                return
            self.post_message(self.Loaded(key, value))

        self.run_worker(job, thread=True, exit_on_error=False, group=f"load-{key}",
                        description=description, exclusive=True)

    def on_console_screen_loaded(self, message: Loaded) -> None:
        message.stop()
        handler = getattr(self, f"show_{message.key}", None)
        if handler is not None:
            handler(message.value)

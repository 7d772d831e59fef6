"""The run of a ceremony: one row per step with its mark, a spinner while running, elapsed time."""

from __future__ import annotations

import time

from rich.text import Text
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Static

from console.ceremony.progress import StepEvent

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_MARK = {"pending": " ", "done": "✓", "skipped": "·", "failed": "✗"}


class StepRow(Static):
    """One step; while `started` it spins and counts seconds (a key generation takes seconds)."""

    DEFAULT_CSS = "StepRow { height: 1; }"

    def __init__(self, n: int, action: str, description: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.n, self.action, self.description = n, action, description
        self.status = "pending"
        self.detail = ""
        self.elapsed = 0.0
        self._started = 0.0
        self._frame = 0
        self._timer: Timer | None = None

    def on_mount(self) -> None:
        self._redraw()

    def apply(self, event: StepEvent) -> None:
        self.status, self.detail = event.status, event.detail
        if event.status == "started":
            self._started = time.monotonic()
            if self._timer is None:
                self._timer = self.set_interval(0.1, self._tick)
        else:
            self.elapsed = event.elapsed
            if self._timer is not None:
                self._timer.stop()
                self._timer = None
        self.set_class(event.status == "failed", "-failed")
        self._redraw()

    def _tick(self) -> None:
        self._frame += 1
        self.elapsed = time.monotonic() - self._started
        self._redraw()

    def _redraw(self) -> None:
        running = self.status == "started"
        mark = SPINNER[self._frame % len(SPINNER)] if running else _MARK.get(self.status, "?")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{mark} {self.n:>2} ", style="bold")
        text.append(f"{self.description[:52]:<52} ",
                    style="dim" if self.status == "pending" else "")
        if self.status != "pending":
            text.append(f"{self.elapsed:5.1f} s  ")
        if self.detail:
            text.append(self.detail)
        self.update(text)


class StepList(Vertical):
    """Holds the StepRows of a plan."""

    DEFAULT_CSS = "StepList { height: auto; }"

    def row(self, n: int) -> StepRow | None:
        for child in self.query(StepRow):
            if child.n == n:
                return child
        return None

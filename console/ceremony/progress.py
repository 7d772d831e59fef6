"""How a running ceremony reports progress to a face (CLI lines, TUI widgets).

The engine calls a `ProgressSink`; the CLI's sink prints to stderr, the TUI's posts messages
from its worker thread. Sinks must be cheap and must not raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One step's change of status: started, done (with a one-line result) or failed."""

    n: int
    total: int
    action: str
    description: str
    status: str  # "started" | "done" | "skipped" | "failed"
    detail: str = ""
    elapsed: float = 0.0


class ProgressSink(Protocol):
    def step(self, event: StepEvent) -> None: ...

    def message(self, text: str) -> None: ...


class LineProgress:
    """A sink that writes one line per event through `write` (the CLI passes stderr)."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def step(self, event: StepEvent) -> None:
        mark = {"started": "…", "done": "✓", "skipped": "·", "failed": "✗"}.get(event.status, "?")
        if event.status == "started":
            self._write(f"{mark} {event.n}/{event.total} {event.description}")
        else:
            detail = f" — {event.detail}" if event.detail else ""
            self._write(f"{mark} {event.n}/{event.total} {event.description} "
                        f"({event.elapsed:.1f} s){detail}")

    def message(self, text: str) -> None:
        self._write(text)


class NullProgress:
    def step(self, event: StepEvent) -> None:
        return None

    def message(self, text: str) -> None:
        return None

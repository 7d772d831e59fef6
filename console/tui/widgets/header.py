"""The one-line header: workspace, HSM, ledger, reconciliation and the (rehearsal) clock."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static


def _mark(ok: bool | None) -> tuple[str, str]:
    if ok is None:
        return "…", "header-unknown"
    return ("✓", "header-ok") if ok else ("!", "header-bad")


class ConsoleHeader(Static):
    """Watches the app's `health` and `clock` and redraws (text carries meaning, colour helps)."""

    DEFAULT_CSS = """
    ConsoleHeader { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "health", self._redraw, init=False)
        self.watch(self.app, "clock_text", self._redraw, init=False)
        self._redraw()

    def _redraw(self, _value: Any = None) -> None:
        app: Any = self.app
        health = app.health
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Key Ceremony Console", style="bold")
        text.append(f" · {app.backend.title}")
        if health is None:
            text.append(" · HSM … · ledger … · checking…", style="dim")
        else:
            for label, ok in ((health.hsm, health.hsm_ok), (health.ledger, health.ledger_ok),
                              (health.reconcile, health.reconcile_ok)):
                mark, _ = _mark(ok)
                style = "" if ok else ("bold red" if ok is False else "dim")
                shown = label if label.endswith(("✓", "!")) else f"{label} {mark}"
                text.append(" · ")
                text.append(shown, style=style)
        text.append(f" · {app.clock_text}", style="bold")
        self.update(text)

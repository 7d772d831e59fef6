"""The one-line header: workspace, HSM, ledger, reconciliation and the (rehearsal) clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from console.tui.app import CeremonyApp


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

    def _redraw(self, _value: object = None) -> None:
        app = cast("CeremonyApp", self.app)
        health = app.health
        parts: list[tuple[str, str]] = [(app.backend.title, "")]
        if health is None:
            parts.append(("HSM … · ledger … · checking…", "dim"))
        else:
            for label, ok in ((health.hsm, health.hsm_ok), (health.ledger, health.ledger_ok),
                              (health.reconcile, health.reconcile_ok)):
                mark, _ = _mark(ok)
                style = "" if ok else ("bold red" if ok is False else "dim")
                parts.append((label if label.endswith(("✓", "!")) else f"{label} {mark}", style))
        clock = (app.clock_text, "bold")
        width = max(self.size.width - 2, 20)
        title = "Key Ceremony Console · "
        used = sum(len(p) + 3 for p, _ in parts) + len(clock[0])
        text = Text(no_wrap=True, overflow="ellipsis")
        if used + len(title) <= width:  # the product name only when everything else fits
            text.append(title, style="bold")
        for part, style in parts:
            text.append(part, style=style or None)
            text.append(" · ")
        text.append(clock[0], style=clock[1])
        if used > width:  # keep the clock visible: shorten the middle, never the time
            plain = text.plain
            cut = plain[: width - len(clock[0]) - 4] + "… · " + clock[0]
            text = Text(cut, no_wrap=True)
        self.update(text)

    def on_resize(self) -> None:
        self._redraw()

"""Each key of a keyset as a bar over time: published ░, active █, retired ▒, now │.

Pure presentation of the times `status --json` reports; no lifecycle rule is computed here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from console.ceremony.status import KeyStatus

_STYLE = {"published": "cyan", "active": "green", "retired": "yellow", "archived": "dim",
          "suspended": "magenta", "compromised": "red"}


def _t(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def timeline_rows(keys: list[KeyStatus], now: datetime, width: int,
                  days: int = 180) -> list[Text]:
    """One Text per key: `width` cells covering `days` days ending 30 days after `now`."""
    end = now + timedelta(days=30)
    start = end - timedelta(days=days)
    step = (end - start) / max(width, 1)
    rows: list[Text] = []
    now_cell = int((now - start) / step)
    for key in keys:
        spans: list[tuple[datetime, datetime, str, str]] = []
        pub, act, ret = _t(key.get("published_at")), _t(key.get("activated_at")), \
            _t(key.get("retired_at"))
        gone = _t(key.get("archived_at")) or _t(key.get("compromised_at")) or \
            _t(key.get("destroyed_at"))
        stop = gone or end
        if pub:
            spans.append((pub, act or ret or stop, "░", "published"))
        if act:
            spans.append((act, ret or stop, "█", "active"))
        if ret:
            spans.append((ret, stop, "▒", "retired"))
        line = Text(no_wrap=True)
        for cell in range(width):
            at = start + step * cell + step / 2
            glyph, style = " ", ""
            for a, b, g, name in spans:
                if a <= at < b:
                    glyph, style = g, _STYLE[name]
            if cell == now_cell:
                glyph, style = ("│", "bold") if glyph == " " else (glyph, style + " reverse")
            line.append(glyph, style=style)
        rows.append(line)
    return rows


def month_ruler(now: datetime, width: int, days: int = 180) -> Text:
    end = now + timedelta(days=30)
    start = end - timedelta(days=days)
    step = (end - start) / max(width, 1)
    cells = [" "] * width
    last = ""
    for cell in range(width):
        at = start + step * cell
        label = at.strftime("%b")
        free = all(c == " " for c in cells[max(cell - 1, 0):cell + 4])
        if label != last and cell + 4 <= width and free:
            cells[cell:cell + 3] = list(label)
            last = label
    return Text("".join(cells), style="dim", no_wrap=True)


class KeyTimeline(Static):
    """Bars for the keys of one keyset (set with `show`)."""

    DEFAULT_CSS = "KeyTimeline { height: auto; }"

    _shown: tuple[list[KeyStatus], datetime] | None = None

    def show(self, keys: list[KeyStatus], now: datetime) -> None:
        self._shown = (keys, now)
        width = max(self.size.width - 12, 20)
        out = Text(no_wrap=True)
        out.append(" " * 11)
        out.append_text(month_ruler(now, width))
        for key, row in zip(keys, timeline_rows(keys, now, width), strict=True):
            out.append("\n")
            out.append(f"{str(key.get('kid', ''))[:9]:<10} ", style="bold")
            out.append_text(row)
        out.append("\n")
        out.append("░ published  █ active  ▒ retired  │ now", style="dim")
        self.update(out)

    def on_resize(self) -> None:
        # Shown before the first layout (data that was there at mount) or a resized terminal:
        # the bars fill the width they have now.
        if self._shown is not None:
            self.show(*self._shown)

"""The keys of one keyset as a table of text: kid, state, the times, and under a key the next
date and the rule behind it.

Text rather than a `DataTable`: on the dashboard nothing acts on a selected key, and the
DataTable was the dearest widget of the first frame (its module, its stylesheet, a cursor and
scrollbars: issue 16). Lines laid out here rather than a rich `Table`, which Textual renders
again for every measurement. Values are never cut: a pane narrower than a row scrolls sideways.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

COLUMNS = ("kid", "state", "published", "active", "retired")
GAP = "  "


class KeyTable(Static):
    """Rows set with `show`; `row_count` says how many keys are shown."""

    DEFAULT_CSS = "KeyTable { height: auto; }"

    row_count = 0

    def show(self, rows: Sequence[Sequence[str]]) -> None:
        """One line per key (its first five values), and its sixth, when set, on the next."""
        widths = [max([len(name), *(len(r[i]) for r in rows)]) for i, name in enumerate(COLUMNS)]
        text = Text(no_wrap=True)
        text.append(GAP.join(n.ljust(w) for n, w in zip(COLUMNS, widths, strict=True)).rstrip(),
                    style="bold")
        indent = " " * (widths[0] + len(GAP))
        widest = sum(widths) + len(GAP) * (len(widths) - 1)
        for row in rows:
            text.append("\n")
            text.append(GAP.join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())
            if len(row) > len(COLUMNS) and row[len(COLUMNS)]:
                said = f"next ≥ {row[len(COLUMNS)]}"
                text.append(f"\n{indent}")
                text.append(said, style="dim")
                widest = max(widest, len(indent) + len(said))
        self.row_count = len(rows)
        self.styles.min_width = widest
        self.update(text)

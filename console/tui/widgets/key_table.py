"""The keys of one keyset as a table of text: kid, state, the times, and the next date and the
rule behind it.

A text table rather than a `DataTable`: on the dashboard nothing acts on a selected key, and
the DataTable was the dearest widget of the first frame (its module, its stylesheet, a cursor
and scrollbars: issue 16); the text table also fits the pane's width instead of hiding the
last columns behind a horizontal scrollbar at 80 columns.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from textual.widgets import Static

COLUMNS = ("kid", "state", "published", "active", "retired", "next ≥ (why)")
WHY_MIN = 24
"""The reason's column wraps, but not narrower than this."""
GAP = 2


class KeyTable(Static):
    """Rows set with `show`; `row_count` says how many keys are shown."""

    DEFAULT_CSS = "KeyTable { height: auto; }"

    row_count = 0

    def show(self, rows: Sequence[Sequence[str]]) -> None:
        table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, GAP, 0, 0),
                      header_style="bold", expand=False)
        # Whole values or none: the times are never cut, the reason wraps in what is left, and
        # a pane narrower than that scrolls sideways (the widget's minimum width).
        widths = [max([len(name), *(len(r[i]) for r in rows)])
                  for i, name in enumerate(COLUMNS[:-1])]
        why = min(max([len(COLUMNS[-1]), *(len(r[-1]) for r in rows)]), WHY_MIN)
        for name, width in zip(COLUMNS[:-1], widths, strict=True):
            table.add_column(name, no_wrap=True, min_width=width)
        table.add_column(COLUMNS[-1], overflow="fold", min_width=why)
        for row in rows:
            table.add_row(*row)
        self.row_count = len(rows)
        self.styles.min_width = sum(widths) + why + GAP * len(widths)
        self.update(table)

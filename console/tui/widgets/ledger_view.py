"""A virtual table over the ledger: only the rows on screen are ever loaded.

The view knows the (filtered) entry count and asks the backend for pages of `PAGE` entries,
newest first, from a thread worker; rows not loaded yet show as "…" until their page arrives. An
LRU cache keeps `CACHE_PAGES` pages of formatted rows, so memory stays flat whatever the ledger's
size (a million entries scroll like a hundred). Ledger text is made inert with
`escape_for_display` and drawn as plain segments: no markup is ever interpreted.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.clock import format_time
from console.errors import ConsoleError
from console.jsontypes import JsonMapping
from console.ledger.display import escape_for_display

if TYPE_CHECKING:
    from console.ledger import Entry

PAGE = 100
CACHE_PAGES = 40

Row = tuple[int, str, str, str, str]  # seq, time, type, actor, summary
PageLoader = Callable[[int, int], list["Entry"]]


def summarize(entry_type: str, data: JsonMapping) -> str:
    """A short human line for one entry (presentation only; the detail dialog shows all)."""
    def kid(value: object) -> str:
        text = str(value or "")
        return text[:8] + "…" if len(text) > 9 else text

    if entry_type == "key.generated":
        return f"{data.get('keyset')} {data.get('alg')} {kid(data.get('kid'))} " \
               f"({data.get('purpose', 'token')})"
    if entry_type == "key.state_changed":
        return f"{data.get('keyset')} {kid(data.get('kid'))} {data.get('from')} → {data.get('to')}"
    if entry_type == "bundle.exported":
        kids = data.get("kids")
        return f"{data.get('keyset')} #{data.get('seq')}, " \
               f"{len(kids) if isinstance(kids, Sized) else 0} keys"
    if entry_type == "checkpoint.signed":
        return f"tree size {data.get('size')}"
    if entry_type.startswith("officer."):
        return str(data.get("name", ""))
    if entry_type == "ceremony.approved":
        return f"plan {str(data.get('plan_id'))[:8]} by {data.get('officer')}"
    if entry_type.startswith("ceremony.step."):
        return f"plan {str(data.get('plan_id'))[:8]} step {data.get('step')} {data.get('action')}"
    if entry_type == "ceremony.planned":
        member = data.get("plan")
        plan: JsonMapping = member if isinstance(member, dict) else {}
        script = plan.get("script")
        name = script.get("name", "") if isinstance(script, dict) else script
        return f"{name} plan {str(plan.get('plan_id', ''))[:8]} digest " \
               f"{str(data.get('digest', ''))[:8]}"
    return json.dumps(data, sort_keys=True, ensure_ascii=False)[:80]


def entry_row(entry: Entry) -> Row:
    return (
        int(entry.seq),
        format_time(entry.time).replace("T", " ").rstrip("Z"),
        escape_for_display(str(entry.type), max_chars=24),
        escape_for_display(str(entry.actor), max_chars=10),
        escape_for_display(summarize(str(entry.type), dict(entry.data)), max_chars=200),
    )


class LedgerView(ScrollView, can_focus=True):
    """Rows are entries newest first; `enter` posts `EntryChosen`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "choose", "Entry detail"),
    ]
    DEFAULT_CSS = "LedgerView { height: 1fr; }"

    cursor: reactive[int] = reactive(0, always_update=True)

    @dataclass
    class EntryChosen(Message):
        view: LedgerView
        seq: int

        @property
        def control(self) -> LedgerView:
            return self.view

    @dataclass
    class _PageLoaded(Message):
        generation: int
        page: int
        rows: list[Row]

    def __init__(self, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None, disabled: bool = False) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.total = 0
        self._loader: PageLoader | None = None
        self._cache: OrderedDict[int, list[Row]] = OrderedDict()
        self._pending: set[int] = set()
        self._generation = 0
        self.pages_loaded = 0

    # --- source ----------------------------------------------------------------------------

    def set_source(self, total: int, loader: PageLoader) -> None:
        """Show `total` rows fetched through `loader(offset, limit)` (call on the UI thread)."""
        self._generation += 1
        self._cache.clear()
        self._pending.clear()
        self._loader = loader
        self.total = total
        self.virtual_size = Size(self.size.width, total)
        self.cursor = 0
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def row_at(self, index: int) -> Row | None:
        rows = self._cache.get(index // PAGE)
        if rows is None:
            return None
        offset = index % PAGE
        return rows[offset] if offset < len(rows) else None

    # --- drawing ---------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.size.width
        if index >= self.total:
            return Strip.blank(width)
        row = self.row_at(index)
        if row is None:
            self._want(index // PAGE)
            text = f"{'…':>9}"
        else:
            seq, when, kind, actor, summary = row
            text = f"{seq:>9}  {when:<19}  {kind:<20}  {actor:<9}  {summary}"
        style = Style(reverse=True) if index == self.cursor and self.has_focus else \
            Style(bold=True) if index == self.cursor else Style()
        return Strip([Segment(text[:width].ljust(width), style)], width)

    def _want(self, page: int) -> None:
        if page in self._cache or page in self._pending or self._loader is None:
            return
        self._pending.add(page)
        self._load(self._generation, page, self._loader)

    @work(thread=True, exit_on_error=False, group="ledger-page", description="Reading the ledger")
    def _load(self, generation: int, page: int, loader: PageLoader) -> None:
        try:
            rows = [entry_row(e) for e in loader(page * PAGE, PAGE)]
        except ConsoleError:
            rows = []
        self.post_message(self._PageLoaded(generation, page, rows))

    @on(_PageLoaded)
    def _page_loaded(self, message: _PageLoaded) -> None:
        message.stop()
        if message.generation != self._generation:
            return
        self._pending.discard(message.page)
        self._cache[message.page] = message.rows
        self.pages_loaded += 1
        while len(self._cache) > CACHE_PAGES:
            self._cache.popitem(last=False)
        self.refresh()

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.total)

    # --- moving ----------------------------------------------------------------------------

    def watch_cursor(self, value: int) -> None:
        top = self.scroll_offset.y
        height = max(self.size.height, 1)
        if value < top:
            self.scroll_to(y=value, animate=False)
        elif value >= top + height:
            self.scroll_to(y=value - height + 1, animate=False)
        self.refresh()

    def _move_to(self, index: int) -> None:
        if self.total:
            self.cursor = max(0, min(self.total - 1, index))

    def action_cursor(self, delta: int) -> None:
        self._move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._move_to(self.cursor + direction * max(self.size.height - 1, 1))

    def action_jump(self, where: int) -> None:
        self._move_to(self.total - 1 if where < 0 else 0)

    def action_choose(self) -> None:
        row = self.row_at(self.cursor)
        if row is not None:
            self.post_message(self.EntryChosen(self, row[0]))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

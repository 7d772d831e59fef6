"""Ledger: browse a million entries lazily, filter them, see one entry's inclusion proof, verify
the whole tree with a progress bar."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Input, Label, ProgressBar, Static

from console.errors import ConsoleError
from console.tui.dialogs.entry import EntryDialog
from console.tui.messages import OperationFailed
from console.tui.screens._base import SCREENS_CSS, ConsoleScreen
from console.tui.widgets.ledger_view import LedgerView

if TYPE_CHECKING:
    from console.ledger import Entry, EntryFilter
    from console.tui.backend import LedgerSummary

Proof = tuple["Entry", int, bytes, list[bytes]]
"""An entry, the tree size it is proved in, that tree's root, and the inclusion path."""

HEADER = f"{'seq':>9}  {'time (UTC)':<19}  {'type':<20}  {'actor':<9}  summary"


class LedgerScreen(ConsoleScreen):
    CSS_PATH = SCREENS_CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "verify", "Verify tree"),
        Binding("slash,f", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        from console.ledger import EntryFilter  # the ledger store loads with this screen

        self.filter: EntryFilter = EntryFilter()
        self.verifying = False

    def compose_body(self) -> ComposeResult:
        yield Static(Text("reading the ledger…", style="dim"), id="ledger-summary")
        with Horizontal(id="filters"):
            yield Label("filter type ", classes="field-label")
            yield Input(placeholder="key.", id="filter-type", compact=True)
            yield Label(" ceremony ", classes="field-label")
            yield Input(placeholder="any", id="filter-ceremony", compact=True)
            yield Label(" kid ", classes="field-label")
            yield Input(placeholder="any", id="filter-kid", compact=True)
        yield Static(Text(HEADER, style="bold", no_wrap=True), id="ledger-header")
        yield LedgerView(id="ledger-view")
        yield ProgressBar(id="verify-progress", show_eta=False)

    def on_mount(self) -> None:
        self.query_one("#verify-progress", ProgressBar).display = False
        super().on_mount()
        self.query_one(LedgerView).focus()

    def refresh_data(self) -> None:
        backend, flt = self.backend, self.filter

        def read() -> tuple[LedgerSummary, int]:
            return backend.ledger_summary(), backend.ledger.count(flt)

        self.load("ledger", read, "Reading the ledger")

    def show_ledger(self, value: tuple[LedgerSummary, int]) -> None:
        summary, count = value
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{summary.size:,} entries", style="bold")
        text.append(f" · root {summary.root_hex[:8]}…")
        if summary.checkpoint_size is not None:
            signers = ", ".join(summary.checkpoint_signers) or "?"
            text.append(f" · checkpoint at {summary.checkpoint_size:,} cosigned by {signers} ✓")
        else:
            text.append(" · no checkpoint yet", style="yellow")
        from console.ledger import EntryFilter

        if self.filter != EntryFilter():
            text.append(f" · {count:,} match", style="bold")
        text.append("   [v] verify tree  [/] filter  [enter] detail", style="dim")
        self.query_one("#ledger-summary", Static).update(text)
        ledger, flt = self.backend.ledger, self.filter
        self.query_one(LedgerView).set_source(
            count, lambda offset, limit: ledger.page(offset, limit, flt, newest_first=True))

    # --- filtering -------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.query_one("#filter-type", Input).focus()

    def action_clear_filter(self) -> None:
        for name in ("type", "ceremony", "kid"):
            self.query_one(f"#filter-{name}", Input).value = ""
        self._apply_filter()

    @on(Input.Submitted)
    def _filter_submitted(self) -> None:
        self._apply_filter()
        self.query_one(LedgerView).focus()

    def _apply_filter(self) -> None:
        kind = self.query_one("#filter-type", Input).value.strip()
        ceremony = self.query_one("#filter-ceremony", Input).value.strip()
        kid = self.query_one("#filter-kid", Input).value.strip()
        from console.ledger import EntryFilter

        self.filter = EntryFilter(type_prefix=kind or None, ceremony=ceremony or None,
                                  text=kid or None)
        self.refresh_data()

    # --- detail ----------------------------------------------------------------------------

    @on(LedgerView.EntryChosen)
    def _chosen(self, message: LedgerView.EntryChosen) -> None:
        ledger = self.backend.ledger

        def proof() -> Proof:
            size = ledger.size
            entry = ledger.entry(message.seq)
            path = ledger.inclusion_proof(message.seq, size)
            root = ledger.root(size)
            from console.ledger import verify_inclusion

            verify_inclusion(message.seq, size, entry.leaf_hash, path, root)
            return (entry, size, root, path)

        self.load("proof", proof, f"Proving entry {message.seq}")

    def show_proof(self, value: Proof) -> None:
        entry, size, root, path = value
        self.app.push_screen(EntryDialog(entry.seq, entry.raw, entry.leaf_hash, size, root, path))

    # --- verification ----------------------------------------------------------------------

    def action_verify(self) -> None:
        if self.verifying:
            return
        self.verifying = True
        bar = self.query_one("#verify-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        backend = self.backend

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(bar.update, total=max(total, 1), progress=done)

        def job() -> None:
            try:
                backend.verify_tree(progress)
            except ConsoleError as e:
                self.post_message(OperationFailed("Verifying the ledger", e))
                self.post_message(self.Loaded("verified", False))
                return
            self.post_message(self.Loaded("verified", True))

        self.run_worker(job, thread=True, exit_on_error=False, group="verify",
                        description="Verifying the ledger tree")

    def show_verified(self, ok: bool) -> None:
        self.verifying = False
        self.query_one("#verify-progress", ProgressBar).display = False
        if ok:
            self.notify("✓ every leaf and node recomputed; checkpoints consistent",
                        title="Ledger verified")

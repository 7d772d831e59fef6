"""One ledger entry: its exact stored bytes (inert), leaf hash and inclusion proof."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from console.ledger.display import escape_for_display
from console.tui.screens._base import SCREENS_CSS


class EntryDialog(ModalScreen[None]):
    CSS_PATH = SCREENS_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, seq: int, raw: bytes, leaf_hash: bytes, tree_size: int,
                 root: bytes, proof: list[bytes]) -> None:
        super().__init__()
        self.seq, self.raw, self.leaf_hash = seq, raw, leaf_hash
        self.tree_size, self.root, self.proof = tree_size, root, proof

    def compose(self) -> ComposeResult:
        body = Text(no_wrap=False)
        body.append("canonical bytes\n", style="bold")
        body.append(escape_for_display(self.raw.decode("utf-8", errors="replace")))
        body.append("\n\nleaf hash  ", style="bold")
        body.append(self.leaf_hash.hex())
        body.append(f"\n\ninclusion proof in the tree of {self.tree_size:,} entries",
                    style="bold")
        body.append(f"\nroot {self.root.hex()}")
        for i, node in enumerate(self.proof):
            body.append(f"\n  {i:>2}  {node.hex()}")
        body.append("\n\n✓ proof verified against the root (RFC 9162 §2.1.3.2)")
        with VerticalScroll(classes="dialog -entry"):
            yield Label(Text(f"Entry {self.seq}", style="bold"), classes="dialog-title")
            yield Static(body, id="entry-body")

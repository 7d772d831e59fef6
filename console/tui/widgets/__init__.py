"""Reusable widgets of the console's screens (each loaded on first use, `console.lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.lazy import lazy_getattr

if TYPE_CHECKING:
    from console.tui.widgets.header import ConsoleHeader
    from console.tui.widgets.key_table import KeyTable
    from console.tui.widgets.ledger_view import LedgerView
    from console.tui.widgets.qr import QrCode
    from console.tui.widgets.steps import StepList, StepRow
    from console.tui.widgets.timeline import KeyTimeline

__all__ = ["ConsoleHeader", "KeyTable", "KeyTimeline", "LedgerView", "QrCode", "StepList",
           "StepRow"]

_MODULE_OF = {
    "ConsoleHeader": "console.tui.widgets.header",
    "KeyTable": "console.tui.widgets.key_table",
    "KeyTimeline": "console.tui.widgets.timeline",
    "LedgerView": "console.tui.widgets.ledger_view",
    "QrCode": "console.tui.widgets.qr",
    "StepList": "console.tui.widgets.steps",
    "StepRow": "console.tui.widgets.steps",
}

__getattr__ = lazy_getattr(__name__, _MODULE_OF, globals())

"""Reusable widgets of the console's screens."""

from console.tui.widgets.header import ConsoleHeader
from console.tui.widgets.ledger_view import LedgerView
from console.tui.widgets.qr import QrCode
from console.tui.widgets.steps import StepList, StepRow
from console.tui.widgets.timeline import KeyTimeline

__all__ = ["ConsoleHeader", "KeyTimeline", "LedgerView", "QrCode", "StepList", "StepRow"]

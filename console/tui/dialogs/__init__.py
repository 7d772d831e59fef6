"""Modal dialogs: errors, officer cards (approve, unlock, abort), execution, quitting, QR codes,
entry detail, help (each loaded on first use, `console.lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.lazy import lazy_getattr

if TYPE_CHECKING:
    from console.tui.dialogs.approval import ApprovalDialog, DialogCards
    from console.tui.dialogs.entry import EntryDialog
    from console.tui.dialogs.error import ErrorDialog
    from console.tui.dialogs.execute import ExecuteDialog
    from console.tui.dialogs.help import HelpDialog
    from console.tui.dialogs.qr import QrDialog
    from console.tui.dialogs.quit import QuitDialog

__all__ = ["ApprovalDialog", "DialogCards", "EntryDialog", "ErrorDialog", "ExecuteDialog",
           "HelpDialog", "QrDialog", "QuitDialog"]

_MODULE_OF = {
    "ApprovalDialog": "console.tui.dialogs.approval",
    "DialogCards": "console.tui.dialogs.approval",
    "EntryDialog": "console.tui.dialogs.entry",
    "ErrorDialog": "console.tui.dialogs.error",
    "ExecuteDialog": "console.tui.dialogs.execute",
    "HelpDialog": "console.tui.dialogs.help",
    "QrDialog": "console.tui.dialogs.qr",
    "QuitDialog": "console.tui.dialogs.quit",
}

__getattr__ = lazy_getattr(__name__, _MODULE_OF, globals())

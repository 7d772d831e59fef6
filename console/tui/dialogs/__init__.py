"""Modal dialogs: errors, officer cards (approve, unlock, abort), execution, quitting, QR codes,
entry detail, help."""

from console.tui.dialogs.approval import ApprovalDialog, DialogCards
from console.tui.dialogs.entry import EntryDialog
from console.tui.dialogs.error import ErrorDialog
from console.tui.dialogs.execute import ExecuteDialog
from console.tui.dialogs.help import HelpDialog
from console.tui.dialogs.qr import QrDialog
from console.tui.dialogs.quit import QuitDialog

__all__ = ["ApprovalDialog", "DialogCards", "EntryDialog", "ErrorDialog", "ExecuteDialog",
           "HelpDialog", "QrDialog", "QuitDialog"]

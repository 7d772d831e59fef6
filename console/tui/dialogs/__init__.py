"""Modal dialogs: errors, officer approval, QR codes, entry detail, help."""

from console.tui.dialogs.approval import ApprovalDialog, ApprovalInput
from console.tui.dialogs.entry import EntryDialog
from console.tui.dialogs.error import ErrorDialog
from console.tui.dialogs.help import HelpDialog
from console.tui.dialogs.qr import QrDialog

__all__ = ["ApprovalDialog", "ApprovalInput", "EntryDialog", "ErrorDialog", "HelpDialog",
           "QrDialog"]

"""One screen per module; each reaches the product only through `console.tui.backend`."""

from console.tui.screens.ceremony import CeremonyScreen
from console.tui.screens.dashboard import DashboardScreen
from console.tui.screens.exports import ExportsScreen
from console.tui.screens.hsm import HsmScreen
from console.tui.screens.ledger import LedgerScreen
from console.tui.screens.officers import OfficersScreen

__all__ = ["CeremonyScreen", "DashboardScreen", "ExportsScreen", "HsmScreen", "LedgerScreen",
           "OfficersScreen"]

"""One screen per module; each reaches the product only through `console.tui.backend`.

Names load on first use (`console.lazy`): the app imports the dashboard alone at launch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.lazy import lazy_getattr

if TYPE_CHECKING:
    from console.tui.screens.ceremony import CeremonyScreen
    from console.tui.screens.dashboard import DashboardScreen
    from console.tui.screens.exports import ExportsScreen
    from console.tui.screens.hsm import HsmScreen
    from console.tui.screens.ledger import LedgerScreen
    from console.tui.screens.officers import OfficersScreen

__all__ = ["CeremonyScreen", "DashboardScreen", "ExportsScreen", "HsmScreen", "LedgerScreen",
           "OfficersScreen"]

_MODULE_OF = {
    "CeremonyScreen": "console.tui.screens.ceremony",
    "DashboardScreen": "console.tui.screens.dashboard",
    "ExportsScreen": "console.tui.screens.exports",
    "HsmScreen": "console.tui.screens.hsm",
    "LedgerScreen": "console.tui.screens.ledger",
    "OfficersScreen": "console.tui.screens.officers",
}

__getattr__ = lazy_getattr(__name__, _MODULE_OF, globals())

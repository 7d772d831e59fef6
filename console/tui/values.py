"""The values the backend hands the screens: frozen dataclasses, and the dashboard's data as
JSON-shaped TypedDicts (it may come from the launch's child process, `console.tui.prefetch`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

if TYPE_CHECKING:
    from console.ceremony.status import StatusReport

__all__ = ["BundleFile", "BundleRow", "ConsumerFacts", "DashboardData", "Health", "KeysetFacts",
           "LedgerSummary", "dashboard_data"]

class ConsumerFacts(TypedDict):
    name: str
    propagation_seconds: int


class KeysetFacts(TypedDict):
    """What the dashboard shows of a keyset's policy besides its status."""

    cryptoperiod_days: int
    consumers: list[ConsumerFacts]


class DashboardData(TypedDict):
    """Everything the dashboard shows (JSON: it may come from the launch's child process)."""

    status: StatusReport
    policies: dict[str, KeysetFacts]


def dashboard_data(value: object) -> DashboardData:
    """The child's JSON as `DashboardData` (the shape checked; the values are the service's)."""
    if not (isinstance(value, dict) and isinstance(value.get("status"), dict)
            and isinstance(value.get("policies"), dict)):
        raise ValueError("not the dashboard's data")
    return cast(DashboardData, value)


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    size: int
    root_hex: str
    last_time: datetime | None
    checkpoint_size: int | None
    checkpoint_signers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Health:
    """One line of header facts: each part is ok, a warning, or unknown (None)."""

    hsm: str
    hsm_ok: bool | None
    ledger: str
    ledger_ok: bool | None
    reconcile: str
    reconcile_ok: bool | None


@dataclass(frozen=True, slots=True)
class BundleFile:
    name: str
    size: int
    destination: str


@dataclass(frozen=True, slots=True)
class BundleRow:
    keyset: str
    seq: int
    time: datetime
    kids: tuple[str, ...]
    sha256: str
    path: Path
    verified: bool | None
    problem: str
    files: tuple[BundleFile, ...] = field(default=())
    previous_seq: int | None = None
    """The keyset's bundle before this one (None: the first)."""
    added: tuple[str, ...] = ()
    """Kids in this bundle and not in the previous one (every kid of a first bundle)."""
    removed: tuple[str, ...] = ()
    """Kids in the previous bundle and not in this one."""

"""The ledger entries ceremonies replay, read once per session and kept current.

A session reads the `STATE_ENTRY_TYPES` entries the first time a flow needs them (through the
ledger's type index, each page proven against the last checkpoint), then extends that list with
the entries it appends itself, as the ledger returns them from the write. When the ledger grew by
entries this session did not write (another console, between two of this session's flows), the
list is read again whole. The plans are replayed once per ledger size, not once per question:
plan, approve and execute each asked the ledger the same questions several times over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from console.ceremony.journal import KEY_ENTRY_TYPES, STATE_ENTRY_TYPES, PlanRecord, replay_plans
from console.jsontypes import JsonMapping
from console.lifecycle import KeysetState, replay

if TYPE_CHECKING:
    from console.ledger import Entry, Ledger

_STATE_TYPES = frozenset(STATE_ENTRY_TYPES)


class LedgerState:
    """The state entries of `ledger` (see the module docstring). Not thread-safe: one per
    session, used by one flow at a time (the flows hold the workspace lock)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._entries: list[Entry] | None = None
        self._size = -1
        self._plans: dict[str, PlanRecord] | None = None

    def entries(self) -> Sequence[Entry]:
        """Every state entry, in ledger order (read again if another writer appended)."""
        size = self.ledger.size
        if self._entries is None or size != self._size:
            self._entries = list(self.ledger.entries_of_type(*STATE_ENTRY_TYPES))
            self._size = size
            self._plans = None
        return self._entries

    def of_type(self, *types: str) -> list[Entry]:
        """The state entries of the given types, in ledger order."""
        wanted = set(types)
        missing = wanted - _STATE_TYPES
        if missing:  # pragma: no cover - a caller bug: these entries are not kept here
            raise ValueError(f"not state entry types: {sorted(missing)}")
        return [e for e in self.entries() if e.type in wanted]

    def plans(self) -> dict[str, PlanRecord]:
        """Every plan's record (`journal.replay_plans`), replayed once per ledger size.

        Raises:
            PlanError: an entry that no console writes (naming its seq).
        """
        entries = self.entries()
        if self._plans is None:
            self._plans = replay_plans(entries)
        return self._plans

    def keysets(self) -> Mapping[str, KeysetState]:
        """Every keyset's state, replayed from the key entries."""
        return replay(self.of_type(*KEY_ENTRY_TYPES)).keysets

    def appended(self, written: Sequence[Entry]) -> None:
        """Entries this process has just committed, in order: kept if they follow what was
        read; otherwise the next question reads the ledger again."""
        if not written:
            return
        if self._entries is not None and written[0].seq == self._size:
            self._entries.extend(e for e in written if e.type in _STATE_TYPES)
            self._size = written[-1].seq + 1
            self._plans = None
        else:
            self._entries = None

    def append(self, type: str, data: JsonMapping, *, time: datetime, actor: str,
               ceremony: str | None = None) -> Entry:
        """`Ledger.append`, keeping this state current."""
        entry = self.ledger.append(type, dict(data), time=time, actor=actor, ceremony=ceremony)
        self.appended([entry])
        return entry


__all__ = ["LedgerState"]

"""The ledger entries ceremonies replay, read once per session and kept current.

A session reads the `STATE_ENTRY_TYPES` entries the first time a flow needs them (through the
ledger's type index, each page proven against the last checkpoint), then extends that list with
the entries it appends itself, as the ledger returns them from the write. When the ledger grew by
entries this session did not write (another console, between two of this session's flows), the
list is read again whole. The plans are replayed once, then extended with the entries appended
(`journal.extend_plans`), not replayed once per question: plan, approve and execute each asked
the ledger the same questions several times over. Each
keyset's bundle sequence (`bundle_chain`) is folded entry by entry as entries arrive, so an export
step does not rescan the whole history (a 200-keyset rotation asked 200 times).

Before a flow acts on them, the entries are held to the rules the console writes them under
(`require_authorized`: `console.ceremony.authorization`, the audit pack's own replay): anyone who
can write the ledger file can append an entry a later checkpoint covers, and the officers who
cosign a checkpoint sign its root, not each entry. Checked once per read of the ledger; the
session's own entries are written under those rules.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from console.ceremony.actions import ExportBundle
from console.ceremony.journal import (
    KEY_ENTRY_TYPES,
    STATE_ENTRY_TYPES,
    PlanRecord,
    extend_plans,
    parsed_plan,
    replay_plans,
)
from console.errors import LedgerTamperedError
from console.jsontypes import JsonMapping
from console.lifecycle import KeysetState, replay

if TYPE_CHECKING:
    from console.ledger import Entry, Ledger

_NEVER_WRITTEN = ("policy.changed",)
"""Types no console writes (the replay refuses them), not among the state entries."""


def _seq(entry: Entry) -> int:
    return entry.seq

_STATE_TYPES = frozenset(STATE_ENTRY_TYPES)


@dataclass(frozen=True, slots=True)
class BundleChain:
    """Where a keyset's bundle sequence stands: the highest seq ever recorded or intended, and
    the SHA-256 of the last recorded bundle (what the next bundle's `prev` names).

    A seq an aborted export intended is never used again: its complete, signed folder may
    already have been copied out (it is moved aside only at the abort), and two different
    bundles must never share a seq. A skipped seq is allowed by the chain: `prev` names the last
    recorded bundle, and `verify bundle --previous` accepts any larger seq."""

    seq: int = 0
    digest: str | None = None


def _fold_bundles(chains: dict[str, BundleChain], entries: Iterable[Entry]) -> None:
    for entry in entries:
        data = entry.data
        keyset = data.get("keyset")
        if not isinstance(keyset, str):
            continue
        chain = chains.get(keyset, BundleChain())
        if entry.type == "bundle.exported":
            chains[keyset] = BundleChain(max(chain.seq, int(str(data["seq"]))),
                                         str(data["sha256"]))
        elif (entry.type == "ceremony.step.intent" and data.get("action") == ExportBundle.kind
              and isinstance(data.get("seq"), int)):
            chains[keyset] = BundleChain(max(chain.seq, int(str(data["seq"]))), chain.digest)


class LedgerState:
    """The state entries of `ledger` (see the module docstring). Not thread-safe: one per
    session, used by one flow at a time (the flows hold the workspace lock)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._entries: list[Entry] | None = None
        self._size = -1
        self._plans: dict[str, PlanRecord] | None = None
        self._chains: dict[str, BundleChain] | None = None
        self._authorized: Sequence[Entry] | None = None

    def entries(self) -> Sequence[Entry]:
        """Every state entry, in ledger order (read again if another writer appended)."""
        size = self.ledger.size
        if self._entries is None or size != self._size:
            self._entries = list(self.ledger.entries_of_type(*STATE_ENTRY_TYPES))
            self._size = size
            self._plans = None
            self._chains = None
        return self._entries

    def of_type(self, *types: str) -> list[Entry]:
        """The state entries of the given types, in ledger order."""
        wanted = set(types)
        missing = wanted - _STATE_TYPES
        if missing:  # pragma: no cover - a caller bug: these entries are not kept here
            raise ValueError(f"not state entry types: {sorted(missing)}")
        return [e for e in self.entries() if e.type in wanted]

    def plans(self) -> dict[str, PlanRecord]:
        """Every plan's record (`journal.replay_plans`), replayed once, then kept current.

        Raises:
            PlanError: an entry that no console writes (naming its seq).
        """
        entries = self.entries()
        if self._plans is None:
            self._plans = replay_plans(entries)
        return self._plans

    def require_authorized(self) -> None:
        """Refuse a ledger holding an entry no console writes under its rules: a state change
        outside an approved ceremony, a plan or approval that does not hold, a destructive
        effect its plan did not name (`console.ceremony.authorization`).

        Raises:
            LedgerTamperedError: naming the first such entry.
        """
        from console.ceremony.authorization import AuthorizationReplay
        from console.ledger.trust import CHECKPOINT, TrustReplay

        entries = self.entries()
        if self._authorized is entries:  # this read, extended only by the session's own writes
            return
        ledger = self.ledger
        trust = TrustReplay(ledger.origin)
        replay = AuthorizationReplay(ledger.origin, trust, parse_plan=parsed_plan)
        others = [ledger.entry(0), *ledger.entries_of_type(CHECKPOINT, *_NEVER_WRITTEN)]
        for entry in heapq.merge(entries, sorted(others, key=_seq), key=_seq):
            try:
                if entry.type == CHECKPOINT:
                    trust.apply(entry, root=ledger.root(entry.seq)
                                if trust.needs_root(entry) else None)
                    continue
                replay.entry(entry, root=lambda: ledger.root(entry.seq))  # noqa: B023
                trust.apply(entry)
            except LedgerTamperedError as e:
                raise LedgerTamperedError(
                    f"ledger entry {entry.seq} ({entry.type}): {e.message}",
                    "the ledger holds an entry written outside the console's rules: do not "
                    "act on it; `ceremony verify audit` on an audit pack names every check, and "
                    "the ledger is restored from a backup or its last checkpoint") from e
        self._authorized = entries

    def keysets(self) -> Mapping[str, KeysetState]:
        """Every keyset's state, replayed from the key entries."""
        return replay(self.of_type(*KEY_ENTRY_TYPES)).keysets

    def bundle_chain(self, keyset: str) -> BundleChain:
        """Where `keyset`'s bundle sequence stands (see `BundleChain`)."""
        entries = self.entries()
        if self._chains is None:
            self._chains = {}
            _fold_bundles(self._chains, entries)
        return self._chains.get(keyset, BundleChain())

    def appended(self, written: Sequence[Entry]) -> None:
        """Entries this process has just committed, in order: kept if they follow what was
        read; otherwise the next question reads the ledger again."""
        if not written:
            return
        if self._entries is not None and written[0].seq == self._size:
            kept = [e for e in written if e.type in _STATE_TYPES]
            self._entries.extend(kept)
            self._size = written[-1].seq + 1
            if self._plans is not None:
                self._plans = extend_plans(self._plans, kept)
            if self._chains is not None:
                _fold_bundles(self._chains, kept)
        else:
            self._entries = None
            self._chains = None

    def append(self, type: str, data: JsonMapping, *, time: datetime, actor: str,
               ceremony: str | None = None) -> Entry:
        """`Ledger.append`, keeping this state current."""
        entry = self.ledger.append(type, dict(data), time=time, actor=actor, ceremony=ceremony)
        self.appended([entry])
        return entry


__all__ = ["BundleChain", "LedgerState"]

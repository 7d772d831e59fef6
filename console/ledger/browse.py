"""What the ledger browser asks of a million entries: a filter, one page of entries, a count.

Pages are read straight from the table through its indexes; entries are not checked here (the
browser shows a tampered row with its leaf-hash mark instead of refusing the whole page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from console import jcs
from console.errors import LedgerError
from console.ledger._rows import stored_entry
from console.ledger._sqlite import SqlParam, column_int
from console.ledger.entry import Entry

if TYPE_CHECKING:
    from console.ledger.store import Ledger

__all__ = ["EntryFilter", "count", "page"]


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What the ledger browser shows: a type prefix, a ceremony id (or prefix), text in data."""

    type_prefix: str | None = None
    ceremony: str | None = None
    text: str | None = None

    def sql(self) -> tuple[str, list[SqlParam]]:
        clauses: list[str] = []
        params: list[SqlParam] = []
        if self.type_prefix:
            clauses.append("substr(type, 1, ?) = ?")
            params += [len(self.type_prefix), self.type_prefix]
        if self.ceremony is not None:
            # The UI shows 8 characters of a 12-character id: a prefix finds the ceremony.
            clauses.append("substr(ceremony, 1, ?) = ?")
            params += [len(self.ceremony), self.ceremony]
        if self.text:
            # Search the stored bytes for the text as JCS writes it inside a string.
            needle = jcs.canonicalize(self.text)[1:-1]
            clauses.append("instr(raw, ?) > 0")
            params.append(needle)
        return (" AND ".join(clauses) or "1"), params


def page(self: Ledger, offset: int, limit: int, filter: EntryFilter | None = None, *,
         newest_first: bool = False) -> list[Entry]:
    """One page of (filtered) entries: what a browser of a million entries asks for.

    Entries are not checked here (`verified_leaf` says whether the bytes match the stored
    leaf hash): the browser shows a tampered row instead of refusing the whole page.
    """
    if offset < 0 or limit < 0:
        raise LedgerError("page offset and limit must be non-negative")
    order = "DESC" if newest_first else "ASC"
    if filter is None or filter == EntryFilter():
        if newest_first:
            hi = self.size - offset
            rows = self._all(
                "SELECT seq, raw, leaf_hash FROM entries WHERE seq < ? AND seq >= ? "
                "ORDER BY seq DESC",
                (hi, hi - limit),
            )
        else:
            rows = self._all(
                "SELECT seq, raw, leaf_hash FROM entries WHERE seq >= ? AND seq < ? "
                "ORDER BY seq",
                (offset, offset + limit),
            )
    else:
        where, params = filter.sql()
        rows = self._all(
            f"SELECT seq, raw, leaf_hash FROM entries WHERE {where} ORDER BY seq {order} "
            "LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
    return [stored_entry(r) for r in rows]

def count(self: Ledger, filter: EntryFilter | None = None) -> int:
    if filter is None or filter == EntryFilter():
        return self.size
    where, params = filter.sql()
    return column_int(self._scalar(f"SELECT count(*) FROM entries WHERE {where}", params))

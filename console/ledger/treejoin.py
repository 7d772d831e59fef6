"""Joined reads for "verify tree": a piece of a column in one value, proven equal to its rows.

A row read costs SQLite and Python a tuple and a value per column, most of the time of a page's
reads; the same rows `group_concat`ed column by column come back as a few values per piece, which
C-level `split`s and `join`s take apart. `console.ledger.treescan` uses them, a piece of a page
at a time (its values stay in the processor's cache), only when they are exactly the rows'
values (`joined_reads`) and only to prove: whatever they do not prove is read again row by row
and the row checks decide, so a page's answer is the one its rows give.

Each function answers the facts the row checks establish, or None ("not shown this way").
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import lru_cache

from console.ledger import merkle

__all__ = ["JoinedEntries", "joined_entries", "joined_level", "joined_reads"]

_ENTRIES = (
    "SELECT group_concat(seq - ?1, ','), CAST(group_concat(raw, x'0a') AS BLOB), "
    "CAST(group_concat(leaf_hash, '') AS BLOB), min(length(leaf_hash)), max(length(leaf_hash)), "
    "group_concat(type, x'0a'), group_concat(time, x'0a') "
    "FROM entries WHERE seq >= ?1 AND seq < ?2")
_NODES = (
    "SELECT group_concat(idx - ?2, ','), CAST(group_concat(hash, '') AS BLOB), min(length(hash)), "
    "max(length(hash)) FROM nodes WHERE level = ?1 AND idx >= ?2 AND idx < ?3")
_COLUMNS = {
    "entries": [("seq", "INTEGER", 0, 1), ("raw", "BLOB", 1, 0), ("leaf_hash", "BLOB", 1, 0),
                ("type", "TEXT", 1, 0), ("ceremony", "TEXT", 0, 0), ("time", "TEXT", 1, 0)],
    "nodes": [("level", "INTEGER", 1, 1), ("idx", "INTEGER", 1, 2), ("hash", "BLOB", 1, 0)],
}
"""`(name, type, notnull, pk)` of each column, as `pragma_table_xinfo` gives them for ours."""
_SELF_TEST = ("SELECT CAST(group_concat(column1, x'0a') AS BLOB) "
              "FROM (VALUES (x''), (x'00ff'), (x''))")


def joined_reads(conn: sqlite3.Connection) -> bool:
    """Whether `group_concat` over this connection's ledger gives exactly the rows' values, so
    that the functions below may be used once `PRAGMA quick_check` has passed:

    - the tables are ours, STRICT with NOT NULL columns: with `quick_check` passed every value
      has its column's type (it checks a STRICT table's types and NOT NULLs), so no NULL is
      skipped, no text is taken for a blob, and every seq and idx is an integer;
    - the database is UTF-8: a blob read as text keeps its bytes (UTF-16 would convert them);
    - this SQLite's `group_concat` writes a separator between every two values, empty ones too,
      and keeps NUL bytes (asked of it, not assumed)."""
    try:
        if conn.execute("PRAGMA encoding").fetchone() != ("UTF-8",):
            return False
        strict = conn.execute("SELECT name, strict FROM pragma_table_list "
                              "WHERE schema = 'main' AND name IN ('entries', 'nodes')").fetchall()
        if sorted(strict) != [("entries", 1), ("nodes", 1)]:
            return False
        for table, columns in _COLUMNS.items():
            found = conn.execute('SELECT name, type, "notnull", pk FROM pragma_table_xinfo(?)',
                                 (table,)).fetchall()
            if found != columns:
                return False
        return bool(conn.execute(_SELF_TEST).fetchone() == (b"\n\x00\xff\n",))
    except sqlite3.DatabaseError:  # an SQLite without pragma_table_list (< 3.37): rows then
        return False


@lru_cache(maxsize=64)
def _counting(n: int) -> str:
    """`"0,1,...,n-1"`: the seqs (or idx) of a piece's rows less the first one, joined in the
    order SQLite aggregated them, when they follow on (built once per width)."""
    return ",".join(map(str, range(n)))


@dataclass(frozen=True, slots=True)
class JoinedEntries:
    """Entries `[first, first + n)`: the block of their bytes (each line ended by a newline, as
    `accept_block` takes it: n lines unless a raw holds a newline), their stored leaf hashes
    joined (32 bytes each), and their type and time columns, all in seq order."""

    block: bytes
    leaves: bytes
    types: list[str]
    times: list[str]


def joined_entries(conn: sqlite3.Connection, first: int, stop: int) -> JoinedEntries | None:
    """Entries `[first, stop)` (`stop > first`), when joined reads show the first facts the row
    checks ask: the seqs follow on (which also puts every column's values in seq order: SQLite
    takes a row's values for all aggregates in one step), every stored leaf hash is 32 bytes
    (so that the join of the leaf hashes of the block's lines, equal to `leaves`, means equal
    hashes), and the type and time columns split into one value per row (none holds the
    separator). Else None, and the rows decide."""
    try:
        seqs, raw, stored, shortest, longest, kinds, whens = conn.execute(
            _ENTRIES, (first, stop)).fetchone()
    except sqlite3.DatabaseError:  # too long to join, or damaged: the row reads say which
        return None
    n = stop - first
    if seqs != _counting(n) or shortest != merkle.HASH_SIZE or longest != merkle.HASH_SIZE:
        return None
    if not (isinstance(raw, bytes) and isinstance(stored, bytes) and isinstance(kinds, str)
            and isinstance(whens, str)):
        return None
    types, times = kinds.split("\n"), whens.split("\n")
    if len(types) != n or len(times) != n:
        return None
    return JoinedEntries(raw + b"\n", stored, types, times)


def joined_level(conn: sqlite3.Connection, level: int, lo: int, hi: int,
                 children: list[bytes]) -> list[bytes] | None:
    """The hashes of the nodes `[lo, hi)` of `level`, when one joined read shows them all there,
    each the hash of its two `children` (32-byte hashes in order, the first under node `lo`):
    their idx are `lo, lo + 1, ...` in order, their hashes 32 bytes each and, joined, the join
    of the hashes computed. What is returned equals digests: the next level's children. Else
    None (the rows decide). No node (`hi == lo`) is a match, as no row is."""
    wanted = hi - lo
    if wanted <= 0 or len(children) < 2 * wanted:
        return [] if wanted == 0 else None
    try:
        idxs, stored, shortest, longest = conn.execute(_NODES, (level, lo, hi)).fetchone()
    except sqlite3.DatabaseError:
        return None
    if idxs != _counting(wanted) or shortest != merkle.HASH_SIZE or longest != merkle.HASH_SIZE:
        return None
    hashes = merkle.node_hashes(children[0:2 * wanted:2], children[1:2 * wanted:2])
    return hashes if b"".join(hashes) == stored else None

"""The ledger's SQLite file: connection settings, the schema, and the check that it is ours.

Layout (format 1):

- `meta(key, value)`: `origin`, `format`.
- `entries(seq, raw, leaf_hash, type, ceremony, time)`: `raw` is the exact canonical bytes; the
  other columns are copies for indexes (type, ceremony) and are never trusted by verification.
- `nodes(level, idx, hash)`: every perfect subtree of the RFC 9162 tree above the leaves
  (`level >= 1`, leaves `[idx * 2**level, (idx + 1) * 2**level)`).
- triggers refusing UPDATE and DELETE on all three tables; `check_schema` proves they exist.

Every connection runs WAL, `synchronous=FULL` (a committed entry survives a power cut) and
`foreign_keys=ON`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from console.errors import LedgerTamperedError
from console.ledger.checkpoint import is_ledger_origin

SCHEMA_FORMAT = "1"

SqlParam = int | str | bytes | None
"""A value the ledger binds into a statement."""
SqlValue = int | str | bytes | None
SqlRow = tuple[SqlValue, ...]
"""A row as the ledger's tables return it (STRICT tables: integers, text, blobs, NULL)."""
TABLES = ("meta", "entries", "nodes")
TRIGGERS = {f"{t}_no_{op}": t for t in TABLES for op in ("update", "delete")}


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    conn = sqlite3.connect(
        f"file:{path}?mode={mode}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=1.0,
    )
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 1000")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def create_schema(conn: sqlite3.Connection, origin: str) -> None:
    """Create the tables, indexes and append-only triggers in one transaction."""
    # Imported here, not at the top: only a new ledger needs it, and it costs ~60 ms (click,
    # dateutil, pluggy) that every console launch would pay before showing its data.
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    db.table("meta").create({"key": str, "value": str}, pk="key", strict=True)
    db.table("entries").create(
        {"seq": int, "raw": bytes, "leaf_hash": bytes, "type": str, "ceremony": str, "time": str},
        pk="seq",
        not_null={"raw", "leaf_hash", "type", "time"},
        strict=True,
    )
    conn.execute(
        "CREATE TABLE nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, "
        "hash BLOB NOT NULL, PRIMARY KEY (level, idx)) STRICT, WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX entries_type ON entries (type, seq)")
    conn.execute("CREATE INDEX entries_ceremony ON entries (ceremony, seq)")
    for name, table in TRIGGERS.items():
        op = "UPDATE" if name.endswith("update") else "DELETE"
        conn.execute(
            f"CREATE TRIGGER {name} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("origin", origin), ("format", SCHEMA_FORMAT)],
    )
    conn.execute("COMMIT")


def check_schema(conn: sqlite3.Connection) -> str:
    """Return the origin; raise LedgerTamperedError when tables or triggers are not ours."""
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    tables = {name for kind, name, _, _ in rows if kind == "table"}
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise LedgerTamperedError(
            f"ledger is missing table(s) {', '.join(missing)}", "this is not a ceremony ledger"
        )
    triggers = {name: (table, sql or "") for kind, name, table, sql in rows if kind == "trigger"}
    for name, table in TRIGGERS.items():
        found = triggers.get(name)
        if found is None or found[0] != table or "RAISE(ABORT" not in found[1]:
            raise LedgerTamperedError(
                f"append-only trigger {name} is missing or altered",
                "someone edited the database; verify it against an officer's checkpoint",
            )
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != SCHEMA_FORMAT:
        raise LedgerTamperedError(f"ledger format {meta.get('format')!r} is not {SCHEMA_FORMAT}")
    origin = meta.get("origin")
    if not isinstance(origin, str) or not is_ledger_origin(origin):
        raise LedgerTamperedError("ledger origin is missing or malformed")
    return origin


def column_int(value: object) -> int:
    """A value our STRICT tables hold as INTEGER (LedgerTamperedError if it is not one)."""
    if type(value) is not int:
        raise LedgerTamperedError(f"ledger column holds {type(value).__name__}, not an integer")
    return value


def column_str(value: object) -> str:
    """A value our STRICT tables hold as TEXT."""
    if not isinstance(value, str):
        raise LedgerTamperedError(f"ledger column holds {type(value).__name__}, not text")
    return value


def column_bytes(value: object) -> bytes:
    """A value our STRICT tables hold as BLOB."""
    if not isinstance(value, bytes):
        raise LedgerTamperedError(f"ledger column holds {type(value).__name__}, not a blob")
    return value

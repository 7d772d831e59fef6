""""verify tree" with worker processes fails exactly as the serial check does.

`console.ledger.verification` hands pages of entries, ranges of nodes and `quick_check` to worker
processes (`console.ledger.treescan`) and redoes here whatever they do not prove; the first bad
seq or node it names, and the progress it reports, must be the serial check's. Small pages
(`PAGE` = 16) put every mutation near a page edge, a node range edge or a checkpoint.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from console.errors import LedgerTamperedError
from console.ledger import Ledger, merkle, treescan
from console.ledger import verification as verification_module
from tests.unit.test_ledger_support import T0, fill, new_ledger, tree_ledger

PAGE = 16
Mutation = Callable[[sqlite3.Connection], None]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("treeparallel")
    tree_ledger(folder)
    yield folder


def _raw(conn: sqlite3.Connection, seq: int) -> bytes:
    raw: bytes = conn.execute("SELECT raw FROM entries WHERE seq = ?", (seq,)).fetchone()[0]
    return raw


def _set_raw(seq: int, old: bytes, new: bytes, *, rehash: bool = False) -> Mutation:
    """Edit one entry's bytes; `rehash`: and its leaf hash and the tree over it, so that only
    the entry checks can tell."""

    def mutate(conn: sqlite3.Connection) -> None:
        raw = _raw(conn, seq).replace(old, new, 1)
        assert raw != _raw(conn, seq)
        conn.execute("UPDATE entries SET raw = ? WHERE seq = ?", (raw, seq))
        if rehash:
            conn.execute("UPDATE entries SET leaf_hash = ? WHERE seq = ?",
                         (merkle.leaf_hash(raw), seq))
            level = [row[0] for row in conn.execute("SELECT leaf_hash FROM entries ORDER BY seq")]
            for up in range(1, len(level).bit_length()):
                level = [merkle.node_hash(level[2 * i], level[2 * i + 1])
                         for i in range(len(level) // 2)]
                conn.executemany("UPDATE nodes SET hash = ? WHERE level = ? AND idx = ?",
                                 [(h, up, i) for i, h in enumerate(level)])

    return mutate


def _first_checkpoint(conn: sqlite3.Connection) -> int:
    seq: int = conn.execute(
        "SELECT min(seq) FROM entries WHERE type = 'checkpoint.signed'").fetchone()[0]
    return seq


def _sql(sql: str, *params: object) -> Mutation:
    def mutate(conn: sqlite3.Connection) -> None:
        conn.execute(sql, params)

    return mutate


def _both(first: Mutation, second: Mutation) -> Mutation:
    def mutate(conn: sqlite3.Connection) -> None:
        first(conn)
        second(conn)

    return mutate


MUTATIONS: dict[str, Mutation] = {
    "none": lambda conn: None,
    "entry bytes": _set_raw(37, b'"kid":"kid-', b'"kid":"kiX-'),
    "page's first entry": _set_raw(48, b'"kid":"kid-', b'"kid":"kiX-'),
    "time backwards at a page edge": _both(_set_raw(
        96, b'"time":"2027-01-15T10:04', b'"time":"2027-01-15T10:00', rehash=True),
        _sql("UPDATE entries SET time = '2027-01-15T10:00:00Z' WHERE seq = 96")),
    "time backwards mid-page": _both(_set_raw(
        101, b'"time":"2027-01-15T10:04', b'"time":"2027-01-15T10:00', rehash=True),
        _sql("UPDATE entries SET time = '2027-01-15T10:00:00Z' WHERE seq = 101")),
    "not canonical mid-page": _set_raw(103, b'"seq":', b'"seq": ', rehash=True),
    "seq mid-page": _set_raw(105, b'"seq":105', b'"seq":106', rehash=True),
    "rehashed entry": _set_raw(37, b'"kid":"kid-', b'"kid":"kiX-', rehash=True),
    "leaf hash": _sql("UPDATE entries SET leaf_hash = ? WHERE seq = 50", b"\x01" * 32),
    "type column": _sql("UPDATE entries SET type = 'note' WHERE seq = 70"),
    "time column": _sql("UPDATE entries SET time = '2027-01-15T10:04:01Z' WHERE seq = 130"),
    "missing entry": _sql("DELETE FROM entries WHERE seq = 90"),
    "missing last entry": _sql(
        "DELETE FROM entries WHERE seq = (SELECT max(seq) - 1 FROM entries)"),
    "level 1 node": _sql("UPDATE nodes SET hash = ? WHERE level = 1 AND idx = 20", b"\x00" * 32),
    "level 2 node": _sql("UPDATE nodes SET hash = ? WHERE level = 2 AND idx = 9", b"\x00" * 32),
    "level 3 node missing": _sql("DELETE FROM nodes WHERE level = 3 AND idx = 4"),
    "extra node": _sql("INSERT INTO nodes VALUES (2, 999, ?)", b"\x00" * 32),
    "node beyond the size": _sql("INSERT INTO nodes VALUES (30, 0, ?)", b"\x00" * 32),
    "checkpoint entry": lambda conn: _set_raw(
        _first_checkpoint(conn), b'"size":', b'"size":1')(conn),
    "rehashed checkpoint entry": lambda conn: _set_raw(
        _first_checkpoint(conn), b'"size":', b'"size":1', rehash=True)(conn),
    "revocation": _set_raw(66, b'"name":"carol"', b'"name":"alice"', rehash=True),
}


def _outcome(ledger: Ledger, workers: int, seen: list[tuple[int, int]]) -> tuple[str, int]:
    try:
        in_workers = verification_module.verify_tree(
            ledger, ledger._conn, lambda done, total: seen.append((done, total)),
            workers=workers)
    except LedgerTamperedError as e:
        return "error: " + e.message, -1
    return "ok", in_workers


def _opened_then_mutated(built: Path, work: Path,
                         mutate: Mutation) -> Ledger:
    """A copy of the built ledger, opened first (`Ledger.open` refuses some mutations on its
    own), then mutated under its triggers' backs."""
    shutil.copytree(built, work)
    ledger = Ledger.open(work / "ledger.sqlite", checkpoint_file=work / ".checkpoint")
    conn = sqlite3.connect(work / "ledger.sqlite", isolation_level=None)
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for trigger, _ in triggers:
        conn.execute(f"DROP TRIGGER {trigger}")
    mutate(conn)
    for _, sql in triggers:
        conn.execute(sql)
    conn.close()
    return ledger


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_parallel_and_serial_verify_tree_agree(
    name: str, built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _opened_then_mutated(built, tmp_path / "work", MUTATIONS[name])
    # The fixture's 241 entries end in a page of one entry (no level-1 node over it).
    monkeypatch.setattr(verification_module, "PAGE", PAGE)
    monkeypatch.setattr(verification_module, "PARALLEL_MIN_ENTRIES", 0)
    serial_seen: list[tuple[int, int]] = []
    parallel_seen: list[tuple[int, int]] = []
    size = ledger.size
    try:
        serial, serial_workers = _outcome(ledger, 1, serial_seen)
        parallel, parallel_workers = _outcome(ledger, 2, parallel_seen)
    finally:
        ledger.close()
    assert serial == parallel
    assert (name == "none") == (serial == "ok"), serial
    if name == "none":
        assert size % PAGE == 1
        assert serial_workers == 0 and parallel_workers > 0  # not the in-process fallback
        assert serial_seen == parallel_seen
        assert serial_seen[-1][0] == serial_seen[-1][1]


def test_spawned_workers_prove_pages(built: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With another thread running (the TUI's case) the workers are spawned, not forked."""
    work = tmp_path / "work"
    shutil.copytree(built, work)
    monkeypatch.setattr(verification_module, "PAGE", PAGE)
    monkeypatch.setattr(verification_module, "PARALLEL_MIN_ENTRIES", 0)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    ledger = Ledger.open(work / "ledger.sqlite", checkpoint_file=work / ".checkpoint")
    try:
        assert verification_module.verify_tree(ledger, ledger._conn, workers=2) > 0
    finally:
        ledger.close()
        stop.set()
        other.join()


def test_a_page_is_proven_but_for_the_lines_the_fast_path_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid entry the block check cannot take (nested data, an escaped character) is left to
    the strict path alone: the rest of its page is still proven in the worker."""
    ledger = new_ledger(tmp_path)
    fill(ledger, 40, minutes=1)
    nested = ledger.size
    ledger.append("note", {"nested": {"a": 1}}, time=T0.replace(minute=2), actor="console")
    ledger.append("note", {"text": 'a "quoted" line\nand more'}, time=T0.replace(minute=2),
                  actor="console")
    fill(ledger, 40, minutes=3)
    size = ledger.size
    conn = sqlite3.connect(f"{(tmp_path / 'ledger.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        proof = treescan.check_page(conn, 0, size - size % 2)
        nodes, page = treescan.check_subtree(conn, 0, size, 6)
    finally:
        conn.close()
    assert proof is not None
    slow = [i for i, _ in proof.slow]
    assert nested in slow and nested + 1 in slow
    assert len(slow) < size // 4  # not the whole page
    assert nodes and page is not None
    monkeypatch.setattr(verification_module, "PAGE", PAGE)
    monkeypatch.setattr(verification_module, "PARALLEL_MIN_ENTRIES", 0)
    try:
        assert verification_module.verify_tree(ledger, ledger._conn, workers=1) == 0
        assert verification_module.verify_tree(ledger, ledger._conn, workers=2) > 0
    finally:
        ledger.close()


WIDE_MUTATIONS: dict[str, Mutation] = {
    **MUTATIONS,
    "raw holding a newline": _set_raw(45, b'{"actor"', b'{"actor":"x"}\n{"actor"', rehash=True),
    "raw starting with a newline": _set_raw(53, b'{"actor"', b'\n{"actor"', rehash=True),
}


@pytest.mark.parametrize("name", ["none", "level 2 node", "level 3 node missing",
                                  "not canonical mid-page", "time column",
                                  "raw holding a newline", "raw starting with a newline"])
def test_pages_wider_than_the_subtree_levels_agree(
    name: str, built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of 24 rows: the levels under each page (`check_subtree`) stop at level 3, the
    levels above go in ranges; the serial and parallel checks still agree."""
    ledger = _opened_then_mutated(built, tmp_path / "work", WIDE_MUTATIONS[name])
    monkeypatch.setattr(verification_module, "PAGE", 24)
    monkeypatch.setattr(verification_module, "PARALLEL_MIN_ENTRIES", 0)
    serial_seen: list[tuple[int, int]] = []
    parallel_seen: list[tuple[int, int]] = []
    try:
        serial, _ = _outcome(ledger, 1, serial_seen)
        parallel, _ = _outcome(ledger, 2, parallel_seen)
    finally:
        ledger.close()
    assert serial == parallel
    assert (name == "none") == (serial == "ok"), serial
    if name == "none":
        assert serial_seen == parallel_seen

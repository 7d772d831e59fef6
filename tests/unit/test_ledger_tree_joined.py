""""verify tree"'s joined reads (`console.ledger.treejoin`) prove a page only when its rows do.

The workers read a page a piece at a time with `group_concat` (a few values per piece, not five
per row) when `joined_reads` holds; whatever those reads do not prove is read again row by row.
So for any ledger, tampered or not, a page's answer with joined reads is its answer from rows,
and the parallel check still names the serial check's first bad seq or node. Small pages and
pieces (`PAGE` = 32, `PIECE_LINES` = 8) put pieces inside pages and levels above the pieces.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.ledger import Ledger, merkle, treejoin, treescan
from console.ledger import verification as verification_module
from tests.unit.test_ledger_support import T0, fill, new_ledger, tree_ledger
from tests.unit.test_ledger_tree_parallel import (
    MUTATIONS,
    Mutation,
    _opened_then_mutated,
    _outcome,
    _set_raw,
    _sql,
)

PAGE = 32
TOP = 5  # pages start at multiples of 2 ** TOP
PIECE = 8


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("treejoined")
    tree_ledger(folder)
    yield folder


@pytest.fixture(autouse=True)
def _small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(treescan, "PIECE_LINES", PIECE)


def _column(conn: sqlite3.Connection, column: str, seq: int) -> bytes:
    value: bytes = conn.execute(f"SELECT {column} FROM entries WHERE seq = ?",
                                (seq,)).fetchone()[0]
    return value


def _split_leaf_hashes(seq: int) -> Mutation:
    """Leaf hashes of 31 and 33 bytes whose join is the join of the two true ones."""

    def mutate(conn: sqlite3.Connection) -> None:
        both = _column(conn, "leaf_hash", seq) + _column(conn, "leaf_hash", seq + 1)
        conn.execute("UPDATE entries SET leaf_hash = ? WHERE seq = ?", (both[:31], seq))
        conn.execute("UPDATE entries SET leaf_hash = ? WHERE seq = ?", (both[31:], seq + 1))

    return mutate


def _split_node_hashes(level: int, idx: int) -> Mutation:
    def mutate(conn: sqlite3.Connection) -> None:
        rows = conn.execute("SELECT hash FROM nodes WHERE level = ? AND idx IN (?, ?) ORDER BY idx",
                            (level, idx, idx + 1)).fetchall()
        both = rows[0][0] + rows[1][0]
        conn.executemany("UPDATE nodes SET hash = ? WHERE level = ? AND idx = ?",
                         [(both[:31], level, idx), (both[31:], level, idx + 1)])

    return mutate


def _swap_rows(seq: int) -> Mutation:
    """Entries `seq` and `seq + 1` exchange their bytes and leaf hashes (the tree unchanged)."""

    def mutate(conn: sqlite3.Connection) -> None:
        one, two = (conn.execute("SELECT raw, leaf_hash FROM entries WHERE seq = ?",
                                 (s,)).fetchone() for s in (seq, seq + 1))
        conn.execute("UPDATE entries SET raw = ?, leaf_hash = ? WHERE seq = ?", (*two, seq))
        conn.execute("UPDATE entries SET raw = ?, leaf_hash = ? WHERE seq = ?", (*one, seq + 1))

    return mutate


def _shift_types(seq: int) -> Mutation:
    """Entry `seq`'s type column empty and the next one's holding both types across a newline:
    the join of the column is unchanged but for one separator more."""

    def mutate(conn: sqlite3.Connection) -> None:
        kind = conn.execute("SELECT type FROM entries WHERE seq = ?", (seq,)).fetchone()[0]
        conn.execute("UPDATE entries SET type = '' WHERE seq = ?", (seq,))
        conn.execute("UPDATE entries SET type = ? || char(10) || type WHERE seq = ?",
                     (kind, seq + 1))

    return mutate


JOINED_MUTATIONS: dict[str, Mutation] = {
    "none": MUTATIONS["none"],
    "tampered byte": MUTATIONS["entry bytes"],
    "tampered byte, rehashed": MUTATIONS["rehashed entry"],
    "row dropped": MUTATIONS["missing entry"],
    "row dropped at a piece's start": _sql("DELETE FROM entries WHERE seq = 72"),
    "leaf hash changed": MUTATIONS["leaf hash"],
    "leaf hashes of 31 and 33 bytes": _split_leaf_hashes(100),
    "rows swapped": _swap_rows(101),
    "raw holding a newline": _set_raw(45, b'{"actor"', b'{"actor":"x"}\n{"actor"', rehash=True),
    "empty raw": _sql("UPDATE entries SET raw = x'' WHERE seq = 77"),
    "type column": MUTATIONS["type column"],
    "type columns across a newline": _shift_types(110),
    "time column": MUTATIONS["time column"],
    "level 1 node changed": MUTATIONS["level 1 node"],
    "level 2 node changed": MUTATIONS["level 2 node"],
    "level 4 node changed": _sql("UPDATE nodes SET hash = ? WHERE level = 4 AND idx = 5",
                                 b"\x00" * 32),
    "node hashes of 31 and 33 bytes": _split_node_hashes(1, 30),
    "level 3 node missing": MUTATIONS["level 3 node missing"],
    "extra node": MUTATIONS["extra node"],
    "not canonical mid-page": MUTATIONS["not canonical mid-page"],
    "checkpoint entry": MUTATIONS["checkpoint entry"],
}


def _pages(size: int) -> list[tuple[int, int]]:
    return [(first, min(first + PAGE, size)) for first in range(0, size, PAGE)]


def test_joined_reads_hold_for_a_new_ledger(built: Path) -> None:
    conn = sqlite3.connect(f"{(built / 'ledger.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        assert treejoin.joined_reads(conn)
    finally:
        conn.close()


def test_a_good_page_is_proven_from_joined_reads_alone(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sqlite3.connect(f"{(built / 'ledger.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        size = conn.execute("SELECT max(seq) + 1 FROM entries").fetchone()[0]
        from_rows = [treescan.check_subtree(conn, f, s, TOP) for f, s in _pages(size)]

        def no_rows(*args: object) -> None:
            raise AssertionError("the page was read row by row")

        monkeypatch.setattr(treescan, "_check_page", no_rows)
        monkeypatch.setattr(treescan, "_level_above", no_rows)
        joined = [treescan.check_subtree(conn, f, s, TOP, joined=True) for f, s in _pages(size)]
    finally:
        conn.close()
    assert joined == from_rows
    assert all(proven for proven, _ in joined)
    assert all(page is not None for _, page in joined)


@pytest.mark.parametrize("name", sorted(JOINED_MUTATIONS))
def test_joined_reads_answer_as_the_rows_do(
    name: str, built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page's answer from joined reads is its answer from rows, and the parallel check
    (whose workers read joined) names the serial check's first bad seq or node."""
    ledger = _opened_then_mutated(built, tmp_path / "work", JOINED_MUTATIONS[name])
    conn = sqlite3.connect(f"{ledger.path.as_uri()}?mode=ro", uri=True)
    try:
        assert treejoin.joined_reads(conn)
        size = conn.execute("SELECT max(seq) + 1 FROM entries").fetchone()[0]
        for first, stop in _pages(size):
            assert (treescan.check_subtree(conn, first, stop, TOP, joined=True)
                    == treescan.check_subtree(conn, first, stop, TOP)), (first, stop)
    finally:
        conn.close()
    monkeypatch.setattr(verification_module, "PAGE", PAGE)
    monkeypatch.setattr(verification_module, "PARALLEL_MIN_ENTRIES", 0)
    try:
        serial, _ = _outcome(ledger, 1, [])
        parallel, in_workers = _outcome(ledger, 2, [])
    finally:
        ledger.close()
    assert serial == parallel
    assert (name == "none") == (serial == "ok"), serial
    if name == "none":
        assert in_workers > 0


@pytest.mark.parametrize("name", ["leaf hashes of 31 and 33 bytes", "rows swapped",
                                  "type columns across a newline", "node hashes of 31 and 33 bytes",
                                  "raw holding a newline", "tampered byte", "row dropped"])
def test_joined_reads_do_not_prove_a_tampered_piece(name: str, built: Path,
                                                    tmp_path: Path) -> None:
    """What a tampered piece breaks, the joined reads see themselves (their page is then read
    row by row): not proven there, whatever the rows then say."""
    ledger = _opened_then_mutated(built, tmp_path / "work", JOINED_MUTATIONS[name])
    conn = sqlite3.connect(f"{ledger.path.as_uri()}?mode=ro", uri=True)
    try:
        size = conn.execute("SELECT max(seq) + 1 FROM entries").fetchone()[0]
        answers = [treescan._joined_subtree(conn, f, s, TOP) for f, s in _pages(size)]
    finally:
        conn.close()
        ledger.close()
    assert any(answer is None or not answer[0] or answer[1] is None for answer in answers)


def test_joined_reads_refuse_a_table_that_is_not_strict(built: Path, tmp_path: Path) -> None:
    """Without STRICT, `quick_check` does not hold the columns to their types (a text raw would
    be read as its bytes): joined reads are not used, and the rows decide."""
    work = tmp_path / "work"
    shutil.copytree(built, work)
    conn = sqlite3.connect(work / "ledger.sqlite", isolation_level=None)
    try:
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("UPDATE sqlite_master SET sql = replace(sql, ') STRICT', ')') "
                     "WHERE name = 'entries'")
    finally:
        conn.close()
    conn = sqlite3.connect(f"{(work / 'ledger.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT strict FROM pragma_table_list WHERE name = 'entries'"
                            ).fetchone() == (0,)
        assert not treejoin.joined_reads(conn)
    finally:
        conn.close()


def test_a_page_with_lines_the_fast_path_refuses_answers_as_from_rows(tmp_path: Path) -> None:
    """A piece `accept_block` refuses whole (nested data, an escaped character) is halved, as
    from rows: the same slow lines, the same proof."""
    ledger = new_ledger(tmp_path)
    fill(ledger, 20, minutes=1)
    ledger.append("note", {"nested": {"a": 1}}, time=T0.replace(minute=2), actor="console")
    ledger.append("note", {"text": 'a "quoted" line\nand more'}, time=T0.replace(minute=2),
                  actor="console")
    fill(ledger, 40, minutes=3)
    ledger.close()
    conn = sqlite3.connect(f"{(tmp_path / 'ledger.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        size = conn.execute("SELECT max(seq) + 1 FROM entries").fetchone()[0]
        for first, stop in _pages(size):
            joined = treescan._joined_subtree(conn, first, stop, TOP)
            assert joined is not None
            assert joined == treescan.check_subtree(conn, first, stop, TOP)
    finally:
        conn.close()


def test_node_hashes_are_the_node_hash_of_each_pair() -> None:
    lefts = [merkle.leaf_hash(bytes([i])) for i in range(5)]
    rights = [merkle.leaf_hash(bytes([i, i])) for i in range(5)]
    assert merkle.node_hashes(lefts, rights) == [
        merkle.node_hash(left, right) for left, right in zip(lefts, rights, strict=True)]


def test_a_ledger_opened_from_its_copy_still_verifies(built: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole check, joined reads in the workers, pieces inside pages: the ledger is good."""
    work = tmp_path / "work"
    shutil.copytree(built, work)
    monkeypatch.setattr(verification_module, "PAGE", PAGE)
    monkeypatch.setattr(verification_module, "PARALLEL_MIN_ENTRIES", 0)
    ledger = Ledger.open(work / "ledger.sqlite", checkpoint_file=work / ".checkpoint")
    try:
        assert verification_module.verify_tree(ledger, ledger._conn, workers=2) > 0
    finally:
        ledger.close()


def test_rows_aggregated_out_of_seq_order_are_not_taken(built: Path) -> None:
    """The order `group_concat` takes rows in is SQLite's choice: the seqs (and idx) joined with
    the values show it. Aggregated backwards, nothing is proven from the joined reads, and the
    rows (read in order) decide."""
    conn = sqlite3.connect(f"{(built / 'ledger.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        size = conn.execute("SELECT max(seq) + 1 FROM entries").fetchone()[0]
        from_rows = [treescan.check_subtree(conn, f, s, TOP) for f, s in _pages(size)]
        conn.execute("PRAGMA reverse_unordered_selects = ON")
        assert treejoin.joined_entries(conn, 0, PIECE) is None
        assert treejoin.joined_level(conn, 2, 0, 4, [merkle.EMPTY_ROOT] * 8) is None
        assert [treescan.check_subtree(conn, f, s, TOP, joined=True)
                for f, s in _pages(size)] == from_rows
    finally:
        conn.close()


def test_nodes_stored_backwards_and_aggregated_backwards_are_not_taken(
    built: Path, tmp_path: Path
) -> None:
    """Level-2 nodes 0..3 stored in reverse order, read by an SQLite that aggregates backwards:
    their hashes joined are the true ones in order, but not at their idx; the idx joined with
    them show it."""

    def reverse(conn: sqlite3.Connection) -> None:
        hashes = [row[0] for row in conn.execute(
            "SELECT hash FROM nodes WHERE level = 2 AND idx < 4 ORDER BY idx")]
        conn.executemany("UPDATE nodes SET hash = ? WHERE level = 2 AND idx = ?",
                         [(h, 3 - i) for i, h in enumerate(hashes)])

    ledger = _opened_then_mutated(built, tmp_path / "work", reverse)
    conn = sqlite3.connect(f"{ledger.path.as_uri()}?mode=ro", uri=True)
    try:
        ones = [row[0] for row in conn.execute(
            "SELECT hash FROM nodes WHERE level = 1 AND idx < 8 ORDER BY idx")]
        conn.execute("PRAGMA reverse_unordered_selects = ON")
        assert treejoin.joined_level(conn, 2, 0, 4, ones) is None
    finally:
        conn.close()
        ledger.close()


def test_joined_reads_refuse_a_utf16_database(built: Path, tmp_path: Path) -> None:
    """In a UTF-16 database a blob read as text is converted: joined reads are not used."""
    source = sqlite3.connect(f"{(built / 'ledger.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        schema = [sql for (sql,) in source.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND type = 'table'")]
    finally:
        source.close()
    conn = sqlite3.connect(tmp_path / "utf16.sqlite", isolation_level=None)
    try:
        conn.execute("PRAGMA encoding = 'UTF-16le'")
        for sql in schema:
            conn.execute(sql)
        assert conn.execute("PRAGMA encoding").fetchone() == ("UTF-16le",)
        assert not treejoin.joined_reads(conn)
    finally:
        conn.close()

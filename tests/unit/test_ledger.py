"""The SQLite ledger: append/read, refusals, triggers, checkpoints, rollback guard, paging."""

from __future__ import annotations

import shutil
import sqlite3
import unicodedata
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console import jcs
from console.errors import (
    ClockError,
    EntryRejectedError,
    LedgerError,
    LedgerTamperedError,
    RollbackError,
    VerificationError,
)
from console.ledger import EntryFilter, Ledger, escape_for_display, merkle, sign_note
from console.ledger.checkpoint import parse_checkpoint_body, parse_note
from tests.unit.test_ledger_support import (
    KEYS,
    ORIGIN,
    T0,
    checkpoint_now,
    fill,
    new_ledger,
)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = new_ledger(tmp_path)
    yield led
    led.close()


def reopen(ledger: Ledger, **kw: object) -> Ledger:
    ledger.close()
    return Ledger.open(ledger.path, checkpoint_file=ledger.checkpoint_file, **kw)  # type: ignore[arg-type]


def test_connection_pragmas(ledger: Ledger) -> None:
    conn = ledger._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_append_read_round_trip_and_stored_bytes(ledger: Ledger) -> None:
    e = ledger.append("key.generated", {"kid": "k1", "n": 3}, time=T0, actor="alice", ceremony="c9")
    assert e.seq == 5 and ledger.size == 6
    assert e.raw == jcs.canonicalize(
        {
            "v": 1,
            "seq": 5,
            "time": "2027-01-15T10:00:00Z",
            "type": "key.generated",
            "ceremony": "c9",
            "actor": "alice",
            "data": {"kid": "k1", "n": 3},
        }
    )
    back = ledger.entry(5)
    assert back == e and back.data == {"kid": "k1", "n": 3} and back.time == T0
    assert ledger._conn.execute("SELECT raw FROM entries WHERE seq=5").fetchone()[0] == e.raw
    assert e.leaf_hash == merkle.leaf_hash(e.raw)
    assert ledger.last_time() == T0
    assert [x.seq for x in ledger.entries(2, 4)] == [2, 3]


def test_root_matches_independent_recomputation(ledger: Ledger) -> None:
    fill(ledger, 50)
    leaves = [e.leaf_hash for e in ledger.entries()]
    for size in (1, 2, 3, 7, 8, 33, len(leaves)):
        assert ledger.root(size) == merkle.root_from_leaf_hashes(leaves[:size])
        for i in (0, size // 2, size - 1):
            merkle.verify_inclusion(
                i, size, leaves[i], ledger.inclusion_proof(i, size), ledger.root(size)
            )
    merkle.verify_consistency(
        5, 54, ledger.consistency_proof(5, 54), ledger.root(5), ledger.root(54)
    )


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"x": 1.5}, "float"),
        ({"x": float("nan")}, "nan"),
        ({1: "a"}, "int key"),
        ({"x": "\udc00"}, "surrogate"),
        ({"x": "a" * (9 * 1024 * 1024)}, "too large"),
    ],
)
def test_refused_data_changes_nothing(ledger: Ledger, data: dict, kind: str) -> None:  # type: ignore[type-arg]
    size, root = ledger.size, ledger.root()
    with pytest.raises(EntryRejectedError):
        ledger.append("note", data, time=T0, actor="console")
    assert (ledger.size, ledger.root()) == (size, root)


def test_deep_nesting_and_bad_type_are_refused(ledger: Ledger) -> None:
    deep: object = 1
    for _ in range(jcs.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(EntryRejectedError):
        ledger.append("note", {"d": deep}, time=T0, actor="console")
    with pytest.raises(EntryRejectedError):
        ledger.append("Not A Type", {}, time=T0, actor="console")


def test_time_never_goes_backwards_and_must_be_aware(ledger: Ledger) -> None:
    ledger.append("note", {}, time=T0 + timedelta(hours=1), actor="console")
    with pytest.raises(ClockError, match="earlier than the last"):
        ledger.append("note", {}, time=T0, actor="console")
    with pytest.raises(ClockError):
        ledger.append("note", {}, time=T0.replace(tzinfo=None), actor="console")
    ledger.append("note", {}, time=T0 + timedelta(hours=1), actor="console")  # equal is fine


def test_append_many_is_all_or_nothing(ledger: Ledger) -> None:
    size = ledger.size
    with pytest.raises(EntryRejectedError):
        ledger.append_many(
            [("note", {"i": 1}, T0, "console", None), ("note", {"i": 1.5}, T0, "console", None)]
        )
    assert ledger.size == size
    got = ledger.append_many([("note", {"i": i}, T0, "console", None) for i in range(3)])
    assert [e.seq for e in got] == [size, size + 1, size + 2]
    ledger.verify_tree()


def test_triggers_refuse_update_and_delete(ledger: Ledger) -> None:
    for sql in (
        "UPDATE entries SET raw = x'00' WHERE seq = 0",
        "DELETE FROM entries",
        "DELETE FROM nodes",
        "UPDATE meta SET value = 'x'",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            ledger._conn.execute(sql)


def test_open_refuses_missing_trigger(ledger: Ledger) -> None:
    ledger._conn.execute("DROP TRIGGER entries_no_delete")
    with pytest.raises(LedgerTamperedError, match="entries_no_delete"):
        reopen(ledger)


def test_create_refuses_existing_files_and_bad_origin(tmp_path: Path, ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="already exists"):
        Ledger.create(ledger.path, origin=ORIGIN, checkpoint_file=tmp_path / "cp2")
    with pytest.raises(LedgerError, match="origin"):
        Ledger.create(
            tmp_path / "x.sqlite", origin="no spaces allowed", checkpoint_file=tmp_path / "c"
        )
    with pytest.raises(LedgerError, match="no ledger"):
        Ledger.open(tmp_path / "missing.sqlite", checkpoint_file=tmp_path / ".cp")


def test_record_checkpoint_convention_and_file(ledger: Ledger) -> None:
    fill(ledger, 10)
    size = ledger.size
    note = checkpoint_now(ledger)
    assert ledger.checkpoint_file.read_text() == note
    entry = ledger.entry(size)
    assert entry.type == "checkpoint.signed"
    assert entry.data["size"] == size and entry.data["note"] == note
    body = parse_checkpoint_body(parse_note(note)[0])
    assert (body.origin, body.size, body.root) == (ORIGIN, size, ledger.root(size))
    ledger = reopen(ledger)
    ledger.verify_tree()
    ledger.close()


def test_record_checkpoint_refusals(ledger: Ledger) -> None:
    stale = sign_note(ledger.checkpoint_body(), "alice", KEYS["alice"])
    ledger.append("note", {}, time=T0, actor="console")
    with pytest.raises(VerificationError, match="covers"):
        ledger.record_checkpoint(stale, time=T0, actor="console")
    forged = sign_note(ledger.checkpoint_body(), "mallory", KEYS["mallory"])
    with pytest.raises(VerificationError, match="signed by 0 of the 2"):
        ledger.record_checkpoint(forged, time=T0, actor="console")
    alone = sign_note(ledger.checkpoint_body(), "alice", KEYS["alice"])
    with pytest.raises(VerificationError, match="signed by 1 of the 2 officers it needs"):
        ledger.record_checkpoint(alone, time=T0, actor="console")
    assert ledger.checkpoint_file.read_text() == ""  # still "no checkpoint yet"


def test_a_crash_between_the_first_checkpoint_and_its_guard_is_brought_forward(
        ledger: Ledger) -> None:
    """The first checkpoint committed, the process killed before `.checkpoint` was written:
    the empty guard `create` wrote is brought forward at the next open; a removed guard is
    refused (it is how a rollback would hide)."""
    fill(ledger, 3)
    checkpoint_now(ledger)
    note = ledger.checkpoint_file.read_text()
    ledger.checkpoint_file.write_text("")  # as if killed before the write
    ledger.close()
    reopened = Ledger.open(ledger.path, checkpoint_file=ledger.checkpoint_file)
    assert reopened.checkpoint_file.read_text() == note
    reopened.close()
    ledger.checkpoint_file.unlink()
    with pytest.raises(RollbackError, match="missing"):
        Ledger.open(ledger.path, checkpoint_file=ledger.checkpoint_file)


def test_rollback_to_older_copy_is_refused_with_both_sizes_and_roots(ledger: Ledger) -> None:
    fill(ledger, 5)
    checkpoint_now(ledger)
    old_copy = ledger.path.with_name("old.sqlite")
    ledger._conn.execute("VACUUM INTO ?", (str(old_copy),))
    old_size, old_root = ledger.size, ledger.root()
    fill(ledger, 5)
    checkpoint_now(ledger)
    new_size = ledger.size - 1
    new_root = ledger.root(new_size)
    ledger.close()
    shutil.copy(old_copy, ledger.path)
    for suffix in ("-wal", "-shm"):
        Path(str(ledger.path) + suffix).unlink(missing_ok=True)
    with pytest.raises(RollbackError) as info:
        Ledger.open(ledger.path, checkpoint_file=ledger.checkpoint_file)
    text = info.value.user_message()
    for fragment in (
        str(old_size),
        str(new_size),
        merkle_b64(old_root),
        merkle_b64(new_root),
        "older copy",
    ):
        assert fragment in text


def merkle_b64(root: bytes) -> str:
    import base64

    return base64.b64encode(root).decode()


def test_rewritten_history_and_expect_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    a = new_ledger(tmp_path / "a")
    fill(a, 3)
    note = checkpoint_now(a)
    a.close()
    # Same origin, different history, checked against a's checkpoint.
    (tmp_path / "b").mkdir()
    b = new_ledger(tmp_path / "b")
    fill(b, 4, minutes=1)  # same origin and prefix, then a different history
    b.close()
    with pytest.raises(RollbackError, match="not an extension"):
        Ledger.open(b.path, checkpoint_file=b.checkpoint_file, expect_checkpoint=note)
    with pytest.raises(RollbackError, match="missing"):
        Ledger.open(a.path, checkpoint_file=tmp_path / "a" / "elsewhere")


def test_page_and_count_with_filters(ledger: Ledger) -> None:
    fill(ledger, 30, ceremony="c-1")
    fill(ledger, 5, ceremony="c-2")
    assert ledger.count() == ledger.size == 40
    assert ledger.count(EntryFilter(type_prefix="officer.")) == 3
    assert ledger.count(EntryFilter(ceremony="c-2")) == 5
    assert ledger.count(EntryFilter(text="kid-3")) == 2
    page = ledger.page(0, 10, EntryFilter(ceremony="c-1"))
    assert [e.seq for e in page] == list(range(5, 15))
    assert [e.seq for e in ledger.page(0, 3, newest_first=True)] == [39, 38, 37]
    assert [e.seq for e in ledger.page(37, 10)] == [37, 38, 39]
    assert [e.seq for e in ledger.page(2, 2, EntryFilter(ceremony="c-2"), newest_first=True)] == [
        37,
        36,
    ]
    # The UI shows 8 characters of a ceremony id: a prefix is enough to filter.
    assert ledger.count(EntryFilter(ceremony="c-")) == 35


def test_verify_tree_names_the_first_bad_seq(ledger: Ledger) -> None:
    fill(ledger, 20)
    ledger._conn.execute("DROP TRIGGER entries_no_update")
    raw = ledger.entry(9).raw.replace(b"kid-4", b"kid-6")
    ledger._conn.execute("UPDATE entries SET raw = ? WHERE seq = 9", (raw,))
    ledger._conn.execute(
        "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries "
        "BEGIN SELECT RAISE(ABORT, 'entries is append-only'); END"
    )
    with pytest.raises(LedgerTamperedError, match="entry 9"):
        ledger.verify_tree()


def test_verify_tree_reports_progress(ledger: Ledger) -> None:
    fill(ledger, 2500)
    seen: list[tuple[int, int]] = []
    ledger.verify_tree(lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] and len(seen) >= 3


# --- Hypothesis ------------------------------------------------------------------------------

TEXT = st.lists(
    st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from(["\n", "\x1b[31m", "\x00", "\u202e", "\u2066", "\r", "\x7f", "\x9b", "\\"]),
    max_size=60,
).map("".join)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.dictionaries(TEXT, VALUES, max_size=5), actor=TEXT.filter(bool))
def test_any_data_round_trips(ledger: Ledger, data: dict[str, object], actor: str) -> None:
    e = ledger.append("note", data, time=T0, actor=actor)
    back = ledger.entry(e.seq)
    assert back.data == data and back.actor == actor and back.raw == e.raw


def _is_inert(shown: str) -> bool:
    bad = set(map(chr, range(0x20))) | {"\x7f", "\u202e", "\u2066", "\u2028"}
    return not (set(shown) & bad) and all(not 0x80 <= ord(c) < 0xA0 for c in shown)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=TEXT)
def test_any_text_is_stored_as_data_and_shown_escaped(ledger: Ledger, text: str) -> None:
    e = ledger.append("note", {"remark": text}, time=T0, actor="console")
    assert ledger.entry(e.seq).data["remark"] == text
    shown = escape_for_display(text)
    assert _is_inert(shown)
    if not any(_needs_escape(c) for c in text):
        assert shown == text


def _needs_escape(c: str) -> bool:
    return (
        ord(c) < 0x20
        or 0x7F <= ord(c) < 0xA0
        or c == "\\"
        or c in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        or unicodedata.category(c) in ("Zl", "Zp", "Co", "Cn")
    )


def test_one_megabyte_of_hostile_text(ledger: Ledger) -> None:
    text = ("\x1b]0;pwn\x07\x00\u202eevil\n" * 70_000)[:1_000_000]
    e = ledger.append("note", {"remark": text}, time=T0, actor="console")
    assert ledger.entry(e.seq).data["remark"] == text
    shown = escape_for_display(text)
    assert _is_inert(shown) and "\\x1b" in shown and "\\u202e" in shown and "\\x00" in shown
    assert escape_for_display("a\\x00") == "a\\\\x00"  # an escape in the output is never ambiguous
    ledger.verify_tree()


@pytest.mark.parametrize("level", [1, 2])
def test_verify_tree_names_a_wrong_persisted_node(ledger: Ledger, level: int) -> None:
    fill(ledger, 40)
    ledger._conn.execute("DROP TRIGGER nodes_no_update")
    ledger._conn.execute("UPDATE nodes SET hash = ? WHERE level = ? AND idx = 3",
                         (b"\x00" * 32, level))
    with pytest.raises(LedgerTamperedError, match=rf"tree node \({level}, 3\)"):
        ledger.verify_tree()

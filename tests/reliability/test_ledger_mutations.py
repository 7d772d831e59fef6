"""Mutation campaign: random single mutations of a 1,000+-entry ledger and of its audit pack.

Every mutated database must be refused by `Ledger.open` or `Ledger.verify_tree`; every mutated
pack by `verify_audit_pack`; every untouched copy must still verify. The ledger is built once per
module and each mutation works on a fresh copy of the files.

Scope (by design, documented in console.ledger.store): entries after the last checkpoint are not
yet cosigned, so an attacker who rewrites them *and* recomputes every hash is caught only by the
next checkpoint. Mutations that recompute the tree therefore touch covered entries; mutations that
leave any stored hash inconsistent may touch any entry. Likewise a pack whose uncovered tail
(the end of pending.jsonl) is cut off at a line boundary is a valid older export, so pack
deletions and truncations never cut pending.jsonl exactly at its end.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.errors import ConsoleError
from console.ledger import Ledger, export_audit_pack, merkle, sign_note, verify_audit_pack
from console.ledger.entry import encode_entry
from tests.unit.test_ledger_support import KEYS, T0, authorize, checkpoint_now, fill, new_ledger

SEED = int(os.environ.get("LEDGER_MUTATION_SEED", "20270115"))
_SOAK = os.environ.get("CEREMONY_SOAK") == "1"
DB_MUTATIONS = 400 if _SOAK else 200
PACK_MUTATIONS = 600 if _SOAK else 300


@dataclass(frozen=True)
class Built:
    folder: Path
    db: Path
    checkpoint: Path
    old_db: Path
    pack: Path
    size: int
    covered: int  # entries [0, covered) are under the last checkpoint


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("ledger-mutations")
    ledger = new_ledger(folder)
    authorize(ledger)  # the entries `fill` writes belong to an approved ceremony
    fill(ledger, 500)
    checkpoint_now(ledger)
    old_db = folder / "old.sqlite"
    ledger._conn.execute("VACUUM INTO ?", (str(old_db),))
    fill(ledger, 500, minutes=1)
    checkpoint_now(ledger, "bob", "carol", minutes=2)
    fill(ledger, 6, minutes=3)
    covered = ledger.checkpoint_entries()[-1].seq
    pack = export_audit_pack(ledger, folder / "pack")
    size = ledger.size
    ledger.close()
    assert size > 1000
    return Built(folder, ledger.path, ledger.checkpoint_file, old_db, pack, size, covered)


# --- database ----------------------------------------------------------------------------------


def _sql(db: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    for name in ("entries_no_update", "entries_no_delete", "nodes_no_update", "nodes_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    for sql, params in statements:
        conn.execute(sql, params)
    # Put the triggers back so that only the data betrays the attack.
    for table in ("entries", "nodes"):
        for op in ("update", "delete"):
            conn.execute(
                f"CREATE TRIGGER {table}_no_{op} BEFORE {op.upper()} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
    conn.close()


def _raw(db: Path, seq: int) -> bytes:
    conn = sqlite3.connect(db)
    raw: bytes = conn.execute("SELECT raw FROM entries WHERE seq = ?", (seq,)).fetchone()[0]
    conn.close()
    return raw


def _flip(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]


def _rebuild_nodes(db: Path) -> list[tuple[str, tuple[object, ...]]]:
    """Statements that recompute every leaf hash and node from the (altered) bytes."""
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT seq, raw FROM entries ORDER BY seq").fetchall()
    conn.close()
    stmts: list[tuple[str, tuple[object, ...]]] = [("DELETE FROM nodes", ())]
    cr = merkle.CompactRange()
    for seq, raw in rows:
        h = merkle.leaf_hash(raw)
        stmts.append(("UPDATE entries SET leaf_hash = ? WHERE seq = ?", (h, seq)))
        for level, idx, value in cr.append(h):
            stmts.append(("INSERT INTO nodes VALUES (?, ?, ?)", (level, idx, value)))
    return stmts


def db_mutation(b: Built, work: Path, rng: random.Random) -> str:
    db, cp = work / "ledger.sqlite", work / ".checkpoint"
    kind = rng.choice(
        [
            "file-bitflip",
            "raw-bitflip",
            "raw-bitflip-rehash",
            "rewrite-covered",
            "delete",
            "insert",
            "duplicate",
            "reorder",
            "truncate",
            "node",
            "forged-checkpoint",
            "missing-checkpoint",
            "older-db",
            "drop-trigger",
        ]
    )
    seq = rng.randrange(b.size)
    covered_seq = rng.randrange(b.covered)
    if kind == "file-bitflip":
        data = bytearray(db.read_bytes())
        raw = _raw(db, seq)
        at = data.find(raw)
        assert at >= 0
        i = at + rng.randrange(len(raw))
        data[i] ^= 1 << rng.randrange(8)
        db.write_bytes(bytes(data))
    elif kind == "raw-bitflip":
        _sql(db, ("UPDATE entries SET raw = ? WHERE seq = ?", (_flip(_raw(db, seq), rng), seq)))
    elif kind == "raw-bitflip-rehash":
        new = _flip(_raw(db, seq), rng)
        _sql(
            db,
            (
                "UPDATE entries SET raw = ?, leaf_hash = ? WHERE seq = ?",
                (new, merkle.leaf_hash(new), seq),
            ),
        )
    elif kind == "rewrite-covered":
        # A careful forger: valid canonical entry, every hash recomputed; only the checkpoint
        # outside the database can tell.
        old = _raw(db, covered_seq)
        new = old.replace(b'"actor":"console"', b'"actor":"mallory"')
        if new == old:
            new = old.replace(b'"v":1', b'"v":1', 1)[:-1] + b',"x":1}'
        _sql(db, ("UPDATE entries SET raw = ? WHERE seq = ?", (new, covered_seq)))
        _sql(db, *_rebuild_nodes(db))
    elif kind == "delete":
        _sql(db, ("DELETE FROM entries WHERE seq = ?", (seq,)))
    elif kind == "insert":
        raw = encode_entry(b.size, "note", {"forged": True}, time=T0, actor="mallory")
        _sql(
            db,
            (
                "INSERT INTO entries VALUES (?, ?, ?, 'note', NULL, ?)",
                (b.size + rng.randrange(1, 3), raw, merkle.leaf_hash(raw), "2027-01-15T10:00:00Z"),
            ),
        )
    elif kind == "duplicate":
        raw = _raw(db, seq)
        _sql(
            db,
            (
                "INSERT INTO entries VALUES (?, ?, ?, 'note', NULL, '2027-01-15T10:00:00Z')",
                (b.size, raw, merkle.leaf_hash(raw)),
            ),
        )
    elif kind == "reorder":
        other = (seq + rng.randrange(1, b.size)) % b.size
        a, c = _raw(db, seq), _raw(db, other)
        _sql(
            db,
            (
                "UPDATE entries SET raw = ?, leaf_hash = ? WHERE seq = ?",
                (c, merkle.leaf_hash(c), seq),
            ),
            (
                "UPDATE entries SET raw = ?, leaf_hash = ? WHERE seq = ?",
                (a, merkle.leaf_hash(a), other),
            ),
        )
    elif kind == "truncate":
        _sql(db, ("DELETE FROM entries WHERE seq >= ?", (covered_seq,)))
        _sql(db, *_rebuild_nodes(db))
    elif kind == "node":
        conn = sqlite3.connect(db)
        level, idx = rng.choice(conn.execute("SELECT level, idx FROM nodes").fetchall())
        conn.close()
        if rng.random() < 0.5:
            _sql(db, ("DELETE FROM nodes WHERE level = ? AND idx = ?", (level, idx)))
        else:
            _sql(
                db,
                (
                    "UPDATE nodes SET hash = ? WHERE level = ? AND idx = ?",
                    (os.urandom(32), level, idx),
                ),
            )
    elif kind == "forged-checkpoint":
        size = rng.randrange(1, b.size + 5)
        body = f"{_origin(b)}\n{size}\n{base64.b64encode(os.urandom(32)).decode()}\n"
        cp.write_text(sign_note(body, "mallory", KEYS["mallory"]))
    elif kind == "missing-checkpoint":
        cp.unlink()
    elif kind == "older-db":
        shutil.copy(b.old_db, db)
    elif kind == "drop-trigger":
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute(
            f"DROP TRIGGER {rng.choice(['entries', 'nodes', 'meta'])}_no_"
            f"{rng.choice(['update', 'delete'])}"
        )
        conn.close()
    return f"{kind} seq={seq} covered_seq={covered_seq}"


def _origin(b: Built) -> str:
    return b.checkpoint.read_text().split("\n", 1)[0]


def _copy_db(b: Built, work: Path) -> None:
    work.mkdir()
    shutil.copy(b.db, work / "ledger.sqlite")
    shutil.copy(b.checkpoint, work / ".checkpoint")


def _db_detects(work: Path) -> None:
    ledger = Ledger.open(work / "ledger.sqlite", checkpoint_file=work / ".checkpoint")
    try:
        ledger.verify_tree()
    finally:
        ledger.close()


def test_every_database_mutation_is_detected(built: Built, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    kinds: dict[str, int] = {}
    for n in range(DB_MUTATIONS):
        work = tmp_path / f"db{n}"
        _copy_db(built, work)
        what = db_mutation(built, work, rng)
        kinds[what.split()[0]] = kinds.get(what.split()[0], 0) + 1
        with pytest.raises(ConsoleError):
            _db_detects(work)
            pytest.fail(f"undetected: {what} (seed {SEED}, mutation {n})")
        shutil.rmtree(work)
        if n % 100 == 0:
            clean = tmp_path / f"clean{n}"
            _copy_db(built, clean)
            _db_detects(clean)  # an untouched copy opens and verifies
            shutil.rmtree(clean)
    assert len(kinds) == 14, kinds


# --- audit pack --------------------------------------------------------------------------------


def _fix_manifest(pack: Path) -> None:
    lines = []
    for path in sorted(p for p in pack.rglob("*") if p.is_file() and p.name != "MANIFEST.sha256"):
        name = str(path.relative_to(pack))
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n")
    (pack / "MANIFEST.sha256").write_text("".join(lines))


def _edit_lines(path: Path, edit: Callable[[list[bytes]], object]) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    edit(lines)
    path.write_bytes(b"".join(lines))


def pack_mutation(b: Built, pack: Path, rng: random.Random) -> str:
    files = sorted(p for p in pack.rglob("*") if p.is_file())
    jsonl = rng.choice([pack / "entries.jsonl", pack / "pending.jsonl"])
    kind = rng.choice(
        [
            "bitflip",
            "bitflip-fixed",
            "delete-line",
            "duplicate-line",
            "swap-lines",
            "truncate",
            "insert-line",
            "forged-checkpoint",
            "older-checkpoint",
            "delete-file",
            "move-line",
            "edit-officers",
        ]
    )
    fix = kind != "bitflip" and rng.random() < 0.8
    if kind in ("bitflip", "bitflip-fixed"):
        # With the manifest re-hashed, a flip inside an uncovered pending entry that leaves it
        # valid JSON is a different (unsigned) tail: out of scope, so those target covered files.
        unsigned = ("MANIFEST.sha256", "pending.jsonl")
        target = rng.choice(
            files if kind == "bitflip" else [f for f in files if f.name not in unsigned]
        )
        target.write_bytes(_flip(target.read_bytes(), rng))
        detail = target.name
    elif kind == "delete-line":
        # Not the last pending line: dropping uncovered tail entries is not detectable (scope).
        last = 0 if jsonl.name == "pending.jsonl" else 1
        _edit_lines(jsonl, lambda ls: ls.pop(rng.randrange(len(ls) - 1 + last)))
        detail = jsonl.name
    elif kind == "duplicate-line":

        def dup(ls: list[bytes]) -> None:
            i = rng.randrange(len(ls))
            ls.insert(i, ls[i])

        _edit_lines(jsonl, dup)
        detail = jsonl.name
    elif kind == "swap-lines":

        def swap(ls: list[bytes]) -> None:
            i, j = rng.sample(range(len(ls)), 2)
            ls[i], ls[j] = ls[j], ls[i]

        _edit_lines(jsonl, swap)
        detail = jsonl.name
    elif kind == "truncate":
        target = rng.choice(files)
        data = target.read_bytes()
        cut = rng.randrange(len(data))
        if target.name == "pending.jsonl" and cut and data[cut - 1 : cut] == b"\n":
            cut -= 1  # a cut at a line boundary of pending.jsonl is an uncovered-tail drop
        target.write_bytes(data[:cut])
        detail = target.name
    elif kind == "insert-line":

        def insert(ls: list[bytes]) -> None:
            i = rng.randrange(len(ls) + 1)
            ls.insert(i, encode_entry(i, "note", {"forged": 1}, time=T0, actor="mallory") + b"\n")

        _edit_lines(jsonl, insert)
        detail = jsonl.name
    elif kind == "forged-checkpoint":
        note = (pack / "checkpoint").read_text()
        body = note.split("\n\n")[0] + "\n"
        (pack / "checkpoint").write_text(sign_note(body, "mallory", KEYS["mallory"]))
        detail = "mallory"
    elif kind == "older-checkpoint":
        first = (pack / "entries.jsonl").read_bytes().splitlines()
        older = next(line for line in first if b'"type":"checkpoint.signed"' in line)
        import json

        (pack / "checkpoint").write_text(json.loads(older)["data"]["note"])
        detail = "first checkpoint"
    elif kind == "delete-file":
        target = rng.choice(files)
        target.unlink()
        detail = target.name
    elif kind == "move-line":
        entries, pending = pack / "entries.jsonl", pack / "pending.jsonl"
        moved = entries.read_bytes().splitlines(keepends=True)
        pending.write_bytes(moved[-1] + pending.read_bytes())
        entries.write_bytes(b"".join(moved[:-1]))
        detail = "last covered entry to pending"
    else:
        path = pack / "officers.json"
        path.write_text(path.read_text().replace('"enrolled"', '"revoked"', 1))
        detail = "status"
    if fix and detail != "MANIFEST.sha256":  # re-hashing would undo a manifest mutation
        _fix_manifest(pack)
    return f"{kind} {detail} fixed-manifest={fix}"


def test_every_pack_mutation_is_detected(built: Built, tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    kinds: set[str] = set()
    for n in range(PACK_MUTATIONS):
        work = tmp_path / f"pack{n}"
        shutil.copytree(built.pack, work)
        what = pack_mutation(built, work, rng)
        kinds.add(what.split()[0])
        with pytest.raises(ConsoleError):
            verify_audit_pack(work)
            pytest.fail(f"undetected: {what} (seed {SEED + 1}, mutation {n})")
        shutil.rmtree(work)
        if n % 100 == 0:
            clean = tmp_path / f"clean{n}"
            shutil.copytree(built.pack, clean)
            verify_audit_pack(clean)
            shutil.rmtree(clean)
    assert len(kinds) == 12, kinds

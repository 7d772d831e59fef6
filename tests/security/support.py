"""What an attacker does to a workspace, and what every refused attack must leave unchanged.

The attacker here is the threat model's insider: write access to the workspace folder (the
ledger's SQLite file included, so the append-only triggers are dropped and put back), the
public keys in `ceremony.toml`, perhaps one officer's card, a C compiler. Their tools are written
from the formats (RFC 6962 hashes, canonical JSON), not with the console's own code, so a bug in
the console's hashing cannot hide an attack.

`Evidence` is what a refusal must not change: the ledger's rows, the token's files and flags,
`pin.sealed`, the exports; and, when the workspace's module is the logging pass-through, that no
`C_Login` reached the token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.integration.ceremony_helpers import PYTHON, REPO, assert_one_error

SPY_SOURCE = Path(__file__).with_name("pkcs11_spy.c")
SPY_LOG = "CEREMONY_SPY_LOG"
TRIGGERS = ("entries_no_update", "entries_no_delete", "nodes_no_update", "nodes_no_delete")


# --- the logging pass-through module ---------------------------------------------------------


def build_spy(out: Path, real_module: str) -> Path | None:
    """Compile the pass-through module in front of `real_module`; None without a C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", f'-DREAL_MODULE="{real_module}"',
                    "-o", str(out), str(SPY_SOURCE), "-ldl"], check=True, capture_output=True)
    return out


def spy_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def logins(log: Path | None) -> int:
    """How many C_Login calls the pass-through logged (0 without it)."""
    return 0 if log is None else sum(x.startswith("C_Login") for x in spy_lines(log))


# --- the token's PIN flags -------------------------------------------------------------------

_FLAGS = """
import sys, pkcs11
token = pkcs11.lib(sys.argv[1]).get_token(token_label=sys.argv[2])
print(int(token.flags))
"""
CKF_USER_PIN_FLAGS = 0x00010000 | 0x00020000 | 0x00040000 | 0x00080000
"""CKF_USER_PIN_COUNT_LOW, _FINAL_TRY, _LOCKED, _TO_BE_CHANGED: what a wrong C_Login moves."""


def token_pin_flags(ws: Path, module: str = "/usr/lib/softhsm/libsofthsm2.so",
                    label: str = "demo-token") -> int:
    """The user-PIN flags of the workspace's token, read by python-pkcs11 in a subprocess (the
    workspace has its own SoftHSM2 configuration)."""
    env = {**os.environ, "SOFTHSM2_CONF": str(ws / "softhsm" / "softhsm2.conf")}
    out = subprocess.run([PYTHON, "-c", _FLAGS, module, label], env=env, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return int(out) & CKF_USER_PIN_FLAGS


# --- the ledger, rewritten from the formats --------------------------------------------------


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaf(raw: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + raw).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def perfect_nodes(leaves: list[bytes]) -> list[tuple[int, int, bytes]]:
    """Every perfect subtree hash above the leaves: (level, index, hash), level >= 1."""
    out: list[tuple[int, int, bytes]] = []
    level, row = 0, leaves
    while len(row) > 1:
        level += 1
        row = [node(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        out += [(level, i, h) for i, h in enumerate(row)]
    return out


def root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return node(root(leaves[:split]), root(leaves[split:]))


def _connect(ws: Path) -> sqlite3.Connection:
    db = sqlite3.connect(ws / "ledger.sqlite", isolation_level=None)
    for name in TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    return db


def _restore_triggers(db: sqlite3.Connection) -> None:
    for table in ("entries", "nodes"):
        for op in ("update", "delete"):
            db.execute(f"CREATE TRIGGER {table}_no_{op} BEFORE {op.upper()} ON {table} BEGIN "
                       f"SELECT RAISE(ABORT, '{table} is append-only'); END")
    db.close()


def entries(ws: Path) -> list[dict[str, object]]:
    uri = f"file:{ws / 'ledger.sqlite'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        return [json.loads(bytes(raw)) for (raw,) in
                db.execute("SELECT raw FROM entries ORDER BY seq")]


def rewrite_entries(ws: Path, change: Callable[[dict[str, object]], dict[str, object] | None],
                    *, rehash: bool) -> list[int]:
    """Apply `change` to every entry (None: leave it); store the new canonical bytes. With
    `rehash`, every leaf hash and stored node is recomputed, so only a signature (approval,
    checkpoint) or a re-derived digest can betray the edit. Returns the seqs changed."""
    db = _connect(ws)
    changed: list[int] = []
    rows = db.execute("SELECT seq, raw FROM entries ORDER BY seq").fetchall()
    for seq, raw in rows:
        new = change(json.loads(bytes(raw)))
        if new is None:
            continue
        data = canonical(new)
        if rehash:
            db.execute("UPDATE entries SET raw = ?, leaf_hash = ? WHERE seq = ?",
                       (data, leaf(data), seq))
        else:
            db.execute("UPDATE entries SET raw = ? WHERE seq = ?", (data, seq))
        changed.append(int(seq))
    if rehash:
        leaves = [bytes(h) for (h,) in db.execute("SELECT leaf_hash FROM entries ORDER BY seq")]
        db.execute("DELETE FROM nodes")
        db.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)",
                       perfect_nodes(leaves))
    _restore_triggers(db)
    return changed


def note(body: str, signers: list[tuple[str, Ed25519PrivateKey]]) -> str:
    """A C2SP signed note over `body`, written from the spec (key id: SHA-256(name, 0x0A, 0x01,
    public key)[:4])."""
    lines = []
    for name, key in signers:
        public = key.public_key().public_bytes_raw()
        kid = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
        signature = key.sign(body.encode())
        lines.append(f"\u2014 {name} {base64.b64encode(kid + signature).decode()}\n")
    return body + "\n" + "".join(lines)


def forge_history(ws: Path, change: Callable[[dict[str, object]], dict[str, object] | None],
                  signers: list[tuple[str, Ed25519PrivateKey]]) -> int:
    """Rewrite history as a holder of `signers`' keys would: apply `change`, then recompute
    every leaf, every stored node and every checkpoint (root re-derived, note re-signed by
    `signers` alone), and the `.checkpoint` guard. Returns the number of checkpoints forged."""
    db = _connect(ws)
    rows = db.execute("SELECT seq, raw FROM entries ORDER BY seq").fetchall()
    leaves: list[bytes] = []
    forged = 0
    last_note = ""
    for seq, raw in rows:
        entry = json.loads(bytes(raw))
        entry = change(entry) or entry
        if entry["type"] == "checkpoint.signed":
            data = entry["data"]
            size = int(data["size"])
            origin = data["note"].split("\n", 1)[0]
            tree_root = base64.b64encode(root(leaves[:size])).decode()
            body = f"{origin}\n{size}\n{tree_root}\n"
            data["root"], data["note"] = tree_root, note(body, signers)
            last_note = data["note"]
            forged += 1
        data_bytes = canonical(entry)
        leaves.append(leaf(data_bytes))
        db.execute("UPDATE entries SET raw = ?, leaf_hash = ? WHERE seq = ?",
                   (data_bytes, leaves[-1], seq))
    db.execute("DELETE FROM nodes")
    db.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", perfect_nodes(leaves))
    _restore_triggers(db)
    if last_note:
        (ws / ".checkpoint").write_text(last_note)
    return forged


# --- what a refusal leaves unchanged ---------------------------------------------------------


def _tree(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass(frozen=True)
class Evidence:
    rows: tuple[tuple[int, str], ...]
    tokens: dict[str, str]
    exports: dict[str, str]
    sealed: str
    flags: int | None

    @classmethod
    def of(cls, ws: Path, *, flags: bool = True) -> Evidence:
        with sqlite3.connect(f"file:{ws / 'ledger.sqlite'}?mode=ro", uri=True) as db:
            rows = tuple((int(s), str(t)) for s, t in
                         db.execute("SELECT seq, type FROM entries ORDER BY seq"))
        sealed = ws / "pin.sealed"
        return cls(rows, _tree(ws / "softhsm" / "tokens"), _tree(ws / "exports"),
                   hashlib.sha256(sealed.read_bytes()).hexdigest() if sealed.exists() else "",
                   token_pin_flags(ws) if flags else None)


ALLOWED_NEW = {"ceremony.unlock_failed"}
"""Entries a refusal may add: a failed unlock is recorded for the auditor, by design."""


def assert_refused(ws: Path, run: Callable[[], subprocess.CompletedProcess[str]], *,
                   contains: str, spy_log: Path | None = None, flags: bool | None = None) -> str:
    """`run` is refused with one line containing `contains`, and nothing the attack aimed at
    moved: no step recorded, no token object changed, no export written, no C_Login (read from
    the pass-through's log) and, when `flags` (by default: when there is no log), the token's
    PIN flags unchanged."""
    read_flags = spy_log is None if flags is None else flags
    made = logins(spy_log)
    before = Evidence.of(ws, flags=read_flags)
    line = assert_one_error(run(), (1, 2), contains)
    after = Evidence.of(ws, flags=read_flags)
    assert after.rows[: len(before.rows)] == before.rows, "the refusal rewrote the ledger"
    added = {t for _, t in after.rows[len(before.rows):]}
    assert added <= ALLOWED_NEW, f"the refusal recorded {added - ALLOWED_NEW}"
    assert after.tokens == before.tokens, "the token's objects changed"
    assert after.exports == before.exports, "an export was written"
    assert after.sealed == before.sealed, "pin.sealed changed"
    assert after.flags == before.flags, f"token PIN flags moved: {after.flags!r}"
    assert logins(spy_log) == made, "C_Login was made"
    return line


__all__ = ["REPO", "Evidence", "assert_refused", "build_spy", "canonical", "entries", "leaf",
           "logins", "perfect_nodes", "rewrite_entries", "root", "spy_lines",
           "token_pin_flags"]

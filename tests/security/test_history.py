"""Attacks on the ledger's history: one officer re-signing it, edited checkpointed entries,
checkpoints signed by unknown keys, rollback to an older copy (sealed-trust issue, items 4–6).

Every command that opens the workspace checks the leaf hashes since the last checkpoint, that
checkpoint's signatures and quorum, and the `.checkpoint` guard; `--expect-checkpoint` (or
CEREMONY_EXPECT_CHECKPOINT) brings the checkpoint an officer kept.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from console.quorum.cards import unlock_card
from tests.integration.ceremony_helpers import after
from tests.security.conftest import Target
from tests.security.support import (
    assert_refused,
    entries,
    forge_history,
    note,
    rewrite_entries,
)

pytestmark = pytest.mark.hsm

OPENING_COMMANDS = (("status",), ("officer", "list"), ("plan", "export-only"), ("reconcile",))


def _card_key(ws: Path, name: str) -> Ed25519PrivateKey:
    """The holder of one officer's card and passphrase (the demo's files)."""
    card = (ws / "demo-cards" / f"{name}.card").read_bytes()
    secret = (ws / "demo-cards" / f"{name}.pass").read_text().strip()
    return unlock_card(card, secret).ed25519_private


def _refused_everywhere(target: Target, contains: str, *extra: str) -> None:
    for command in OPENING_COMMANDS:
        args = (*command, *extra) if command[0] != "plan" else (*command, "--now",
                                                                  after(target.ws), *extra)
        assert_refused(target.ws, lambda a=args: target.cli(*a),  # type: ignore[misc]
                       contains=contains, spy_log=target.spy_log)


def test_one_officers_card_cannot_rewrite_who_the_officers_are(target: Target) -> None:
    """Carol's enrolled keys replaced by the intruder's, every hash recomputed and every
    checkpoint re-signed with alice's card alone: one signature is not a quorum."""
    intruder = Ed25519PrivateKey.generate()
    intruder_public = intruder.public_key().public_bytes_raw()

    def swap_carol(entry: dict[str, object]) -> dict[str, object] | None:
        data = entry["data"]
        if entry["type"] == "officer.enrolled" and isinstance(data, dict) \
                and data.get("name") == "carol":
            import base64
            data["ed25519"] = base64.urlsafe_b64encode(intruder_public).decode().rstrip("=")
            return entry
        return None

    forged = forge_history(target.ws, swap_carol, [("alice", _card_key(target.ws, "alice"))])
    assert forged >= 3
    _refused_everywhere(target, "checkpoint")
    assert target.logins() == 0


def test_two_cards_re_signing_an_unchanged_history_still_verifies(target: Target) -> None:
    """The control for the attack above: the same forger with a quorum of cards (alice and
    bob) and no change yields a ledger that opens, so the refusal above is the quorum rule."""
    keys = [(n, _card_key(target.ws, n)) for n in ("alice", "bob")]
    forge_history(target.ws, lambda e: None, keys)
    for command in OPENING_COMMANDS:
        target.ok(*command, *(("--now", after(target.ws)) if command[0] == "plan" else ()))


def test_a_checkpointed_entry_edited_in_place_is_refused_on_open(target: Target) -> None:
    """An early, checkpointed entry edited with its stored leaf hash left stale."""
    def rename_org(entry: dict[str, object]) -> dict[str, object] | None:
        if entry["type"] != "workspace.created":
            return None
        data = entry["data"]
        assert isinstance(data, dict)
        data["org"] = "evil"
        return entry

    rewrite_entries(target.ws, rename_org, rehash=False)
    _refused_everywhere(target, "leaf hash")


def test_a_checkpointed_entry_edited_with_the_tree_recomputed_is_refused_on_open(
        target: Target) -> None:
    """The same edit with every leaf and node recomputed but the checkpoints left alone: the
    signed root no longer matches."""
    def bump_state(entry: dict[str, object]) -> dict[str, object] | None:
        if entry["type"] != "key.state_changed":
            return None
        entry["time"] = "2026-01-01T00:00:00Z"
        return entry

    assert rewrite_entries(target.ws, bump_state, rehash=True)
    _refused_everywhere(target, "checkpoint")


def test_a_checkpoint_signed_by_unknown_keys_under_officer_names_is_refused(
        target: Target) -> None:
    strangers = [(n, Ed25519PrivateKey.generate()) for n in ("alice", "bob", "carol")]
    forged = forge_history(target.ws, lambda e: None, strangers)
    assert forged >= 3
    _refused_everywhere(target, "checkpoint")


def _copy_ledger(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file as the attacker keeps one (WAL included), put in
    place of the target with the target's own WAL files removed."""
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    dst.close()


def test_rollback_to_an_older_copy_is_caught_by_the_kept_checkpoint(target: Target,
                                                                    tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    _copy_ledger(target.ws / "ledger.sqlite", old / "ledger.sqlite")
    shutil.copy(target.ws / ".checkpoint", old / ".checkpoint")
    target.ok("run", "export-only", "--officer", "alice", "--officer", "bob",
              "--now", after(target.ws))
    kept = tmp_path / "alice-kept.checkpoint"
    shutil.copy(target.ws / ".checkpoint", kept)

    # The ledger alone rolled back: the .checkpoint guard beside it is newer.
    _copy_ledger(old / "ledger.sqlite", target.ws / "ledger.sqlite")
    assert_refused(target.ws, lambda: target.cli("status"), contains="checkpoint",
                   spy_log=target.spy_log)

    # Both rolled back: only the checkpoint an officer kept tells, by option or environment.
    shutil.copy(old / ".checkpoint", target.ws / ".checkpoint")
    target.ok("status")
    _refused_everywhere(target, "checkpoint", "--expect-checkpoint", str(kept))
    assert_refused(target.ws, lambda: target.cli("status", CEREMONY_EXPECT_CHECKPOINT=str(kept)),
                   contains="checkpoint", spy_log=target.spy_log)


def test_a_kept_checkpoint_from_another_workspace_or_garbled_is_refused(target: Target,
                                                                        tmp_path: Path) -> None:
    other = tmp_path / "other.checkpoint"
    other.write_text(note("acme/ceremony-ledger/00000000-0000-4000-8000-000000000000\n3\n"
                          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
                          [("alice", Ed25519PrivateKey.generate())]))
    garbled = tmp_path / "garbled.checkpoint"
    garbled.write_bytes(b"\xff\xfe not a note")
    for kept in (other, garbled, tmp_path / "missing.checkpoint"):
        assert_refused(target.ws, lambda k=kept: target.cli(  # type: ignore[misc]
            "status", "--expect-checkpoint", str(k)), contains="checkpoint",
            spy_log=target.spy_log)
    assert [e for e in entries(target.ws) if e["type"] == "checkpoint.signed"]


def test_a_deleted_checkpoint_guard_is_refused_not_recreated(target: Target) -> None:
    """Deleting `.checkpoint` (to make a rolled-back ledger look fresh) is refused by every
    opening command; the console never writes a new guard from the database alone."""
    (target.ws / ".checkpoint").unlink()
    _refused_everywhere(target, ".checkpoint")
    assert not (target.ws / ".checkpoint").exists()

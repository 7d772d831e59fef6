"""Attacks by an insider who can write the workspace's folders but not the officer's own files:
a symbolic link planted where the console is about to write a temporary file must never make
the console write through it (the transcript's hidden `.NAME.tmp` files, whose names follow
from the plan id and date the insider sees once a plan is made).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import after, assert_one_error
from tests.security.conftest import ApprovedPlan, Target

pytestmark = pytest.mark.hsm

APPROVERS = ("--officer", "alice", "--officer", "bob")
PRECIOUS = "the officer's own file, outside the workspace\n"


def test_a_link_planted_at_a_transcript_temporary_name_is_never_written_through(
        approved: tuple[Target, ApprovedPlan], tmp_path: Path) -> None:
    """Before, the transcript's `.STEM.md.tmp` was opened with O_CREAT|O_TRUNC, following a
    planted link: the officer's file (any file the console user may write: ~/.bashrc, the
    ledger itself) was truncated and replaced by the transcript, and the link renamed in place
    of the transcript."""
    target, plan = approved
    stem = f"{plan.now[:10]}-export-only-{plan.plan_id}"
    victims = {}
    for suffix in (".md", ".html", "-qr1.svg"):
        victim = tmp_path / f"victim{suffix}"
        victim.write_text(PRECIOUS, encoding="utf-8")
        (target.ws / "transcripts" / f".{stem}{suffix}.tmp").symlink_to(victim)
        victims[suffix] = victim
    target.cli("execute", plan.plan_id, *APPROVERS, "--now", plan.now)
    for victim in victims.values():
        assert victim.read_text(encoding="utf-8") == PRECIOUS
    for suffix in victims:
        written = target.ws / "transcripts" / f"{stem}{suffix}"
        assert not written.is_symlink()


def _planted(tmp: Path, victim: Path) -> None:
    victim.write_text(PRECIOUS, encoding="utf-8")
    tmp.symlink_to(victim)


def test_the_checkpoint_guard_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    """`.checkpoint`'s temporary name is `.checkpoint.<pid>.tmp`: an insider plants links for
    the coming pids; before, the guard's note was written into the link's target."""
    import os

    from console.ledger.checkpoint_file import write_checkpoint_file

    ws = tmp_path / "ws"
    ws.mkdir()
    victim = tmp_path / "victim"
    _planted(ws / f"..checkpoint.{os.getpid()}.tmp", victim)
    write_checkpoint_file(ws / ".checkpoint", "note\n")
    assert victim.read_text(encoding="utf-8") == PRECIOUS
    assert (ws / ".checkpoint").read_text(encoding="utf-8") == "note\n"
    assert not (ws / ".checkpoint").is_symlink()


def test_a_new_sealed_pin_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    """A PIN re-split writes `pin.sealed.next.tmp`, a fixed name; before, the new sealed PIN
    was written into the planted link's target and the link itself became pin.sealed."""
    from console.ceremony.steps.officers import _write_durably

    ws = tmp_path / "ws"
    ws.mkdir()
    victim = tmp_path / "victim"
    _planted(ws / "pin.sealed.next.tmp", victim)
    _write_durably(ws / "pin.sealed.next", b"sealed")
    assert victim.read_text(encoding="utf-8") == PRECIOUS
    assert (ws / "pin.sealed.next").read_bytes() == b"sealed"
    assert not (ws / "pin.sealed.next").is_symlink()


@pytest.mark.parametrize("lock", [".lock", "ledger.sqlite.lock"])
def test_a_lock_file_replaced_by_a_link_is_refused_and_never_written_through(
        target: Target, tmp_path: Path, lock: str) -> None:
    """Both lock files get the holder's pid written into them; before, a link in their place
    made every command write it into the link's target (`.lock` appended a line to it,
    `ledger.sqlite.lock` overwrote its first 21 bytes: an officer's file, or the ledger's
    SQLite header)."""
    victim = tmp_path / "victim"
    (target.ws / lock).unlink()
    _planted(target.ws / lock, victim)
    result = target.cli("plan", "export-only", "--now", after(target.ws))
    assert victim.read_text(encoding="utf-8") == PRECIOUS
    assert_one_error(result, 1, "is a symbolic link")

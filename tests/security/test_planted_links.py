"""Attacks by an insider who can write the workspace's folders but not the officer's own files:
a symbolic link planted where the console is about to write a temporary file must never make
the console write through it (the transcript's hidden `.NAME.tmp` files, whose names follow
from the plan id and date the insider sees once a plan is made).
"""

from __future__ import annotations

from pathlib import Path

import pytest

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

"""Officers at a terminal (issue 15): the CLI checks everything it can before a card is
unlocked, asks again after a wrong passphrase, says what to run after ctrl+c, and makes
rehearsals practise typing passphrases.

Every case runs the real CLI in a subprocess on a copy of a demo workspace (its own SoftHSM2
token); prompts are answered on a pseudo-terminal that is the command's controlling terminal.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import (
    PYTHON,
    _env,
    after,
    assert_one_error,
    cli,
    clone,
    ledger_entries,
    make_demo,
    ok,
    status,
)
from tests.pty_session import PtySession

pytestmark = pytest.mark.hsm


@dataclass(frozen=True)
class Base:
    demo: Path
    open_plan: Path
    """A copy with a quarterly-rotation plan approved by alice only."""
    plan_id: str
    now: str


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    root = tmp_path_factory.mktemp("room")
    demo = make_demo(root / "demo")
    opened = clone(demo, root / "open")
    now = after(opened, 91)
    plan = json.loads(ok(opened, "plan", "quarterly-rotation", "--now", now, "--json"))
    ok(opened, "approve", plan["plan_id"], "--officer", "alice", "--now", now)
    yield Base(demo, opened, plan["plan_id"], now)


def passphrase(ws: Path, name: str) -> bytes:
    return (ws / "demo-cards" / f"{name}.pass").read_text().strip().encode()


def on_terminal(ws: Path, *args: str) -> PtySession:
    """`ceremony ARGS` on a terminal, with no passphrase file: whatever is asked is typed."""
    return PtySession([PYTHON, "-m", "console", *args],
                      env=_env({"CEREMONY_WORKSPACE": str(ws)}), cwd=ws)


def finish(session: PtySession) -> tuple[int, str]:
    try:
        code = session.wait()
    finally:
        session.kill()
    return code, session.output.decode("utf-8", "replace")


def unlock_failures(ws: Path) -> list[dict[str, object]]:
    return [e["data"] for e in ledger_entries(ws) if e["type"] == "ceremony.unlock_failed"]


# --- 1. checks before cards; three tries ------------------------------------------------------


@pytest.mark.parametrize(("args", "refusal"), [
    (("approve", "deadbeef", "--officer", "alice"), "no plan 'deadbeef'"),
    (("approve", "PLAN", "--officer", "mallory"), "mallory is not an officer in force"),
    (("execute", "PLAN", "--officer", "alice", "--officer", "bob"), "approved by 1 of 2"),
    (("resume", "--officer", "alice"), "no interrupted ceremony"),
    (("resume", "--abort", "--officer", "carol"), "only an officer who approved"),
], ids=["no-such-plan", "not-an-officer", "one-approval", "nothing-to-resume",
        "abort-by-non-approver"])
def test_refusals_come_before_any_passphrase(base: Base, tmp_path: Path, args: tuple[str, ...],
                                            refusal: str) -> None:
    ws = clone(base.open_plan, tmp_path / "ws")
    words = tuple(base.plan_id if a == "PLAN" else a for a in args)
    code, output = finish(on_terminal(ws, *words, "--yes", "--now", base.now))
    assert code == 1, output
    assert refusal in output, output
    assert "passphrase" not in output, output
    assert unlock_failures(ws) == []


def test_resume_by_a_non_approver_is_refused_before_any_passphrase(base: Base,
                                                                  tmp_path: Path) -> None:
    ws = clone(base.open_plan, tmp_path / "ws")
    ok(ws, "approve", base.plan_id, "--officer", "bob", "--now", base.now)
    crashed = cli(ws, "execute", base.plan_id, "--officer", "alice", "--officer", "bob",
                  "--now", base.now, env={"CEREMONY_UNSAFE_CRASH_AT": "effect:4"})
    assert crashed.returncode == -9
    code, output = finish(on_terminal(ws, "resume", "--officer", "alice", "--officer", "carol",
                                      "--yes", "--now", base.now))
    assert code == 1 and "carol" in output and "passphrase" not in output, output
    assert unlock_failures(ws) == []


def test_a_wrong_passphrase_is_asked_again_and_recorded(base: Base, tmp_path: Path) -> None:
    ws = clone(base.open_plan, tmp_path / "ws")
    session = on_terminal(ws, "approve", base.plan_id, "--officer", "bob", "--yes",
                          "--now", base.now)
    try:
        for _ in range(2):
            session.read_until(b"passphrase for bob's card: ")
            assert not session.echo_on()
            session.send(b"not bob's passphrase\n")
            session.output = b""
        session.read_until(b"passphrase for bob's card: ")
        session.send(passphrase(ws, "bob") + b"\n")
    finally:
        code, output = finish(session)
    assert code == 0, output
    assert "bob signed plan" in output
    failures = unlock_failures(ws)
    assert [(f["officer"], f["attempt"], f["plan_id"]) for f in failures] == [
        ("bob", 1, base.plan_id), ("bob", 2, base.plan_id)]


def test_three_wrong_passphrases_end_the_command(base: Base, tmp_path: Path) -> None:
    ws = clone(base.open_plan, tmp_path / "ws")
    session = on_terminal(ws, "approve", base.plan_id, "--officer", "bob", "--yes",
                          "--now", base.now)
    try:
        for _ in range(3):
            session.read_until(b"passphrase for bob's card: ")
            session.send(b"not bob's passphrase\n")
            session.output = b""
    finally:
        code, output = finish(session)
    assert code == 1, output
    assert "not unlocked after 3 tries" in output
    assert [f["attempt"] for f in unlock_failures(ws)] == [1, 2, 3]
    assert not [e for e in ledger_entries(ws) if e["type"] == "ceremony.approved"
                and e["data"]["plan_id"] == base.plan_id and e["data"]["officer"] == "bob"]


# --- 2. ctrl+c says what to run next ---------------------------------------------------------


def interruption(output: str) -> list[str]:
    """The lines from `ceremony: interrupted` on, which must start a line of their own."""
    lines = output.replace("\r\n", "\n").split("\n")
    start = next(i for i, line in enumerate(lines) if "ceremony: interrupted" in line)
    assert lines[start].startswith("ceremony: interrupted — "), lines[start]
    return [line for line in lines[start:] if line]


def test_ctrl_c_at_a_passphrase_prompt_says_nothing_changed(base: Base, tmp_path: Path) -> None:
    ws = clone(base.open_plan, tmp_path / "ws")
    ok(ws, "approve", base.plan_id, "--officer", "bob", "--now", base.now)
    before = ledger_entries(ws)
    session = on_terminal(ws, "execute", base.plan_id, "--officer", "alice", "--officer", "bob",
                          "--yes", "--now", base.now)
    try:
        session.read_until(b"passphrase for alice's card: ")
        session.send(b"\x03")
    finally:
        code, output = finish(session)
    assert code == 130, output
    assert interruption(output)[0] == ("ceremony: interrupted — nothing was changed; run the "
                                       "command again when ready")
    assert ledger_entries(ws) == before


def test_ctrl_c_in_run_before_it_starts_closes_its_plan(base: Base, tmp_path: Path) -> None:
    ws = clone(base.demo, tmp_path / "ws")
    now = after(ws, 91)
    session = on_terminal(ws, "run", "quarterly-rotation", "--officer", "alice", "--officer",
                          "bob", "--yes", "--now", now)
    try:
        session.read_until(b"passphrase for alice's card: ")
        session.send(b"\x03")
    finally:
        code, output = finish(session)
    assert code == 130, output
    assert "no ceremony started" in interruption(output)[0]
    assert "closed unstarted" in interruption(output)[0]
    # The plan does not block the next one: running it again works, and says so once.
    again = cli(ws, "run", "quarterly-rotation", "--officer", "alice", "--officer", "bob",
                "--now", now)
    assert again.returncode == 0, again.stderr
    assert (again.stdout + again.stderr).count("completed") == 1, again.stdout + again.stderr


def test_ctrl_c_during_a_step_prints_the_resume_command_which_works(base: Base,
                                                                   tmp_path: Path) -> None:
    ws = clone(base.open_plan, tmp_path / "ws")
    ok(ws, "approve", base.plan_id, "--officer", "bob", "--now", base.now)
    result = cli(ws, "execute", base.plan_id, "--officer", "alice", "--officer", "bob",
                 "--now", base.now, env={"CEREMONY_UNSAFE_INTERRUPT_AT": "effect:4"})
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    lines = interruption(result.stderr)
    assert lines[0] == (f"ceremony: interrupted — ceremony {base.plan_id} "
                        "(quarterly-rotation) started and did not finish; continue it with:")
    command = shlex.split(lines[1])
    cards = ws / "demo-cards"
    assert command == ["ceremony", "resume", "--officer", "alice", "--passphrase-file",
                       f"alice={cards / 'alice.pass'}", "--officer", "bob",
                       "--passphrase-file", f"bob={cards / 'bob.pass'}", "--now", base.now]
    assert lines[2].startswith("or abort it with `ceremony resume --abort --officer alice")
    assert status(ws, base.now)["open_plans"][0]["state"] == "interrupted"
    out = cli(ws, *command[1:])
    assert out.returncode == 0, out.stderr
    assert f"ceremony {base.plan_id} completed" in out.stdout


# --- 6. rehearsals practise typing passphrases -----------------------------------------------


def test_a_rehearsal_asks_the_passphrase_and_never_reads_the_demo_file(base: Base,
                                                                        tmp_path: Path) -> None:
    ws = clone(base.open_plan, tmp_path / "ws")
    # Without a terminal, no passphrase can be asked: refused, naming the option.
    result = subprocess.run([PYTHON, "-m", "console", "approve", base.plan_id, "--officer",
                             "bob", "--yes", "--now", base.now], capture_output=True, text=True,
                            env=_env({"CEREMONY_WORKSPACE": str(ws)}), cwd=ws, timeout=120,
                            stdin=subprocess.DEVNULL, start_new_session=True, check=False)
    line = assert_one_error(result, 2, "--passphrase-file bob=FILE")
    assert "terminal" in line
    # At a terminal the demo card is used, but its passphrase is typed, without echo.
    (ws / "demo-cards" / "bob.pass").write_text("not what bob types\n")
    session = on_terminal(ws, "approve", base.plan_id, "--officer", "bob", "--yes",
                          "--now", base.now)
    try:
        session.read_until(b"passphrase for bob's card: ")
        assert not session.echo_on()
        session.send(passphrase(base.open_plan, "bob") + b"\n")
    finally:
        code, output = finish(session)
    assert code == 0 and "bob signed plan" in output, output
    assert unlock_failures(ws) == []


# --- 7. smaller items ------------------------------------------------------------------------


def test_a_weak_passphrase_is_refused_before_typing_it_twice(tmp_path: Path) -> None:
    card = tmp_path / "dave.card"
    session = PtySession([PYTHON, "-m", "console", "officer", "new-card", "dave", "--out",
                          str(card)], env=_env(), cwd=tmp_path)
    strong = b"copper lantern drifts over seven quiet hills"
    try:
        session.read_until(b"new passphrase for dave's card: ")
        session.send(b"password123\n")
        session.output = b""
        refused = session.read_until(b"new passphrase for dave's card: ")
        assert b"again: " not in refused, refused  # refused at once, then asked again
        assert b"try another" in refused
        session.send(strong + b"\n")
        session.read_until(b"again: ")
        session.send(strong + b"\n")
    finally:
        code, output = finish(session)
    assert code == 0, output
    assert card.is_file() and "fingerprint words" in output
    assert strong.decode() not in output and "password123" not in output


def test_a_wrong_card_fails_like_a_wrong_passphrase_and_names_nobody(base: Base,
                                                                       tmp_path: Path) -> None:
    cards = base.open_plan / "demo-cards"
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not bob's passphrase at all\n")
    lines = []
    for card, secret in ((cards / "bob.card", wrong),  # bob's card, a wrong passphrase
                         (cards / "carol.card", cards / "carol.pass")):  # carol's card
        ws = clone(base.open_plan, tmp_path / f"ws-{len(lines)}")
        result = cli(ws, "approve", base.plan_id, "--officer", "bob", "--card", f"bob={card}",
                     "--passphrase-file", f"bob={secret}", "--now", base.now)
        lines.append(assert_one_error(result, 1).replace(str(secret), "FILE"))
        assert [(f["officer"], f["reason"]) for f in unlock_failures(ws)] == [
            ("bob", "card not unlocked as this officer's card")]
    assert lines[0] == lines[1], lines
    assert "carol" not in lines[1]


def test_an_orphan_blocks_new_bundles_not_copies_of_signed_ones(base: Base,
                                                                tmp_path: Path) -> None:
    """README: while reconcile reports a finding no ceremony signs a new bundle; `ceremony
    export` copies the latest bundle already signed (and verified), which it does not affect."""
    ws = clone(base.demo, tmp_path / "ws")
    now = after(ws, 91)
    officers = ("--officer", "alice", "--officer", "bob")
    crashed = cli(ws, "run", "quarterly-rotation", *officers, "--now", now,
                  env={"CEREMONY_UNSAFE_CRASH_AT": "effect:2"})
    assert crashed.returncode == -9
    ok(ws, "resume", "--abort", "--officer", "alice", "--now", now)
    found = cli(ws, "reconcile")
    assert found.returncode == 1 and "orphan" in found.stdout, found.stdout
    bundles = sorted((ws / "exports" / "demo-api").iterdir())
    line = assert_one_error(cli(ws, "run", "export-only", *officers, "--now", now), 1)
    assert "disagree" in line and "ceremony reconcile" in line
    assert sorted((ws / "exports" / "demo-api").iterdir()) == bundles
    copied = ok(ws, "export", "--keyset", "demo-api", "--out", str(tmp_path / "out")).strip()
    assert Path(copied).name == bundles[-1].name


# --- 4. what changed -------------------------------------------------------------------------


def test_verify_previous_lists_kids_added_and_removed_and_the_transcript_has_the_words(
        base: Base, tmp_path: Path) -> None:
    ws = clone(base.demo, tmp_path / "ws")
    now = after(ws, 91)
    planned = json.loads(ok(ws, "plan", "quarterly-rotation", "--now", now, "--json"))
    for officer in ("alice", "bob"):
        ok(ws, "approve", planned["plan_id"], "--officer", officer, "--now", now)
    ok(ws, "execute", planned["plan_id"], "--officer", "alice", "--officer", "bob",
       "--now", now)
    exports = sorted((ws / "exports" / "demo-api").iterdir(), key=lambda p: int(p.name))
    old, new = (json.loads((e / "jwks.json").read_text())["keys"] for e in exports[-2:])
    added = {k["kid"] for k in new} - {k["kid"] for k in old}
    removed = {k["kid"] for k in old} - {k["kid"] for k in new}
    assert added and removed
    out = ok(None, "verify", "bundle", str(exports[-1] / "jwks.jwt"), "--trust",
             str(ws / "exports" / "bundle-signing-key.jwk"), "--previous",
             str(exports[-2] / "jwks.jwt"), "--now", now)
    listed = {line.split()[1]: line.split()[0] for line in out.splitlines()
              if line.startswith("  added") or line.startswith("  removed")}
    assert listed == {**dict.fromkeys(added, "added"), **dict.fromkeys(removed, "removed")}
    words = " ".join(planned["words"])
    transcript = next((ws / "transcripts").glob(f"*{planned['plan_id']}.md")).read_text()
    assert f"Digest words (read aloud at approval): {words}" in transcript

"""Terminal safety: hostile user text is stored as data and shown inert (issue "Year in rehearsal").

A real demo workspace (SoftHSM2 token inside it, made by `ceremony demo --headless` in a
subprocess) runs a ceremony script whose `note` step holds newlines, CR, ANSI escapes, NUL, bidi
overrides and isolates, Rich markup and a line that mimics a signed-note signature. Then:
(1) the ledger stores the text JCS-escaped, the tree and the audit pack still verify, and no
checkpoint note carries any of it; (2) `status`, `officer list`, `transcript` and the transcript
files hold no raw control or bidi character; (3) hostile officer names are refused with one line;
(4) the TUI's ledger entry dialog shows the text inert (markup shown literally).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.ledger import Ledger, parse_checkpoint_body, parse_entry
from console.ledger.checkpoint import parse_note

pytestmark = pytest.mark.hsm

REPO = Path(__file__).resolve().parents[2]
SIGNATURE_MIMIC = "\n\u2014 alice " + "A" * 86 + "=\n"
HOSTILE = ("line1\nline2\r\x1b[2J\x1b[31mRED\x00NUL\u202eRTL\u2066iso[bold]x[/bold]"
           + SIGNATURE_MIMIC)
RAW_FORBIDDEN = ("\x1b", "\x00", "\r", "\u202e", "\u2066", "\u2067", "\u2068", "\u202d")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SOFTHSM2_CONF", None)  # the child reads the demo workspace's own config
    env.pop("CEREMONY_WORKSPACE", None)
    env["PYTHONPATH"] = str(REPO)
    return env


def ceremony(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "console", *args], capture_output=True,
                         text=True, timeout=120, env=_env(), cwd=REPO)
    if check:
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


def _toml_string(text: str) -> str:
    return '"' + "".join(f"\\u{ord(c):04X}" if c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F
                         else c for c in text) + '"'


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("hostile") / "ws"
    ceremony("demo", "--workspace", str(root), "--headless")
    (root / "ceremonies").mkdir()
    script = root / "ceremonies" / "hostile-note.toml"
    script.write_text(
        '[script]\nname = "hostile-note"\nclass = "routine"\n'
        f"description = {_toml_string('desc' + chr(0x1b) + '[2J')}\n\n"
        '[[steps]]\naction = "reconcile"\n\n'
        f'[[steps]]\naction = "note"\ntext = {_toml_string(HOSTILE)}\n\n'
        '[[steps]]\naction = "export_audit"\n\n[[steps]]\naction = "checkpoint"\n',
        encoding="utf-8",
    )
    cards = root / "demo-cards"
    officers = [a for name in ("alice", "bob", "carol") for a in (
        "--officer", name, "--card", f"{name}={cards / (name + '.card')}",
        "--passphrase-file", f"{name}={cards / (name + '.pass')}")]
    # A workspace script is used only once a config-change has recorded it (the quorum saw it).
    ceremony("run", "config-change", "--workspace", str(root), "--yes", *officers)
    out = ceremony("run", "hostile-note", "--workspace", str(root), "--yes", *officers[:12])
    for ch in RAW_FORBIDDEN:
        assert ch not in out.stdout + out.stderr, repr(ch)
    found = re.search(r"ceremony ([0-9a-f]+) completed", out.stdout + out.stderr)
    assert found, out.stdout + out.stderr
    plan_id = found.group(1)
    yield root, plan_id


def _entries(root: Path) -> list[bytes]:
    ledger = Ledger.open(root / "ledger.sqlite", checkpoint_file=root / ".checkpoint")
    try:
        return [e.raw for e in ledger.entries()]
    finally:
        ledger.close()


def test_stored_as_data(workspace: tuple[Path, str]) -> None:
    root, _plan_id = workspace
    raws = _entries(root)
    holding = [parse_entry(r) for r in raws if b"line1" in r]
    assert holding, "the note text is not in the ledger"
    for entry in holding:
        assert not any(b < 0x20 for b in entry.raw)  # JCS escapes every control character
        texts = [v for v in json.loads(entry.raw)["data"].values() if v == HOSTILE]
        assert texts or entry.type == "ceremony.planned", entry.type  # exact round trip
    # No checkpoint note carries the text (or any control character but newline).
    notes = [parse_entry(r).data["note"] for r in raws if b'"checkpoint.signed"' in r]
    assert notes
    for note in notes:
        # Origin, size and root only: no extension line carries user text.
        assert parse_checkpoint_body(parse_note(note)[0]).extensions == ()
        assert not any(ch in note for ch in RAW_FORBIDDEN)
    checkpoint = (root / ".checkpoint").read_text(encoding="utf-8")
    assert "line1" not in checkpoint and not any(ch in checkpoint for ch in RAW_FORBIDDEN)


def test_audit_pack_verifies(workspace: tuple[Path, str]) -> None:
    root, _ = workspace
    packs = sorted((root / "exports" / "audit").iterdir())
    out = ceremony("verify", "audit", str(packs[-1]))
    assert out.returncode == 0
    fresh = root.parent / "pack-after"
    ceremony("audit", "export", "--workspace", str(root), "--out", str(fresh))
    ceremony("verify", "audit", str(fresh), "--expect-checkpoint", str(root / ".checkpoint"))
    assert b"line1" in (fresh / "entries.jsonl").read_bytes() + (
        fresh / "pending.jsonl").read_bytes()


@pytest.mark.parametrize("command", [
    ("status",), ("status", "--json"), ("officer", "list"), ("officer", "list", "--json"),
    ("transcript", "PLAN"),
])
def test_cli_output_is_inert(workspace: tuple[Path, str], command: tuple[str, ...]) -> None:
    root, plan_id = workspace
    args = [plan_id if a == "PLAN" else a for a in command]
    out = ceremony(*args, "--workspace", str(root))
    for ch in RAW_FORBIDDEN:
        assert ch not in out.stdout and ch not in out.stderr, (command, repr(ch))


def test_transcript_files_are_inert(workspace: tuple[Path, str]) -> None:
    root, plan_id = workspace
    files = [p for p in (root / "transcripts").iterdir()
             if plan_id in p.name and p.suffix in (".md", ".html")]
    assert {p.suffix for p in files} >= {".md"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "line1" in text, path.name  # the note is there, as data
        for ch in RAW_FORBIDDEN:
            assert ch not in text, (path.name, repr(ch))
        # The signature mimic never starts a line of its own.
        assert not any(line.startswith("\u2014 alice AAAA") for line in text.splitlines())


HOSTILE_NAMES = ["a\nb", "a\rb", "\x1b[2Jx", "a\x00b", "a\u202eb", "a\u2066b", "\u2014 alice",
                 "[bold]x[/bold]", "", "x" * 65]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_officer_names_refused(workspace: tuple[Path, str], name: str) -> None:
    _refused(workspace, name)


def test_long_officer_name_refused_briefly(workspace: tuple[Path, str]) -> None:
    # 100 kB: one argv word cannot exceed 128 kB on Linux, so 1 MB is checked in the library.
    _refused(workspace, "x" * 100_000)


def _refused(workspace: tuple[Path, str], name: str) -> None:
    root, _ = workspace
    pass_file = root.parent / "new.pass"
    pass_file.write_text("a long enough passphrase for the new card 42\n")
    out_file = root.parent / "new.card"
    if "\x00" in name:  # argv cannot carry NUL: check the library's refusal instead
        from console.errors import ConsoleError
        from console.quorum.cards import check_officer_name

        with pytest.raises(ConsoleError):
            check_officer_name(name)
        return
    out = ceremony("officer", "new-card", name, "--out", str(out_file), "--passphrase-file",
                   str(pass_file), "--workspace", str(root), check=False)
    assert out.returncode in (1, 2), out.stdout
    assert not out_file.exists()
    lines = out.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("ceremony: error:"), out.stderr[:300]
    assert len(lines[0]) < 2000
    for ch in RAW_FORBIDDEN:
        assert ch not in out.stderr, repr(ch)


async def test_tui_entry_dialog_is_inert(workspace: tuple[Path, str]) -> None:
    from textual.app import App
    from textual.widgets import Static

    from console.tui.dialogs.entry import EntryDialog

    root, _ = workspace
    raws = _entries(root)
    seq, raw = next((i, r) for i, r in enumerate(raws) if b"line1" in r)

    class _Host(App[None]):
        pass

    app = _Host()
    async with app.run_test(size=(160, 60)) as pilot:
        await app.push_screen(EntryDialog(seq, raw, b"\x00" * 32, len(raws), b"\x00" * 32, []))
        await pilot.pause()
        body = app.screen.query_one("#entry-body", Static)
        shown = str(body.render())
        assert "[bold]x[/bold]" in shown  # markup shown literally, not interpreted
        assert "line1" in shown
        for ch in RAW_FORBIDDEN:
            assert ch not in shown, repr(ch)

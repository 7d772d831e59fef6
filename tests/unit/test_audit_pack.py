"""Audit pack: export, offline verification, sha256sum -c, and import hygiene of the verifier."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.ceremony.actions import EnrollOfficer, RevokeOfficer
from console.errors import ExportError, LedgerTamperedError
from console.ledger import Ledger, export_audit_pack, verify_audit_pack
from tests.unit.test_ledger_support import (
    ORIGIN,
    T0,
    authorize,
    checkpoint_now,
    enrol_data,
    fill,
    new_ledger,
)

DAVE = {**enrol_data("mallory"), "name": "dave"}
"""An officer the second ceremony's plan may enrol (see
`test_officers_json_lists_only_officers_in_force`)."""


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A routine ceremony (c-1: 4 entries), 40 of its entries, a checkpoint (entry 49); a
    destructive ceremony (c-2: 5 entries) that revokes carol (and may enrol dave), 25 more
    entries of c-1, a checkpoint (entry 81), 3 entries of c-1 (pending)."""
    led = new_ledger(tmp_path)
    authorize(led)
    fill(led, 40)
    checkpoint_now(led, "alice", "bob")
    authorize(led, "c-2", approvers=("alice", "bob", "carol"), ceremony_class="destructive",
              actions=[RevokeOfficer(1, "revoke carol", "carol"),
                       EnrollOfficer(2, "enrol dave", "dave", DAVE["ed25519"], DAVE["x25519"])])
    led.append("officer.revoked", {"name": "carol", "reason": "left"}, time=T0, actor="console",
               ceremony="c-2")
    fill(led, 25)
    checkpoint_now(led, "alice", "bob")
    fill(led, 3)
    yield led
    led.close()


def test_export_then_verify(ledger: Ledger, tmp_path: Path) -> None:
    pack = export_audit_pack(ledger, tmp_path / "pack")
    report = verify_audit_pack(pack)
    covered = ledger.checkpoint_entries()[-1].seq
    assert report.origin == ORIGIN and report.size == covered
    assert report.root == ledger.root(covered)
    assert report.pending == ledger.size - covered == 4
    assert report.signers == {"alice", "bob"} and report.earlier_checkpoints == (49,)
    assert report.officers == ("alice", "bob", "carol")
    assert len((pack / "entries.jsonl").read_bytes().splitlines()) == covered
    officers = json.loads((pack / "officers.json").read_text())["officers"]
    assert [(o["name"], o["status"]) for o in officers] == [
        ("alice", "enrolled"),
        ("bob", "enrolled"),
        ("carol", "revoked"),
    ]
    assert officers[0]["ed25519"]["kty"] == "OKP" and officers[0]["verifier_key"].startswith(
        "alice+"
    )
    out = subprocess.run(
        ["sha256sum", "-c", "--strict", "MANIFEST.sha256"], cwd=pack, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (pack / "proofs" / f"consistency-49-{covered}.txt").is_file()


def test_export_never_overwrites(ledger: Ledger, tmp_path: Path) -> None:
    (tmp_path / "pack").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export_audit_pack(ledger, tmp_path / "pack")


def test_officers_json_lists_only_officers_in_force(ledger: Ledger, tmp_path: Path) -> None:
    """An enrolment no checkpoint covers yet is not in officers.json (it is not in force)."""
    ledger.append("officer.enrolled", DAVE, time=T0, actor="console", ceremony="c-2")
    pack = export_audit_pack(ledger, tmp_path / "pack")
    names = [o["name"] for o in json.loads((pack / "officers.json").read_text())["officers"]]
    assert names == ["alice", "bob", "carol"]
    assert verify_audit_pack(pack).officers == ("alice", "bob", "carol")


def test_expect_checkpoint(ledger: Ledger, tmp_path: Path) -> None:
    first = ledger.checkpoint_entries()[0].data["note"]
    pack = export_audit_pack(ledger, tmp_path / "pack")
    assert verify_audit_pack(pack, expect_checkpoint=first).expected_checkpoint_size == 49
    other = tmp_path / "other"
    other.mkdir()
    foreign = new_ledger(other)
    fill(foreign, 50, minutes=5)
    rewritten = checkpoint_now(foreign, "alice", "bob", minutes=5)
    fill(foreign, 100, minutes=5)
    newer = checkpoint_now(foreign, "alice", "bob", minutes=5)
    foreign.close()
    with pytest.raises(LedgerTamperedError, match="rewritten"):
        verify_audit_pack(pack, expect_checkpoint=rewritten)
    with pytest.raises(LedgerTamperedError, match="older ledger"):
        verify_audit_pack(pack, expect_checkpoint=newer)


def test_first_bad_line_is_named(ledger: Ledger, tmp_path: Path) -> None:
    pack = export_audit_pack(ledger, tmp_path / "pack")
    lines = (pack / "entries.jsonl").read_bytes().splitlines(keepends=True)
    lines[17] = lines[17].replace(b'"n":', b'"n" :')
    (pack / "entries.jsonl").write_bytes(b"".join(lines))
    with pytest.raises(LedgerTamperedError, match=r"entries.jsonl line 18 \(seq 17\)"):
        verify_audit_pack(pack)


def test_edited_officers_json_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    pack = export_audit_pack(ledger, tmp_path / "pack")
    text = (pack / "officers.json").read_text().replace('"revoked"', '"active"')
    (pack / "officers.json").write_text(text)
    with pytest.raises(LedgerTamperedError, match=r"officers\.json"):
        verify_audit_pack(pack)


def test_extra_file_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    pack = export_audit_pack(ledger, tmp_path / "pack")
    shutil.copy(pack / "checkpoint", pack / "proofs" / "notes.txt")
    with pytest.raises(LedgerTamperedError, match=r"notes\.txt"):
        verify_audit_pack(pack)


@pytest.mark.parametrize("field", ["size", "root"])
def test_edited_checkpoint_record_in_pending_is_refused(
    ledger: Ledger, tmp_path: Path, field: str
) -> None:
    """The first pending line records the pack's checkpoint: its size and root are checked too,
    even when the editor re-canonicalises the line and re-hashes the manifest."""
    import hashlib

    from console.jcs import canonicalize

    pack = export_audit_pack(ledger, tmp_path / "pack")
    lines = (pack / "pending.jsonl").read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[0])
    entry["data"][field] = 1 if field == "size" else "AAAA" + entry["data"]["root"][4:]
    lines[0] = canonicalize(entry) + b"\n"
    (pack / "pending.jsonl").write_bytes(b"".join(lines))
    manifest = "".join(
        f"{hashlib.sha256((pack / name).read_bytes()).hexdigest()}  {name}\n"
        for name in sorted(line.split("  ", 1)[1].strip()
                           for line in (pack / "MANIFEST.sha256").read_text().splitlines())
    )
    (pack / "MANIFEST.sha256").write_text(manifest)
    with pytest.raises(LedgerTamperedError, match=r"pending\.jsonl line 1"):
        verify_audit_pack(pack)


def test_verifier_imports_no_sqlite_tooling_hsm_or_ui() -> None:
    code = (
        "import sys, console.ledger.pack, console.ledger as L; L.verify_audit_pack;"
        "bad = [m for m in ('sqlite_utils', 'sqlite3', 'console.hsm', 'pkcs11', 'textual', 'rich')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_revoked_name_or_key_is_never_enrolled_again(tmp_path: Path) -> None:
    """The ledger's officer replay follows the quorum registry's rules: one enrolment per name,
    one per key; so the checkpoint signer set cannot be widened by re-enrolling."""
    from console.errors import VerificationError
    from tests.unit.test_ledger_support import enrol_data

    led = new_ledger(tmp_path)
    led.append("officer.revoked", {"name": "carol", "reason": "left"}, time=T0, actor="alice")
    with pytest.raises(VerificationError, match="enrolled twice"):
        led.append("officer.enrolled", enrol_data("carol"), time=T0, actor="alice")
    with pytest.raises(VerificationError, match="reuses a key"):
        led.append("officer.enrolled", {**enrol_data("carol"), "name": "carol2"}, time=T0,
                   actor="alice")
    led.close()

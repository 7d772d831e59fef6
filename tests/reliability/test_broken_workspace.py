"""Read-only and missing pieces: a read-only workspace, a missing `softhsm/` folder, a missing
or truncated `pin.sealed`, a ledger replaced by an empty file.

A workspace with an approved quarterly rotation is broken one way at a time; then the commands
an operator would try (status, reconcile, plan, execute, resume, audit export) each either work
(reading needs nothing that is broken) or give exactly one `ceremony: error:` line, never a
traceback; the commands that need the broken piece must refuse; and nothing in the workspace
is written (every file's SHA-256 before and after; the two lock records, which name the last
process that held a lock, are left out). After the piece is restored, the plan executes.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import (
    PYTHON,
    REPO,
    _env,
    clone,
    demo_officer_args,
    ledger_entries,
    make_demo,
)
from tests.reliability.fault_kit import Figures, ForkServer, Prepared, Run, prepare
from tests.reliability.test_environment import _probe_read_only

pytestmark = [pytest.mark.hsm, pytest.mark.slow]

LOCK_RECORDS = {".lock", "ledger.sqlite.lock"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prepared, ForkServer]]:
    base = tmp_path_factory.mktemp("broken")
    prepared = prepare("rotation", base / "prepared", make_demo(base / "demo"))
    with ForkServer(base / "scratch") as server:
        yield prepared, server


def _tree(root: Path) -> dict[str, str]:
    """Every file's SHA-256, the ledger as what it holds: SQLite may fold its WAL into the
    database file when a reader closes it, which changes bytes and no entry."""
    tree = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in LOCK_RECORDS
            and not p.name.startswith("ledger.sqlite")}
    ledger = root / "ledger.sqlite"
    if ledger.is_file() and ledger.stat().st_size:
        entries = json.dumps(ledger_entries(root), sort_keys=True).encode()
        tree["ledger.sqlite (entries)"] = hashlib.sha256(entries).hexdigest()
    elif ledger.exists():
        tree["ledger.sqlite (bytes)"] = hashlib.sha256(ledger.read_bytes()).hexdigest()
        tree["ledger.sqlite-*"] = ",".join(sorted(p.name for p in root.glob("ledger.sqlite-*")))
    return tree


def _commands(prepared: Prepared, outside: Path) -> dict[str, tuple[str, ...]]:
    return {
        "status": ("status",),
        "reconcile": ("reconcile",),
        "plan": ("plan", "export-only", "--now", prepared.now),
        "execute": prepared.execute_args(),
        "resume": prepared.resume_args(),
        "audit export": ("audit", "export", "--out", str(outside / "pack")),
    }


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BREAKS: dict[str, tuple[Callable[[Path], None], set[str]]] = {
    # how to break the workspace, and the commands that must refuse
    "missing softhsm/": (lambda ws: shutil.rmtree(ws / "softhsm"), {"execute", "reconcile"}),
    "missing pin.sealed": (lambda ws: (ws / "pin.sealed").unlink(), {"execute", "plan"}),
    "truncated pin.sealed": (lambda ws: _truncate(ws / "pin.sealed"), {"execute", "plan"}),
    "empty ledger": (lambda ws: [(ws / n).unlink(missing_ok=True) for n in (
        "ledger.sqlite-wal", "ledger.sqlite-shm")] and (ws / "ledger.sqlite").write_bytes(b""),
        {"status", "reconcile", "plan", "execute", "resume", "audit export"}),
}


def _check(run: Run | subprocess.CompletedProcess[str], what: str) -> str | None:
    stderr = run.stderr
    code = run.code if isinstance(run, Run) else run.returncode
    assert "Traceback" not in stderr, f"{what}: {stderr[-3000:]}"
    errors = [line for line in stderr.splitlines() if line.startswith("ceremony: error:")]
    if code == 0:
        assert not errors, f"{what}: {stderr}"
        return None
    assert code == 1 and len(errors) == 1, f"{what}: exit {code}\n{stderr[-3000:]}"
    return errors[0]


@pytest.mark.parametrize("broken", list(BREAKS))
def test_missing_and_damaged_pieces(setup: tuple[Prepared, ForkServer], broken: str,
                                    tmp_path: Path) -> None:
    prepared, server = setup
    ws = clone(prepared.root, tmp_path / "ws")
    saved = tmp_path / "saved"
    shutil.copytree(ws, saved, symlinks=True)
    breaker, must_refuse = BREAKS[broken]
    breaker(ws)
    before = _tree(ws)
    figures = Figures(f"workspace with {broken}")
    lines = []
    for name, args in _commands(prepared, tmp_path).items():
        line = _check(server.run(ws, *args), f"{broken}: {name}")
        figures.add("refused with one line" if line else "worked")
        if name in must_refuse:
            assert line is not None, f"{broken}: `{name}` did not refuse"
        if line:
            lines.append(f"{name}: {line}")
        assert _tree(ws) == before, f"{broken}: `{name}` wrote in the workspace"
    print("\n" + "\n".join(lines))
    figures.report()
    # The piece comes back: the ceremony runs.
    shutil.rmtree(ws)
    shutil.copytree(saved, ws, symlinks=True)
    server.ok(ws, *prepared.execute_args())


def test_read_only_workspace(setup: tuple[Prepared, ForkServer], tmp_path: Path) -> None:
    prepared, _ = setup
    method = _probe_read_only()
    if method.startswith("skip"):
        pytest.skip(method)
    ws = clone(prepared.root, tmp_path / "ws")
    before = _tree(ws)
    figures = Figures("read-only workspace")
    for name, args in _commands(prepared, tmp_path).items():
        result = _run_read_only(ws, args, method)
        line = _check(result, f"read-only: {name}")
        figures.add("refused with one line" if line else "worked")
        if name in ("plan", "execute", "resume"):
            assert line is not None, f"read-only: `{name}` did not refuse"
        assert _tree(ws) == before, f"read-only: `{name}` wrote in the workspace"
        print(f"\n{name}: {line or 'worked'}")
    figures.report()


def _run_read_only(ws: Path, args: tuple[str, ...],
                   method: str) -> subprocess.CompletedProcess[str]:
    argv = [PYTHON, "-m", "console", *demo_officer_args(ws, args)]
    env = _env({"CEREMONY_WORKSPACE": str(ws)})
    if method == "mount":
        q = shlex.quote(str(ws))
        script = f"mount --bind {q} {q} && mount -o remount,bind,ro {q} || exit 97\nexec \"$@\""
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO,
                              timeout=120, check=False)
    flag = "+i" if method == "chattr" else None
    if flag:
        subprocess.run(["chattr", "-R", "+i", str(ws)], check=True)
    else:
        subprocess.run(["chmod", "-R", "a-w", str(ws)], check=True)
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO,
                              timeout=120, check=False)
    finally:
        if flag:
            subprocess.run(["chattr", "-R", "-i", str(ws)], check=True)
        else:
            subprocess.run(["chmod", "-R", "u+w", str(ws)], check=True)

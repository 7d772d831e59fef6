"""Failing writes: ENOSPC and EIO at the console's write, fsync, rename, link, mkdir and file
creation points, during a quarterly rotation, an officer change (pin.sealed), `ceremony export
--out` and `ceremony audit export`.

The LD_PRELOAD shim (`faultshim.c`, compiled here; skipped with the reason when there is no C
compiler) first lists every point an uninterrupted run makes under the workspace (or the
--out folder); then one run per chosen point makes that call fail: ENOSPC "sticky" (the disk
stays full: every later point fails too) or EIO once (a failing sector). The points are grouped
by call and file (ledger WAL writes, its fsyncs, the export's staged files, its rename, the
`.checkpoint` file, transcripts, SoftHSM2's token files…); by default the first and last point
of each group get ENOSPC and EIO each, `CEREMONY_FAULT_POINTS=all` (make soak) takes every point.

Each fault must give exactly one `ceremony: error:` line (no traceback) naming a file (a path
the command writes) and what to do (the disk hint), or succeed when the call was one nobody
needs (SQLite's checkpoint on close); nothing half-written may be visible (export folders pass
their manifest, transcripts are whole, `.checkpoint` and `pin.sealed` parse) and nothing
committed may be lost. Then the fault is removed and the operator's recovery (`resume`, or
`execute`/`transcript`/the export again) completes, with every check of
`fault_kit.after_recovery` (verify audit, integrity_check, no key twice, ledger and token agree,
the same result as an uninterrupted run, re-runs change nothing).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import clone, ledger_entries, make_demo, sha256_tree
from tests.reliability.fault_kit import (
    EIO,
    ENOSPC,
    ERRNO_NAMES,
    Figures,
    ForkServer,
    Point,
    Prepared,
    after_recovery,
    build_shim,
    commits_lost,
    fault_env,
    measure,
    pick_points,
    prepare,
    read_points,
    recover,
    step_done_reported,
    torn_files,
)

pytestmark = [pytest.mark.hsm, pytest.mark.slow]

EVERY = os.environ.get("CEREMONY_FAULT_POINTS") == "all"


@dataclass
class Setup:
    shim: Path
    server: ForkServer
    prepared: dict[str, Prepared]
    completed: Path  # a workspace after the rotation, for the exports
    base: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("writes")
    shim, why = build_shim(base / "shim")
    if shim is None:
        pytest.skip(why)
    demo = make_demo(base / "demo")
    with ForkServer(base / "scratch", shim) as server:
        prepared = {}
        for kind in ("rotation", "officer-change"):
            prepared[kind] = prepare(kind, base / "prepared", demo)
            measure(server, prepared[kind], base / "scratch", shim=True)
        completed = clone(prepared["rotation"].root, base / "completed")
        server.ok(completed, *prepared["rotation"].execute_args())
        yield Setup(shim, server, prepared, completed, base)


def _cases(points: list[Point]) -> list[tuple[Point, int, bool]]:
    """(point, errno, sticky): by default ENOSPC that stays at the first point of each group
    and EIO once at its last (both at a group's only point); every point gets both with
    CEREMONY_FAULT_POINTS=all. SoftHSM2's own token files are its business (a write it is
    refused is an HsmError from the token, not a file of the console's)."""
    groups: dict[str, list[Point]] = {}
    for point in pick_points(points, every=True, skip_token=True):
        groups.setdefault(point.group, []).append(point)
    cases: list[tuple[Point, int, bool]] = []
    for members in groups.values():
        if EVERY or len(members) == 1:
            cases += [(p, e, e == ENOSPC) for p in members for e in (ENOSPC, EIO)]
        else:
            cases += [(members[0], ENOSPC, True), (members[-1], EIO, False)]
    return sorted(cases, key=lambda c: (c[0].n, c[1]))


def _one_clean_line(code: int, stderr: str, where: str) -> str | None:
    """The fault's report: None when the command succeeded, else its one error line, which
    must name a path and say what to do."""
    assert "Traceback" not in stderr, f"{where}: {stderr[-3000:]}"
    if code == 0:
        return None
    errors = [line for line in stderr.splitlines() if line.startswith("ceremony: error:")]
    assert code == 1 and len(errors) == 1, f"{where}: exit {code}\n{stderr[-3000:]}"
    line = errors[0]
    assert "/" in line, f"{where}: names no file: {line}"
    assert "free space" in line or "repair" in line or "disk" in line, f"{where}: {line}"
    return line


@pytest.mark.parametrize("kind", ["rotation", "officer-change"])
def test_failing_writes_during_a_ceremony(setup: Setup, kind: str, tmp_path: Path) -> None:
    prepared = setup.prepared[kind]
    server = setup.server
    cases = _cases(prepared.points)
    figures = Figures(f"failing writes during {kind} ({len(prepared.points)} points, "
                      f"{len({p.group for p in prepared.points})} groups)")
    ws = tmp_path / "ws"
    for point, errno, sticky in cases:
        where = f"{ERRNO_NAMES[errno]}{' (stays)' if sticky else ''} at {point.n} " \
                f"{point.kind} {point.path}"
        if ws.exists():
            shutil.rmtree(ws)
        clone(prepared.root, ws)
        before = ledger_entries(ws)
        run = server.run(ws, *prepared.execute_args(),
                         env=fault_env(ws, point.n, errno=errno, sticky=sticky))
        figures.add("faults injected")
        figures.add("hangs", int(run.hung))
        line = _one_clean_line(run.code, run.stderr, where)
        figures.add("one error line" if line else "succeeded anyway")
        torn = torn_files(ws)
        lost = commits_lost(ws, prepared, before, step_done_reported(run.stderr))
        figures.add("torn exports", len(torn))
        figures.add("commits lost", len(lost))
        assert not torn, (where, torn)
        assert not lost, (where, lost)
        # The disk is repaired: the operator's recovery completes.
        recover(server, ws, prepared)
        outcome = after_recovery(server, ws, prepared, tmp_path / "pack")
        figures.add("keys twice", len(outcome.keys_twice))
        assert not outcome.keys_twice and not outcome.torn, (where, outcome)
    figures.report()
    assert figures.counts["faults injected"] == len(cases)


def _export_points(setup: Setup, args: tuple[str, ...], out: Path, log: Path) -> list[Point]:
    run = setup.server.run(setup.completed, *args, env=fault_env(out, None, log=log))
    assert run.code == 0, run.stderr
    shutil.rmtree(out)
    return read_points(log, out)


@pytest.mark.parametrize("command", ["export", "audit export"])
def test_failing_writes_during_an_export(setup: Setup, command: str, tmp_path: Path) -> None:
    """`ceremony export --keyset demo-api --out DIR` and `ceremony audit export --out DIR` on a
    completed workspace: the fault is under DIR (a USB stick filling up). The workspace is never
    changed; a folder that appears under DIR is whole; after the fault the same command
    completes and its result verifies."""
    server = setup.server
    ws = setup.completed
    out = tmp_path / "stick"
    args = (("export", "--keyset", "demo-api", "--out", str(out)) if command == "export"
            else ("audit", "export", "--out", str(out / "pack")))
    points = _export_points(setup, args, out, tmp_path / "points.log")
    assert points, "the export wrote nothing under --out"
    figures = Figures(f"failing writes during `ceremony {command}` ({len(points)} points)")
    before = sha256_tree(ws)
    for point, errno, sticky in _cases(points):
        where = f"{ERRNO_NAMES[errno]} at {point.n} {point.kind} {point.path}"
        shutil.rmtree(out, ignore_errors=True)
        run = server.run(ws, *args, env=fault_env(out, point.n, errno=errno, sticky=sticky))
        figures.add("faults injected")
        line = _one_clean_line(run.code, run.stderr, where)
        figures.add("one error line" if line else "succeeded anyway")
        visible = _visible_result(out, command)
        if visible is not None:
            _verify_result(server, visible, command, ws)
        complete_claim = line is not None and "is complete" in line
        assert visible is None or line is None or complete_claim, (where, line)
        # Recovery: the same command again, to a fresh folder if the old one was completed.
        if visible is not None:
            shutil.rmtree(out)
        server.ok(ws, *args)
        result = _visible_result(out, command)
        assert result is not None
        _verify_result(server, result, command, ws)
    assert sha256_tree(ws) == before, "an export changed the workspace"
    figures.add("torn exports", 0)
    figures.report()


def _visible_result(out: Path, command: str) -> Path | None:
    """The folder a reader would take as the result, if any (hidden staging is not one)."""
    target = out / "demo-api" if command == "export" else out
    if not target.is_dir():
        return None
    visible = [p for p in target.iterdir() if not p.name.startswith(".") and p.is_dir()]
    if command == "audit export":
        visible = [p for p in visible if p.name == "pack"]
    assert len(visible) <= 1, visible
    return visible[0] if visible else None


def _verify_result(server: ForkServer, folder: Path, command: str, ws: Path) -> None:
    if command == "export":
        trust = ws / "exports" / "bundle-signing-key.jwk"
        server.ok(None, "verify", "bundle", str(folder / "jwks.jwt"), "--trust", str(trust),
                  "--now", _issued(folder))
    else:
        server.ok(None, "verify", "audit", str(folder))


def _issued(folder: Path) -> str:
    from datetime import datetime

    from tests.integration.ceremony_helpers import _jwt_claims, _utc, stamp

    claims = _jwt_claims((folder / "jwks.jwt").read_text().strip())
    return stamp(datetime.fromtimestamp(int(claims["iat"]), tz=_utc()))

"""What the fault campaigns share: the fault shim, the fork server, prepared ceremonies, the
recovery an operator performs, and the checks that prove nothing was lost.

* `build_shim` compiles `faultshim.c` (an LD_PRELOAD library that fails or kills at the Nth
  write, fsync, rename, link, mkdir or file creation under a folder) with the system's C
  compiler; tests skip, saying why, when there is none.
* `ForkServer` runs console commands as children of `tests.reliability.forkserver` (imports paid
  once), optionally killing them at a chosen instant or giving them FAULTSHIM_* variables.
* `prepare` builds a workspace holding an approved plan of one kind (genesis, rotation,
  export-only, officer change, key destruction) and measures an uninterrupted execution: its
  duration (kill times are drawn from it), its fault points, and what it leaves (`reference`).
* `recover` is what an operator does after a fault: `ceremony resume`; if there is nothing to
  resume, `execute` again when the plan never started, or `transcript` when it completed.
* `Checks.after_recovery` proves the outcome: the ceremony completed once, the token holds every
  key exactly once and matches the ledger (reconcile clean), the result equals the uninterrupted
  run's, a fresh audit pack passes `ceremony verify audit`, `PRAGMA integrity_check` is ok,
  nothing half-written is visible, and running `resume`/`execute` again changes nothing.
* `Figures` counts what the issue asks to report and prints it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.ceremony_helpers import (
    FAST_KDF,
    PYTHON,
    REPO,
    _env,
    after,
    check_manifest,
    clone,
    demo_officer_args,
    ledger_entries,
    make_demo,
    ok,
)

SHIM_SOURCE = Path(__file__).with_name("faultshim.c")
ENOSPC, EIO = 28, 5
ERRNO_NAMES = {ENOSPC: "ENOSPC", EIO: "EIO"}


# --- the fault shim ------------------------------------------------------------------------


def build_shim(directory: Path) -> tuple[Path | None, str]:
    """Compile the shim into `directory`; (None, why) when no C compiler can."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None, "no C compiler (cc, gcc or clang) to build the LD_PRELOAD fault shim"
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "faultshim.so"
    built = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out),
                            str(SHIM_SOURCE), "-ldl"], capture_output=True, text=True,
                           check=False)
    if built.returncode != 0:
        return None, f"the fault shim does not build here: {built.stderr.strip()[-300:]}"
    return out, ""


@dataclass(frozen=True)
class Point:
    """One call the shim counted: its number in the run, kind and file (relative to the
    workspace, or absolute outside it)."""

    n: int
    kind: str
    path: str

    @property
    def group(self) -> str:
        """The kind of call and what it touches, with run-specific names folded: points of one
        group behave alike, so a campaign picks a few of each."""
        path = re.sub(r"\.partial-\d+-[0-9a-f]+", ".partial-*", self.path)
        path = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "*", path)
        path = re.sub(r"\.\d+\.tmp$|\.tmp-\d+", ".*tmp", path)
        if path.startswith("softhsm/"):
            path = "softhsm/tokens/*"
        elif "/.partial-*/" in path:
            path = path.split("/.partial-*/")[0] + "/.partial-*/…"
        elif path.startswith("transcripts/"):
            path = "transcripts/" + ("…tmp" if path.endswith(".tmp") else "…")
        return f"{self.kind} {path}"


def read_points(log: Path, root: Path) -> list[Point]:
    points = []
    prefix = str(root) + "/"
    for line in log.read_text(encoding="utf-8").splitlines():
        n, kind, path, _ = line.split("\t")
        points.append(Point(int(n), kind, path[len(prefix):] if path.startswith(prefix)
                            else "." if path == str(root) else path))
    return points


def pick_points(points: Sequence[Point], *, every: bool, skip_token: bool = False) -> list[Point]:
    """Every point, or the first and last of each group."""
    chosen: dict[int, Point] = {}
    groups: dict[str, list[Point]] = {}
    for point in points:
        if skip_token and point.path.startswith("softhsm/"):
            continue
        groups.setdefault(point.group, []).append(point)
    for members in groups.values():
        for point in (members if every else (members[0], members[-1])):
            chosen[point.n] = point
    return [chosen[n] for n in sorted(chosen)]


def fault_env(root: Path, point: int | None, *, errno: int = EIO, sticky: bool = False,
              kill: bool = False, log: Path | None = None,
              ops: str = "write,fsync,rename,link,mkdir,create") -> dict[str, str]:
    env = {"FAULTSHIM_ROOT": str(root), "FAULTSHIM_OPS": ops, "FAULTSHIM_ERRNO": str(errno),
           "FAULTSHIM_NTH": str(point or 0), "FAULTSHIM_STICKY": "1" if sticky else "0"}
    if kill:
        env["FAULTSHIM_ACTION"] = "kill"
    if log is not None:
        env["FAULTSHIM_LOG"] = str(log)
    return env


# --- the fork server -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    killed: bool
    hung: bool
    elapsed: float

    def completed(self) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(self.args), self.code, self.stdout, self.stderr)


class ForkServer:
    """One `tests.reliability.forkserver` process; `run` is `ceremony_helpers.cli` through it."""

    def __init__(self, scratch: Path, shim: Path | None = None) -> None:
        self.scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)
        env = _env({"LD_PRELOAD": str(shim)} if shim is not None else None)
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "tests.reliability.forkserver"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.runs = 0
        self.lock = threading.Lock()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def run(self, ws: Path | None, *args: str, env: dict[str, str] | None = None,
            kill_after: float | None = None, timeout: float = 120,
            kind: str = "cli") -> Run:
        argv = demo_officer_args(ws, args) if ws is not None and kind == "cli" else args
        extra = dict(env or {})
        if ws is not None:
            extra["CEREMONY_WORKSPACE"] = str(ws)
        with self.lock:
            self.runs += 1
            out = self.scratch / f"run-{self.runs}"
            request = {"kind": kind, "argv": list(argv), "env": _env(extra),
                       "cwd": str(ws or REPO), "stdout": f"{out}.out", "stderr": f"{out}.err",
                       "kill_after": kill_after, "timeout": timeout}
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the fork server died")
            reply = json.loads(line)
            # A child killed in its first instants may not have opened its files yet.
            stdout, stderr = (_read(Path(f"{out}{suffix}")) for suffix in (".out", ".err"))
            for suffix in (".out", ".err"):
                Path(f"{out}{suffix}").unlink(missing_ok=True)
        return Run(tuple(args), int(reply["code"]), stdout, stderr, bool(reply["killed"]),
                   bool(reply["hung"]), float(reply["elapsed"]))

    def ok(self, ws: Path | None, *args: str, env: dict[str, str] | None = None) -> str:
        run = self.run(ws, *args, env=env)
        assert run.code == 0 and "Traceback" not in run.stderr, (
            f"`ceremony {' '.join(args)}` exited {run.code}\nstdout: {run.stdout[-2000:]}\n"
            f"stderr: {run.stderr[-4000:]}")
        return run.stdout


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


# --- prepared ceremonies --------------------------------------------------------------------


@dataclass
class Prepared:
    """A workspace at `root` with plan `plan_id` approved, waiting to be executed at `now` by
    `officers`; what an uninterrupted execution leaves (`reference`), how long it takes, and
    the shim's points in it (when measured with the shim)."""

    kind: str
    root: Path
    plan_id: str
    now: str
    officers: tuple[str, ...]
    inspect_officers: tuple[str, ...] = ("alice", "bob")
    reference: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0
    points: list[Point] = field(default_factory=list)
    entries_before: int = 0

    @property
    def officer_args(self) -> tuple[str, ...]:
        return tuple(a for name in self.officers for a in ("--officer", name))

    def execute_args(self) -> tuple[str, ...]:
        return ("execute", self.plan_id, *self.officer_args, "--now", self.now)

    def resume_args(self) -> tuple[str, ...]:
        return ("resume", *self.officer_args, "--now", self.now)


KINDS = ("genesis", "rotation", "export-only", "officer-change", "key-destruction")


def _plan_and_approve(ws: Path, script: str, now: str, approvers: Sequence[str],
                      *extra: str) -> str:
    plan = json.loads(ok(ws, "plan", script, "--now", now, "--json", *extra))
    for officer in approvers:
        ok(ws, "approve", plan["plan_id"], "--officer", officer, "--now", now)
    return str(plan["plan_id"])


def _run(ws: Path, script: str, now: str, officers: Sequence[str], *extra: str) -> None:
    ok(ws, "run", script, "--now", now, *[a for o in officers for a in ("--officer", o)], *extra)


def prepare(kind: str, base: Path, demo: Path) -> Prepared:
    """A workspace in `base/<kind>` with an approved plan of `kind` (see `KINDS`), cloned from
    the demo workspace `demo` (genesis from a fresh init)."""
    ws = base / kind
    if kind == "genesis":
        subprocess.run([PYTHON, "-m", "tests.reliability.fault_kit", "genesis-workspace",
                        str(ws)], env=_env(), cwd=REPO, check=True, capture_output=True,
                       timeout=120)
        now = after(ws)
        plan_id = _plan_and_approve(ws, "genesis", now, ("alice", "bob"))
        return Prepared(kind, ws, plan_id, now, ("alice", "bob"))
    clone(demo, ws)
    if kind == "rotation":
        now = after(ws, 91)
        return Prepared(kind, ws, _plan_and_approve(ws, "quarterly-rotation", now,
                                                    ("alice", "bob")), now, ("alice", "bob"))
    if kind == "export-only":
        now = after(ws, 1)
        return Prepared(kind, ws, _plan_and_approve(ws, "export-only", now, ("alice", "bob")),
                        now, ("alice", "bob"))
    if kind == "officer-change":
        (ws / "dave.pass").write_text("dave-fault-campaign-passphrase-7 horse\n")
        ok(ws, "officer", "new-card", "dave", "--out", str(ws / "dave.card"),
           "--passphrase-file", f"{ws / 'dave.pass'}")
        now = after(ws, 1)
        officers = ("alice", "bob", "carol")
        plan_id = _plan_and_approve(ws, "officer-change", now, officers,
                                    "--set", f"enroll={ws / 'dave.card'}", "--set",
                                    "revoke=carol")
        return Prepared(kind, ws, plan_id, now, officers)
    if kind == "key-destruction":
        # Two rotations archive the demo's first keys; destruction waits past the last one.
        _run(ws, "quarterly-rotation", after(ws, 91), ("alice", "bob"))
        _run(ws, "quarterly-rotation", after(ws, 91), ("alice", "bob"))
        now = after(ws, 120)
        officers = ("alice", "bob", "carol")
        return Prepared(kind, ws, _plan_and_approve(ws, "key-destruction", now, officers),
                        now, officers)
    raise ValueError(kind)


def measure(server: ForkServer, prepared: Prepared, scratch: Path, *,
            shim: bool = False) -> None:
    """Execute a copy uninterrupted: fill in `reference`, `duration` and (with the shim
    preloaded) `points`."""
    ws = clone(prepared.root, scratch / f"measure-{prepared.kind}")
    prepared.entries_before = len(ledger_entries(prepared.root))
    log = scratch / f"points-{prepared.kind}.log"
    env = fault_env(ws, None, log=log) if shim else None
    run = server.run(ws, *prepared.execute_args(), env=env)
    assert run.code == 0, run.stderr[-3000:]
    prepared.duration = run.elapsed
    if shim:
        prepared.points = read_points(log, ws)
    seen = inspect(server, ws, prepared.inspect_officers)
    prepared.reference = fingerprint(ws, seen)
    shutil.rmtree(ws)


# --- recovery ------------------------------------------------------------------------------


def plan_state(ws: Path, plan_id: str) -> str:
    """"completed", "started" or "planned", from the ledger read directly."""
    state = "planned"
    for entry in ledger_entries(ws):
        data = entry.get("data") or {}
        if entry["type"] == "ceremony.completed" and data.get("plan_id") == plan_id:
            return "completed"
        if entry["type"] in ("ceremony.started", "ceremony.resumed") and data.get(
                "plan_id") == plan_id:
            state = "started"
    return state


def recover(server: ForkServer, ws: Path, prepared: Prepared,
            env: dict[str, str] | None = None) -> list[str]:
    """What an operator does after the fault: returns the commands it took."""
    taken = ["resume"]
    resumed = server.run(ws, *prepared.resume_args(), env=env)
    assert "Traceback" not in resumed.stderr, resumed.stderr
    if resumed.code == 0:
        assert "completed" in resumed.stdout + resumed.stderr, resumed.stderr[-2000:]
        return taken
    one_line(resumed, "no interrupted ceremony")
    state = plan_state(ws, prepared.plan_id)
    if state == "planned":
        taken.append("execute")
        server.ok(ws, *prepared.execute_args(), env=env)
    elif state == "completed":
        taken.append("transcript")
        server.ok(ws, "transcript", prepared.plan_id, env=env)
    else:  # pragma: no cover - resume refuses only when nothing was started
        raise AssertionError(f"resume refused a started ceremony: {resumed.stderr}")
    return taken


def one_line(run: Run, contains: str | None = None) -> str:
    errors = [line for line in run.stderr.splitlines() if line.startswith("ceremony: error:")]
    assert run.code == 1, (run.code, run.stderr[-3000:])
    assert "Traceback" not in run.stderr, run.stderr
    assert len(errors) == 1, run.stderr
    if contains is not None:
        assert contains.lower() in errors[0].lower(), errors[0]
    return errors[0]


# --- checks --------------------------------------------------------------------------------


def inspect(server: ForkServer, ws: Path, officers: Sequence[str]) -> dict[str, Any]:
    run = server.run(None, str(ws), *officers, kind="inspect")
    assert run.code == 0, f"inspect: {run.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(run.stdout)
    return report


def export_dirs_all(ws: Path) -> list[Path]:
    base = ws / "exports"
    found = []
    if base.is_dir():
        for keyset in sorted(base.iterdir()):
            if keyset.is_dir() and keyset.name != "audit" and not keyset.name.startswith("."):
                found += sorted((p for p in keyset.iterdir() if not p.name.startswith(".")),
                                key=lambda p: int(p.name))
    return found


def fingerprint(ws: Path, seen: dict[str, Any]) -> dict[str, Any]:
    """What a completed ceremony left: key states per keyset, the visible export folders, the
    officers in force."""
    states = Counter((k["keyset"], k["state"]) for k in seen["keys"])
    officers: dict[str, str] = {}
    for entry in ledger_entries(ws):
        if entry["type"] == "officer.enrolled":
            officers[entry["data"]["name"]] = "enrolled"
        elif entry["type"] == "officer.revoked":
            officers[entry["data"]["name"]] = "revoked"
    return {"states": sorted(states.items()),
            "exports": [str(p.relative_to(ws)) for p in export_dirs_all(ws)],
            "officers": sorted(officers.items())}


def integrity_ok(ws: Path) -> bool:
    uri = f"file:{ws / 'ledger.sqlite'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        return [row[0] for row in db.execute("PRAGMA integrity_check")] == ["ok"]


def torn_files(ws: Path) -> list[str]:
    """Visible files a reader would take as whole but that are not: export folders failing
    their manifest, cut transcripts, a `.checkpoint` or `pin.sealed` that does not parse."""
    from console.ledger.checkpoint import parse_note
    from console.quorum.pin_gate import read_sealed_pin

    torn = []
    for export in export_dirs_all(ws):
        try:
            check_manifest(export)
        except AssertionError as e:
            torn.append(f"{export}: {e}")
    transcripts = ws / "transcripts"
    for path in sorted(transcripts.iterdir()) if transcripts.is_dir() else []:
        if path.name.startswith("."):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        whole = {".html": text.endswith("</html>\n"), ".svg": text.rstrip().endswith("</svg>"),
                 ".md": len(text) > 0}.get(path.suffix, True)
        if not whole:
            torn.append(f"{path}: cut short")
    checkpoint = ws / ".checkpoint"
    # Empty is whole: `create` writes it to say "no checkpoint yet".
    if checkpoint.exists() and checkpoint.stat().st_size > 0:
        try:
            parse_note(checkpoint.read_text(encoding="utf-8"))
        except Exception as e:
            torn.append(f"{checkpoint}: {e}")
    for name in ("pin.sealed", "pin.next"):
        sealed = ws / name
        if sealed.exists():
            try:
                read_sealed_pin(sealed.read_bytes())
            except Exception as e:
                torn.append(f"{sealed}: {e}")
    signing_key = ws / "exports" / "bundle-signing-key.jwk"
    if signing_key.exists():
        try:
            json.loads(signing_key.read_text())
        except ValueError as e:
            torn.append(f"{signing_key}: {e}")
    return torn


def step_done_reported(stderr: str) -> list[int]:
    """Steps the console said were done (a `✓ n/m` line is printed after the commit)."""
    return [int(m.group(1)) for m in re.finditer(r"^✓ (\d+)/\d+ ", stderr, re.MULTILINE)]


def commits_lost(ws: Path, prepared: Prepared, before: list[dict[str, Any]],
                 reported_done: Sequence[int]) -> list[str]:
    """Entries the ledger held before the run that are gone or changed, and steps the console
    reported done whose result is not in the ledger."""
    now = ledger_entries(ws)
    lost = [f"entry {i} changed or gone" for i, entry in enumerate(before)
            if i >= len(now) or now[i] != entry]
    done = {e["data"].get("step") for e in now if e["type"] == "ceremony.step.done"
            and e["data"].get("plan_id") == prepared.plan_id}
    lost += [f"step {n} reported done, not recorded" for n in reported_done if n not in done]
    return lost


REPORTED: list[str] = []
"""Every campaign's figures line, for the terminal summary (tests/reliability/conftest.py)."""


@dataclass
class Figures:
    """The numbers the issue asks for, per campaign."""

    name: str
    started: float = field(default_factory=time.monotonic)
    counts: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def line(self) -> str:
        c = self.counts
        keys = ["faults injected", "kills", "runs", "commits lost", "keys twice",
                "torn exports", "hangs"]
        parts = [f"{k} {c[k]}" for k in keys if k in c or k in (
            "commits lost", "keys twice", "torn exports", "hangs")]
        extra = [f"{k} {v}" for k, v in sorted(c.items()) if k not in keys]
        return (f"{self.name}: " + ", ".join(parts + extra)
                + f", duration {time.monotonic() - self.started:.1f} s")

    def report(self) -> None:
        text = self.line()
        REPORTED.append(text)
        print(text)
        sys.stdout.flush()
        target = os.environ.get("CEREMONY_FAULT_FIGURES")
        if target:
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"campaign": self.name, **self.counts,
                                         "seconds": round(time.monotonic() - self.started, 1)})
                             + "\n")


@dataclass
class Outcome:
    """What the checks after one fault found (each list empty when all is well)."""

    keys_twice: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    residue: int = 0


def after_recovery(server: ForkServer, ws: Path, prepared: Prepared, pack: Path, *,
                   env: dict[str, str] | None = None) -> Outcome:
    """Every check after the operator's recovery (see the module docstring); asserts the ones
    that are not figures, returns the figures' findings."""
    outcome = Outcome()
    assert plan_state(ws, prepared.plan_id) == "completed"
    size = len(ledger_entries(ws))
    # Re-running changes nothing.
    one_line(server.run(ws, *prepared.resume_args(), env=env), "no interrupted ceremony")
    one_line(server.run(ws, *prepared.execute_args(), env=env), "was executed")
    assert len(ledger_entries(ws)) == size, "re-running a completed ceremony wrote entries"
    # The token and the ledger agree; every key is there once, whole.
    seen = inspect(server, ws, prepared.inspect_officers)
    assert seen["reconcile"]["clean"], seen["reconcile"]
    # Objects SoftHSM2 cannot describe (a kill between creating an object's file and writing
    # it): no key, counted apart; anything else without a CKA_ID is a finding.
    blank = seen["objects"].pop("", [])
    outcome.residue = sum(1 for c, _ in blank if c == "unreadable")
    assert all(c == "unreadable" for c, _ in blank), blank
    labels: Counter[str] = Counter()
    for cka_id, objects in seen["objects"].items():
        if sorted(c for c, _ in objects) != ["private key", "public key"]:
            outcome.keys_twice.append(f"{cka_id}: {objects}")
        labels.update({objects[0][1]})
    outcome.keys_twice += [f"label {label} on {n} keys" for label, n in labels.items() if n > 1]
    generated = Counter(e["data"]["label"] for e in ledger_entries(ws)
                        if e["type"] == "key.generated")
    outcome.keys_twice += [f"ledger generated {label} {n} times"
                           for label, n in generated.items() if n > 1]
    assert set(seen["objects"]) == {k["cka_id"] for k in seen["keys"]
                                    if k["state"] != "destroyed"}
    assert fingerprint(ws, seen) == prepared.reference
    # The audit trail verifies offline; SQLite's own check; nothing torn.
    server.ok(ws, "audit", "export", "--out", str(pack), env=env)
    server.ok(None, "verify", "audit", str(pack))
    shutil.rmtree(pack, ignore_errors=True)
    assert integrity_ok(ws)
    outcome.torn += torn_files(ws)
    # The rollback guard is brought forward to the ledger's last checkpoint.
    notes = [e["data"]["note"] for e in ledger_entries(ws) if e["type"] == "checkpoint.signed"]
    assert (ws / ".checkpoint").read_text(encoding="utf-8") == notes[-1]
    # pin.sealed is the one the ledger vouches for.
    resplits = [e["data"]["sha256"] for e in ledger_entries(ws) if e["type"] == "pin.resplit"]
    if resplits:
        assert hashlib.sha256((ws / "pin.sealed").read_bytes()).hexdigest() == resplits[-1]
    return outcome


def workspaces(base: Path, count: int) -> Iterator[Path]:
    for i in range(count):
        yield base / f"ws-{i}"


# --- the genesis workspace (subprocess side) -----------------------------------------------


def _genesis_workspace(root: Path) -> None:
    """A demo-like workspace (demo cards, demo policy, SoftHSM2 token inside it) right after
    `init`: no ceremony yet, so genesis can be planned."""
    import secrets
    from datetime import timedelta

    from console.ceremony import demo
    from console.ceremony.init import init_workspace
    from console.ceremony.officers import write_private_file
    from console.clock import wall_clock
    from console.quorum.cards import create_card

    root.mkdir(parents=True)
    conf = demo._make_softhsm(root)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    initial_pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
    util = shutil.which("softhsm2-util")
    assert util is not None
    subprocess.run([util, "--init-token", "--free", "--label", demo.TOKEN_LABEL, "--so-pin",
                    so_pin, "--pin", initial_pin], check=True, capture_output=True)
    cards = root / "demo-cards"
    cards.mkdir()
    at = wall_clock() - timedelta(days=1)
    for name in demo.OFFICERS:
        passphrase = f"{name}-fault-campaign-passphrase-7 horse"
        write_private_file(cards / f"{name}.card", create_card(
            name, passphrase, now=at, unsafe_kdf_cost_for_tests=FAST_KDF))
        write_private_file(cards / f"{name}.pass", passphrase.encode() + b"\n")
    policy = root / ".demo-policy.toml"
    policy.write_text(demo.DEMO_POLICY, encoding="utf-8")
    ws = init_workspace(
        root, org="demo", module="softhsm", token_label=demo.TOKEN_LABEL, token_serial=None,
        officer_cards=[cards / f"{n}.card" for n in demo.OFFICERS],
        quorum=["routine=2/3", "destructive=3/3", "emergency=2/3"],
        current_pin=initial_pin.encode(), rehearsal=True, policy_file=policy,
        progress=lambda _: None, now=at, softhsm_conf=demo.SOFTHSM_CONF)
    policy.unlink()
    demo._forget_so_pin(ws, so_pin)
    ws.close()


if __name__ == "__main__":
    if sys.argv[1] == "genesis-workspace":
        _genesis_workspace(Path(sys.argv[2]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]}")


__all__ = ["EIO", "ENOSPC", "KINDS", "ForkServer", "Prepared", "build_shim", "make_demo"]

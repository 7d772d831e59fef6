"""Publication is a fact: a seeded random campaign of ceremonies over a real demo workspace.

Issue 14, item 1. Random sequences of `run quarterly-rotation` (due, or early with `--keyset`),
`run emergency-rotation` and `run export-only`, through the real CLI in subprocesses, at random
rehearsal times (`--now`, always moving forward: minutes, days around the activation delay, or a
quarter), some of them crashed (CEREMONY_UNSAFE_CRASH_AT=<intent|effect|done>:<step>: the console
SIGKILLs itself) or made to fail at export (the keyset's exports folder made read-only for that
one run, then restored); a crashed or failed ceremony is followed by `resume --officer alice
--officer bob` or `resume --abort --officer alice`, sometimes after a new `run` that must be
refused while it is open.

After every step the invariant is checked by reading the files directly (export folders,
`policy.toml`; never the console's code):

* every visible export folder `exports/<keyset>/<seq>/` is complete (MANIFEST), seqs start at 1
  and no seq of an aborted export (`.aborted-<seq>-<id>`) is ever used again,
  bundle issue times (`jwks.jwt`'s `iat`) never go backwards, and the kid its `signer.json`
  names is in its own `jwks.json`, with `valid_from` not before the first bundle holding it;
* **activation rule** (the console's, console/lifecycle/_rules.py `earliest_activation`:
  `published_at + C_max + M`, where C_max is the slowest consumer's propagation time,
  `max(cache_lifetime + install_delay)` over the keyset's consumers in policy.toml, and M the
  keyset's `margin`; clock_skew is *not* part of it, it belongs to the unpublish rule): when a
  bundle's `signer.json` names a kid for the first time, that kid appeared in the `jwks.json` of
  a bundle issued at least C_max + M before that signer's `valid_from`. "Published" counts only
  from a bundle that was actually exported: a key the ledger calls published but no export
  holds has no publication time here. Waived, as the console documents: the keyset's first
  signer (genesis) and a kid first named by an emergency-rotation bundle (an emergency activates
  at once; consumers that lack the key reject its tokens until they fetch it, which
  `plan_emergency` says);
* `status --json`'s active key of each keyset equals the latest export's `signer.json` kid
  whenever no ceremony is left open (after every completed step, every resume and every abort).
  While a crashed ceremony is open they may differ: a crash at `effect:<export step>` leaves the
  new bundle folder visible (renamed into place) before the ledger transaction that records it;
  `resume` records it and `resume --abort` moves it aside (`.aborted-<seq>-<id>`), after which
  they agree again, which is checked;
* every refused command printed exactly one `ceremony: error:` line and no traceback.

The seed is printed; CEREMONY_PUBLICATION_SEED=<n> replays a campaign, CEREMONY_PUBLICATION_STEPS
sets its length (default 12 steps, about 20 s idle and well under a minute on two busy cores).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import (
    CRASH_VARIABLE,
    PYTHON,
    TIMEOUT,
    _env,
    assert_one_error,
    check_manifest,
    cli,
    demo_officer_args,
    last_time,
    make_demo,
    stamp,
)

pytestmark = [pytest.mark.hsm]

SEED_VARIABLE = "CEREMONY_PUBLICATION_SEED"
STEPS_VARIABLE = "CEREMONY_PUBLICATION_STEPS"
DEFAULT_STEPS = 12
OFFICERS = ("--officer", "alice", "--officer", "bob")
POINTS = ("intent", "effect", "done")
EMERGENCY = "emergency-rotation"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# --- reading the files directly ------------------------------------------------------------


def _duration(text: str) -> timedelta:
    total = 0
    for amount, unit in re.findall(r"(\d+)\s*([smhdw])", text):
        total += int(amount) * UNITS[unit]
    assert total or text.strip() in ("0", "0s"), f"cannot read duration {text!r}"
    return timedelta(seconds=total)


def activation_delays(ws: Path) -> dict[str, timedelta]:
    """Per keyset: C_max (slowest consumer's cache_lifetime + install_delay) + margin."""
    policy = tomllib.loads((ws / "policy.toml").read_text(encoding="utf-8"))
    delays = {}
    for name, keyset in policy["keysets"].items():
        c_max = max((_duration(c.get("cache_lifetime", "0s")) + _duration(c.get("install_delay",
                                                                                "0s"))
                     for c in keyset.get("consumers", [])), default=timedelta(0))
        delays[name] = c_max + _duration(keyset.get("margin", "1d"))
    return delays


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iat(export: Path) -> datetime:
    payload = (export / "jwks.jwt").read_text().strip().split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return datetime.fromtimestamp(int(claims["iat"]), tz=UTC)


def keyset_exports(ws: Path) -> dict[str, list[Path]]:
    base = ws / "exports"
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found[folder.name] = sorted((p for p in folder.iterdir() if not p.name.startswith(".")),
                                    key=lambda p: int(p.name))
    return found


@dataclass
class Campaign:
    ws: Path
    rng: random.Random
    delays: dict[str, timedelta]
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    """(keyset, seq) → the ceremony that wrote it (from what this test ran)."""
    pending: str | None = None
    """The script of a crashed or failed ceremony that may still be open."""
    log: list[str] = field(default_factory=list)
    clock: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))
    """The latest `--now` given: refused commands write nothing, yet time never goes back."""

    def note(self, text: str) -> None:
        self.log.append(text)
        print(text)


def check_invariant(c: Campaign, *, agree: bool = True) -> None:
    for name, exports in keyset_exports(c.ws).items():
        seqs = [int(p.name) for p in exports]
        assert not seqs or seqs[0] == 1, exports
        # An aborted export's seq is never used again (its signed folder may have been copied).
        aborted = {int(p.name.split("-")[1]) for p in (c.ws / "exports" / name).iterdir()
                   if p.name.startswith(".aborted-")}
        assert not aborted & set(seqs), f"seq reused after an abort: {sorted(aborted & set(seqs))}"
        first_seen: dict[str, datetime] = {}
        waived: set[str] = set()
        previous_signer: str | None = None
        previous_iat: datetime | None = None
        for export in exports:
            check_manifest(export)
            iat = _iat(export)
            assert previous_iat is None or iat >= previous_iat, f"{export}: iat went backwards"
            previous_iat = iat
            kids = [str(k["kid"]) for k in json.loads((export / "jwks.json").read_text())["keys"]]
            for kid in kids:
                first_seen.setdefault(kid, iat)
            signer = json.loads((export / "signer.json").read_text())
            kid = str(signer["kid"])
            assert kid in kids, f"{export}: signer.json names {kid}, not in its jwks.json"
            valid_from = _time(signer["valid_from"]) if "valid_from" in signer else iat
            assert valid_from >= first_seen[kid], export
            kind = c.kinds.get((name, export.name), "?")
            if kid != previous_signer:
                if previous_signer is None or kind == EMERGENCY:
                    waived.add(kid)
                if kid not in waived:
                    earliest = first_seen[kid] + c.delays[name]
                    assert valid_from >= earliest, (
                        f"{export} ({kind}): signer.json names {kid} from {stamp(valid_from)}, "
                        f"but the first exported bundle holding it was issued "
                        f"{stamp(first_seen[kid])}; consumers surely have it only from "
                        f"{stamp(earliest)} (C_max + margin {c.delays[name]})\n"
                        + "\n".join(c.log))
            previous_signer = kid
    report = json.loads(_ok_status(c.ws))
    if not agree:
        return
    folders = keyset_exports(c.ws)
    for keyset in report["keysets"]:
        if not folders.get(keyset["name"]):
            continue
        newest = folders[keyset["name"]][-1]
        latest = json.loads((newest / "signer.json").read_text())
        assert keyset["active_kid"] == latest["kid"], (
            f"{keyset['name']}: status says {keyset['active_kid']} signs, the latest export "
            f"{newest.name} names {latest['kid']}\n" + "\n".join(c.log))


def _ok_status(ws: Path) -> str:
    result = cli(ws, "status", "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


# --- making one export fail -------------------------------------------------------------------


def _probe_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        q = shlex.quote(folder)
        script = (f"mount --bind {q} {q} && mount -o remount,bind,ro {q} "
                  f"&& ! touch {q}/x 2>/dev/null")
        return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                              capture_output=True, check=False).returncode == 0


def run_read_only_exports(ws: Path, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """Run `ceremony ARGS` with exports/<keyset>/ read-only for this run only: chmod when not
    root; as root (where chmod stops no write) a read-only bind mount in a private mount
    namespace that ends with the process."""
    folders = [p for p in (ws / "exports").iterdir() if p.is_dir()]
    argv = [PYTHON, "-m", "console", *demo_officer_args(ws, args)]
    env = _env({"CEREMONY_WORKSPACE": str(ws)})
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in folders}
        for p in folders:
            p.chmod(0o555)
        try:
            return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ws,
                                  timeout=TIMEOUT, check=False)
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
    if not _probe_mount():
        pytest.skip("root without a usable `unshare -m` + read-only bind mount")
    mounts = "\n".join(f"mount --bind {shlex.quote(str(p))} {shlex.quote(str(p))} && "
                       f"mount -o remount,bind,ro {shlex.quote(str(p))} || exit 97"
                       for p in folders)
    command = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               mounts + '\nexec "$@"', "sh", *argv]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ws,
                            timeout=TIMEOUT, check=False)
    assert result.returncode != 97, "the read-only bind mount failed"
    return result


# --- one step ---------------------------------------------------------------------------------


def _advance(c: Campaign) -> str:
    """A rehearsal time after the ledger's last entry: minutes, days around the activation
    delay, or a quarter."""
    choice = c.rng.random()
    if choice < 0.3:
        delta = timedelta(minutes=c.rng.randint(1, 180))
    elif choice < 0.75:
        delta = timedelta(hours=c.rng.randint(6, 150))
    else:
        delta = timedelta(days=c.rng.randint(60, 95))
    c.clock = max(c.clock, last_time(c.ws)) + delta
    return stamp(c.clock)


def _attribute(c: Campaign, before: dict[str, list[Path]], script: str) -> list[str]:
    new = []
    for name, exports in keyset_exports(c.ws).items():
        known = {p.name for p in before.get(name, [])}
        for export in exports:
            if export.name not in known:
                c.kinds[(name, export.name)] = script
                new.append(f"{name}/{export.name}")
    return new


def _refused_or_ok(result: subprocess.CompletedProcess[str], what: str) -> str:
    assert "Traceback" not in result.stderr, f"{what}: {result.stderr}"
    if result.returncode == 0:
        return "ok"
    if result.returncode == -9:
        return "crashed"
    error = assert_one_error(result, tuple(range(1, 256)))
    return f"refused ({error[len('ceremony: error: '):][:110]})"


def step_run(c: Campaign, i: int) -> None:
    script = c.rng.choices(["quarterly-rotation", EMERGENCY, "export-only"], [5, 1, 2])[0]
    args: tuple[str, ...] = ("run", script, "--now", _advance(c), *OFFICERS)
    if script == "quarterly-rotation" and c.rng.random() < 0.7:
        args += ("--keyset", "demo-api")  # rotate early: activation waits for its rule
    fault = c.rng.choices(["none", "crash", "export"], [5, 3, 2])[0]
    env: dict[str, str] = {}
    if fault == "crash":
        env[CRASH_VARIABLE] = f"{c.rng.choice(POINTS)}:{c.rng.randint(1, 5)}"
    before = keyset_exports(c.ws)
    if fault == "export":
        result = run_read_only_exports(c.ws, args)
        assert keyset_exports(c.ws) == before, "an export appeared in a read-only folder"
    else:
        result = cli(c.ws, *args, env=env)
    outcome = _refused_or_ok(result, " ".join(args))
    if outcome == "crashed":
        assert fault == "crash", result.stderr
    new = _attribute(c, before, script)
    shown = " ".join(a for a in args if a not in OFFICERS)
    c.note(f"{i}: {shown} fault={fault} "
           f"{env.get(CRASH_VARIABLE, '')} → {outcome} {new}")
    if outcome != "ok":
        c.pending = script


def step_recover(c: Campaign, i: int, *, force_abort: bool = False) -> None:
    assert c.pending is not None
    if not force_abort and c.rng.random() < 0.2:
        # A new ceremony while one may be open: refused cleanly, or it runs if none is open.
        args = ("run", "export-only", "--now", _advance(c), *OFFICERS)
        before = keyset_exports(c.ws)
        result = cli(c.ws, *args)
        outcome = _refused_or_ok(result, " ".join(args))
        new = _attribute(c, before, "export-only")
        c.note(f"{i}: while {c.pending} may be open: run export-only → {outcome} {new}")
        if outcome == "ok":
            c.pending = None
        return
    abort = force_abort or c.rng.random() < 0.4
    args = ("resume", "--now", _advance(c),
            *(("--abort", "--officer", "alice") if abort else OFFICERS))
    before = keyset_exports(c.ws)
    result = cli(c.ws, *args)
    outcome = _refused_or_ok(result, " ".join(args))
    new = _attribute(c, before, c.pending)
    shown = " ".join(a for a in args if a not in OFFICERS)
    c.note(f"{i}: {shown} ({c.pending}) → {outcome} {new}")
    if outcome == "ok" or "no interrupted" in outcome or "no open ceremony" in outcome:
        c.pending = None  # else it stays pending: the next step resumes or aborts again


def test_publication_is_a_fact(tmp_path: Path) -> None:
    seed = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(2**32))
    steps = int(os.environ.get(STEPS_VARIABLE) or DEFAULT_STEPS)
    print(f"publication campaign: {SEED_VARIABLE}={seed} {STEPS_VARIABLE}={steps}")
    ws = make_demo(tmp_path / "demo")
    c = Campaign(ws, random.Random(seed), activation_delays(ws))
    c.note(f"seed {seed}; activation delay {c.delays}")
    # The demo's own exports: genesis, then one quarterly rotation.
    for name, exports in keyset_exports(ws).items():
        for export in exports:
            c.kinds[(name, export.name)] = "genesis" if export.name == "1" else "demo"
    check_invariant(c)
    for i in range(1, steps + 1):
        if c.pending is not None:
            step_recover(c, i)
        else:
            step_run(c, i)
        check_invariant(c, agree=c.pending is None)
    # Leave nothing open, and check once more.
    for attempt in range(3):
        if c.pending is None:
            break
        step_recover(c, steps + 1 + attempt, force_abort=attempt == 2)
        check_invariant(c, agree=c.pending is None)
    assert c.pending is None, "the campaign left a ceremony open\n" + "\n".join(c.log)

"""Every command in every environment: no terminal, C locale, closed pipes — one line, never a
traceback.

Every command of `ceremony` (found by walking the argparse parser: a new subcommand fails
`test_every_command_has_a_row` until it has a row in `ROWS`) runs as the installed
`.venv/bin/ceremony`, in a subprocess in a new session (so it has no controlling terminal even
when pytest runs in one), against its own copy of a demo workspace. Each row has an argv that
works and one that is refused; commands that need passphrases get `--passphrase-file` from the
demo's `demo-cards/`, except in the refused argv, which is about prompting: there the card is
given without a passphrase file, and the command must refuse rather than read stdin.

The conditions are the issue's: stdin /dev/null, stdin a closed descriptor, stdin a pipe with
text, stdout a pipe closed after one line, `LC_ALL=C LANG=C PYTHONUTF8=0`, `TERM=dumb`,
`NO_COLOR=1`, `COLUMNS=40`, a read-only HOME and a read-only workspace; plus stdout a pipe
whose reader is gone before the command starts, the deterministic form of `| head -n 1` (the
reader leaving after one line only bites if the command writes again after that, which most
of these commands do not). Every run must:

* exit 0, 1, 2 or 141, with no `Traceback`, `Warning:` or `Exception ignored` on stderr, at most
  one `ceremony: error:` line (exactly one for exit 2), no escape sequence in any output, no
  passphrase in any output, and only ASCII under the C locale;
* do what its argv says: the working argv succeeds (141 when its stdout was cut), except on a
  read-only workspace, where it is refused as read-only (never as "damaged"); the refused argv
  is refused (1 or 2) and names what to do (e.g. `--passphrase-file alice=FILE`);
* change nothing in the workspace (sha256 of every file, before and after) unless it is a
  working argv of a mutating command that succeeded. The two lock records (`.lock`,
  `ledger.sqlite.lock`) are left out: they name the last process that held the lock.

Time. Each run costs 0.1 s (a usage error) to 3.5 s (`demo`), so the full product (21 rows, two
argvs, 11 conditions) takes about four minutes on two cores. By default the conditions are
stacked instead, which keeps it near a minute: a working argv must succeed under every
harmless condition at once (stdin closed, C locale, TERM=dumb, NO_COLOR, 40 columns, read-only
HOME), so none can hide another's failure; stdout cut and stdout closed each get a column with
a stdin variant; the read-only workspace gets its own. The refused argvs, which are cheap, run
under each stdin condition alone and under the output conditions stacked.
`CEREMONY_TEST_MATRIX=full` runs every condition alone with both argvs.

Read-only folders: as root, chmod stops no write, so a read-only bind mount is made in a private
mount namespace (`unshare -m`, gone with the process); else `chattr +i`; else the read-only
columns are skipped, saying why. Not root: chmod.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from console.cli import ExitCode, build_parser
from tests.integration.ceremony_helpers import clone
from tests.integration.signer_helpers import demo_pin, write_contract_signer, write_secret
from tests.pty_session import PtySession
from tests.softhsm import TEST_USER_PIN, make_token

pytestmark = [pytest.mark.hsm, pytest.mark.slow]

CEREMONY = str(Path(sys.executable).with_name("ceremony"))  # the installed entry point
ALLOWED = {ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE, ExitCode.OUTPUT_CLOSED}
LOCK_RECORDS = {".lock", "ledger.sqlite.lock"}
STDIN_TEXT = b"hunter2\nhunter2\ntulip puddle\n"
TIMEOUT = 120


# --- the commands ----------------------------------------------------------------------------


def _with_files(*names: str) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        out += ["--officer", name, "--card", f"{name}={{cards}}/{name}.card",
                "--passphrase-file", f"{name}={{cards}}/{name}.pass"]
    return tuple(out)


def _prompted(name: str) -> tuple[str, ...]:
    return ("--officer", name, "--card", f"{name}={{cards}}/{name}.card")


WS = ("--workspace", "{ws}", "--yes")  # --yes: the digest words, asked in rehearsals otherwise
WS_ONLY = ("--workspace", "{ws}")


@dataclass(frozen=True, slots=True)
class Row:
    """One command: an argv that works, one that is refused, and what the refusal must say.

    `base` is the demo copy the command runs against ("idle": the fresh demo; "open": with an
    export-only plan approved by alice and bob; "four": with dave enrolled, so that one officer
    can be revoked without breaking the 3-of-3 destructive quorum; None: no workspace).
    Placeholders: {ws} the copy, {cards} the demo cards, {new} a folder that does not exist
    yet, {out} one outside the workspace, {plan} the open plan, {done} a completed one, {dave}
    a new officer's card, {pack} an audit pack, {bundle}/{trust} a signed bundle and its key,
    {token}/{pin} a fresh token for `init`.
    """

    works: tuple[str, ...] | None
    refused: tuple[str, ...]
    refusal: str
    base: str | None = "idle"
    mutating: bool = False
    asks: bool = False  # the refused argv is refused for want of a terminal to type on
    costly: bool = False  # seconds per run: the working argv skips columns vacuous for it
    works_status: frozenset[int] = frozenset({ExitCode.OK})


ROWS: dict[tuple[str, ...], Row] = {
    # The TUI (it works in tests/tui/test_tmux.py).
    (): Row(None, WS_ONLY, "needs a terminal", asks=True),
    ("demo",): Row(("demo", "--headless", "--workspace", "{new}"),
                   ("demo", "--workspace", "{new}"), "add --headless", base=None, asks=True,
                   costly=True),
    ("init",): Row(
        ("init", "--workspace", "{new}", "--org", "acme", "--module", "softhsm",
         "--token-label", "{token}", "--pin-file", "{pin}", "--rehearsal",
         *(f"--officer-card={{cards}}/{n}.card" for n in ("alice", "bob", "carol"))),
        ("init", "--workspace", "{new}", "--org", "acme", "--module", "softhsm",
         "--officer-card", "{cards}/alice.card"), "--pin-file FILE", base=None, asks=True),
    ("status",): Row(("status", *WS_ONLY), ("status", "--now", "not-a-time", *WS_ONLY), "RFC 3339"),
    ("plan",): Row(("plan", "export-only", *WS_ONLY), ("plan", "no-such-script", *WS_ONLY),
                   "no-such-script", mutating=True),
    ("approve",): Row(("approve", "{plan}", *_with_files("carol"), *WS),
                      ("approve", "{plan}", *_prompted("carol"), *WS),
                      "--passphrase-file carol=FILE", base="open", mutating=True, asks=True),
    ("execute",): Row(("execute", "{plan}", *_with_files("alice", "bob"), *WS),
                      ("execute", "{plan}", *_prompted("alice"), *_with_files("bob"), *WS),
                      "--passphrase-file alice=FILE", base="open", mutating=True, asks=True),
    ("run",): Row(("run", "export-only", *_with_files("alice", "bob"), *WS),
                  ("run", "export-only", *_prompted("alice"), *_with_files("bob"), *WS),
                  "--passphrase-file alice=FILE", mutating=True, asks=True),
    # Nothing is interrupted in "open": the refusal says so before any card is asked for.
    ("resume",): Row(("resume", "--abort", *_with_files("alice"), *WS),
                     ("resume", *_prompted("alice"), *WS),
                     "no interrupted ceremony", base="open", mutating=True),
    ("reconcile",): Row(("reconcile", *WS_ONLY), ("reconcile", "--workspace", "{out}"),
                        "no workspace"),
    ("export",): Row(("export", "--keyset", "demo-api", "--out", "{out}", *WS_ONLY),
                     ("export", "--keyset", "no-such-keyset", *WS_ONLY), "no-such-keyset"),
    ("audit",): Row(None, ("audit",), "needs an action"),
    ("audit", "export"): Row(("audit", "export", "--out", "{out}", *WS_ONLY),
                             ("audit", "export", "--out", "{pack}", *WS_ONLY), "already exists"),
    ("verify",): Row(None, ("verify",), "needs an action"),
    ("verify", "bundle"): Row(("verify", "bundle", "{bundle}", "--trust", "{trust}"),
                              ("verify", "bundle", "{bundle}", "--trust", "{cards}/alice.card"),
                              "trusted key", base=None),
    ("verify", "audit"): Row(("verify", "audit", "{pack}"), ("verify", "audit", "{out}"),
                             "not an audit pack", base=None),
    ("officer",): Row(None, ("officer",), "needs an action"),
    ("officer", "list"): Row(("officer", "list", *WS_ONLY),
                             ("officer", "list", "--workspace", "{out}"), "no workspace"),
    ("officer", "new-card"): Row(
        ("officer", "new-card", "dave", "--out", "{out}/dave.card",
         "--passphrase-file", "{cards}/carol.pass"),
        ("officer", "new-card", "dave", "--out", "{out}/dave.card"), "--passphrase-file FILE",
        base=None, asks=True),
    ("officer", "enroll"): Row(
        ("officer", "enroll", "--new-card", "{dave}", *_with_files("alice", "bob", "carol"), *WS),
        ("officer", "enroll", "--new-card", "{dave}", *_prompted("alice"), *WS),
        "--passphrase-file alice=FILE", mutating=True, asks=True),
    ("officer", "revoke"): Row(
        ("officer", "revoke", "dave", *_with_files("alice", "bob", "carol"), *WS),
        ("officer", "revoke", "dave", *_prompted("alice"), *WS),
        "--passphrase-file alice=FILE", base="four", mutating=True, asks=True),
    ("doctor",): Row(("doctor", *WS_ONLY), ("doctor", "--bogus", *WS_ONLY),
                     "unrecognized arguments",
                     works_status=frozenset({ExitCode.OK, ExitCode.FAILED})),
    ("sign-token",): Row(("sign-token", "--signer", "{signer}", "--pin-file", "{tokenpin}",
                          *WS_ONLY),
                         ("sign-token", "--signer", "{signer}", "--pin-file", "{out}/pin",
                          *WS_ONLY), "cannot read the PIN file",
                         mutating=True),  # SoftHSM2 rewrites its token file at each login
    ("transcript",): Row(("transcript", "{done}", *WS_ONLY),
                         ("transcript", "000000000000", *WS_ONLY), "000000000000",
                         mutating=True),
}


def command_paths() -> set[tuple[str, ...]]:
    """Every command the parser knows: () for the TUI, then each subcommand, nested ones too."""
    paths: set[tuple[str, ...]] = {()}

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    paths.add((*prefix, name))
                    walk(child, (*prefix, name))

    walk(build_parser(), ())
    return paths


def test_every_command_has_a_row() -> None:
    assert command_paths() == set(ROWS), "give each new command a Row (works and refused argv)"


# --- the conditions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: str = ""      # "devnull", "closed" (fd 0 closed), "text" (a pipe holding text)
    stdout: str = ""     # "cut" (the reader leaves after one line), "closed" (gone at start)
    read_only: str = ""  # "home" or "workspace"


CONDITIONS = {c.name: c for c in (
    Condition("stdin-devnull", stdin="devnull"),
    Condition("stdin-closed", stdin="closed"),
    Condition("stdin-pipe", stdin="text"),
    Condition("stdout-cut", stdout="cut"),
    Condition("stdout-closed", stdout="closed"),
    Condition("C-locale", env={"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}),
    Condition("TERM-dumb", env={"TERM": "dumb"}),
    Condition("NO_COLOR", env={"NO_COLOR": "1"}),
    Condition("COLUMNS-40", env={"COLUMNS": "40"}),
    Condition("ro-HOME", read_only="home"),
    Condition("ro-workspace", read_only="workspace"),
)}


@dataclass(frozen=True, slots=True)
class Column:
    conditions: tuple[str, ...]
    kinds: tuple[str, ...]
    only_asking: bool = False  # refused argvs of the rows that ask for something only
    costly: bool = True  # the costly rows' working argvs run here too

    @property
    def id(self) -> str:
        return "+".join(self.conditions)

    def merged(self) -> Condition:
        env: dict[str, str] = {}
        stdin = stdout = ""
        read_only: set[str] = set()
        for name in self.conditions:
            c = CONDITIONS[name]
            env.update(c.env)
            stdin, stdout = c.stdin or stdin, c.stdout or stdout
            read_only |= {c.read_only} - {""}
        return Condition(self.id, env, stdin or "devnull", stdout, ",".join(sorted(read_only)))


HARMLESS = ("stdin-closed", "C-locale", "TERM-dumb", "NO_COLOR", "COLUMNS-40", "ro-HOME")
STACKED = (
    Column(HARMLESS, ("works",)),
    Column(("stdin-pipe", "stdout-closed"), ("works",)),
    # Vacuous for `demo`: no workspace to make read-only, one line of stdout.
    Column(("stdin-devnull", "stdout-cut", "ro-workspace"), ("works",), costly=False),
    # Input matters to the refusals that are about input; the others run in the last column.
    Column(("stdin-devnull",), ("refused",), only_asking=True),
    Column(("stdin-closed",), ("refused",), only_asking=True),
    Column(("stdin-pipe",), ("refused",), only_asking=True),
    Column(("C-locale", "TERM-dumb", "NO_COLOR", "COLUMNS-40", "ro-HOME", "ro-workspace"),
           ("refused",)),
)
FULL = tuple(Column((name,), ("works", "refused")) for name in CONDITIONS)
COLUMNS = FULL if os.environ.get("CEREMONY_TEST_MATRIX") == "full" else STACKED


def _cells() -> Iterator[object]:
    for column in COLUMNS:
        for key, row in ROWS.items():
            for kind in column.kinds:
                if kind == "works" and (row.works is None or (row.costly and not column.costly)):
                    continue
                if kind == "refused" and column.only_asking and not row.asks:
                    continue
                yield pytest.param(key, kind, column,
                                   id=f"{' '.join(key) or 'TUI'}:{kind}:{column.id}")


# --- fixtures --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bases:
    idle: Path
    open: Path
    four: Path
    plan: str
    done: str
    dave: Path
    pack: Path
    passphrases: tuple[str, ...]
    signer: Path  # the latest export's signer.json, in the contract sign-token reads
    token_pin: Path  # the demo token's PIN, as a signing service holds it (mode 600)

    @property
    def cards(self) -> Path:
        return self.idle / "demo-cards"


def _env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    drop = {"SOFTHSM2_CONF", "CEREMONY_WORKSPACE", "CEREMONY_UNSAFE_CRASH_AT", "NO_COLOR",
            "FORCE_COLOR", "COLUMNS", "LINES", "LANG", "LANGUAGE", "TERM", "PYTHONUTF8",
            "PYTHONIOENCODING", "PYTHONUNBUFFERED", "PYTHONPATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("LC_")}
    env.update({"HOME": str(home), "LANG": "C.UTF-8", "TERM": "xterm-256color", **(extra or {})})
    return env


def _ok(*args: str, cwd: Path) -> str:
    out = subprocess.run([CEREMONY, *args], capture_output=True, text=True, timeout=TIMEOUT,
                         env=_env(cwd), cwd=cwd, stdin=subprocess.DEVNULL,
                         start_new_session=True, check=False)
    assert out.returncode == 0, (args, out.stdout, out.stderr[-3000:])
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Bases:
    """One demo workspace, made as a user would; a copy with an approved, unstarted plan."""
    root = tmp_path_factory.mktemp("environment")
    idle = root / "idle"
    _ok("demo", "--headless", "--workspace", str(idle), cwd=root)
    opened = clone(idle, root / "open")
    planned = _ok("plan", "export-only", "--workspace", str(opened), cwd=root)
    plan = re.search(r"plan ([0-9a-f]{12})", planned)
    assert plan, planned
    for name in ("alice", "bob"):
        _ok("approve", plan.group(1), "--officer", name, "--passphrase-file",
            f"{name}={idle / 'demo-cards' / (name + '.pass')}", "--yes", "--workspace",
            str(opened), cwd=root)
    done = re.search(r"-([0-9a-f]{12})\.md$",
                     max(p.name for p in (idle / "transcripts").glob("*quarterly*.md")))
    assert done
    cards = idle / "demo-cards"
    dave = root / "dave.card"
    _ok("officer", "new-card", "dave", "--out", str(dave), "--passphrase-file",
        str(cards / "carol.pass"), cwd=root)
    pack = root / "pack"
    _ok("audit", "export", "--out", str(pack), "--workspace", str(idle), cwd=root)
    four = clone(idle, root / "four")
    _ok("officer", "enroll", "--new-card", str(dave), "--yes", "--workspace", str(four),
        *(a for n in ("alice", "bob", "carol") for a in (
            "--officer", n, "--passphrase-file", f"{n}={cards / (n + '.pass')}")), cwd=root)
    secrets = tuple(p.read_text().strip() for p in sorted(cards.glob("*.pass")))
    signer = write_contract_signer(idle / "exports" / "demo-api" / "2", root / "signer.json")
    pin = demo_pin(idle)
    token_pin = write_secret(root / "token.pin", pin)
    # The PIN is checked like the passphrases: no command may ever write it out.
    return Bases(idle, opened, four, plan.group(1), done.group(1), dave, pack,
                 (*secrets, pin.decode()), signer, token_pin)


def _probe_read_only() -> str:
    """How to make a folder read-only here: "chmod", "mount", "chattr", or why none works."""
    if os.geteuid() != 0:
        return "chmod"
    with tempfile.TemporaryDirectory() as folder:
        script = (f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} "
                  f"&& ! touch {folder}/x 2>/dev/null")
        if shutil.which("unshare") and subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                capture_output=True, check=False).returncode == 0:
            return "mount"
        probe = Path(folder) / "probe"
        probe.mkdir()
        if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(probe)],
                                                     capture_output=True).returncode == 0:
            try:
                (probe / "x").touch()
            except OSError:
                return "chattr"
            finally:
                subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
    return ("skip: running as root, where chmod does not stop writes, and neither a read-only "
            "bind mount (unshare -m + mount) nor chattr +i works here")


@pytest.fixture(scope="module")
def read_only_method() -> str:
    return _probe_read_only()


# --- running one cell ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    stdout: bytes
    stderr: bytes

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def run(argv: list[str], condition: Condition, *, home: Path, read_only: list[Path],
        method: str, cwd: Path, extra_env: Mapping[str, str]) -> Outcome:
    """Run `ceremony ARGV` under `condition`; the folders in `read_only` are made read-only."""
    script = []
    if method == "mount":
        for folder in read_only:
            q = shlex.quote(str(folder))
            script.append(f"mount --bind {q} {q} && mount -o remount,bind,ro {q} || exit 97")
    script.append('exec "$@"' + (" 0<&-" if condition.stdin == "closed" else ""))
    command = ["sh", "-c", "\n".join(script), "sh", CEREMONY, *argv]
    if method == "mount" and read_only:
        command = ["unshare", "-m", "--propagation", "private", *command]
    stdin = subprocess.PIPE if condition.stdin == "text" else subprocess.DEVNULL
    if method in ("chmod", "chattr"):
        _lock(read_only, method, on=True)
    stdout_fd: int | None = None
    try:
        if condition.stdout == "closed":
            read_end, stdout_fd = os.pipe()
            os.close(read_end)
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(
                command, stdin=stdin, stdout=stdout_fd or subprocess.PIPE, stderr=stderr,
                env=_env(home, {**extra_env, **condition.env}), cwd=cwd, start_new_session=True)
            if stdout_fd is not None:
                os.close(stdout_fd)
                stdout_fd = None
            try:
                if condition.stdout == "cut":
                    if proc.stdin is not None:
                        proc.stdin.write(STDIN_TEXT)
                        proc.stdin.close()
                    assert proc.stdout is not None
                    out = proc.stdout.readline()
                    proc.stdout.close()  # the reader leaves, like `head -n 1`
                    proc.wait(timeout=TIMEOUT)
                else:
                    out, _ = proc.communicate(
                        STDIN_TEXT if condition.stdin == "text" else None, timeout=TIMEOUT)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            stderr.seek(0)
            return Outcome(proc.returncode, out or b"", stderr.read())
    finally:
        if stdout_fd is not None:
            os.close(stdout_fd)
        if method in ("chmod", "chattr"):
            _lock(read_only, method, on=False)


def _lock(folders: list[Path], method: str, *, on: bool) -> None:
    for folder in folders:
        if method == "chattr":
            subprocess.run(["chattr", "-R", "+i" if on else "-i", str(folder)], check=True)
            continue
        for path in [folder, *folder.rglob("*")]:
            mode = path.stat().st_mode
            write = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
            os.chmod(path, (mode & ~write) if on else (mode | stat.S_IWUSR))


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in LOCK_RECORDS}


# --- the matrix ------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "kind", "column"), list(_cells()))
def test_matrix(key: tuple[str, ...], kind: str, column: Column, bases: Bases,
                read_only_method: str, tmp_path: Path) -> None:
    row = ROWS[key]
    condition = column.merged()
    if condition.read_only and read_only_method.startswith("skip"):
        pytest.skip(read_only_method[len("skip: "):])
    home = tmp_path / "home"
    home.mkdir()
    ws = clone(row_base(bases, row), tmp_path / "ws") if row.base else tmp_path / "no-ws"
    new, out = tmp_path / "new", tmp_path / "out"
    extra_env: dict[str, str] = {}
    places = {"ws": ws, "cards": bases.cards, "new": new, "out": out, "plan": bases.plan,
              "done": bases.done, "dave": bases.dave, "pack": bases.pack,
              "bundle": bases.idle / "exports" / "demo-api" / "2" / "jwks.jwt",
              "trust": bases.idle / "exports" / "bundle-signing-key.jwk",
              "token": "none", "pin": tmp_path / "pin", "signer": bases.signer,
              "tokenpin": bases.token_pin}
    argv_template = row.works if kind == "works" else row.refused
    assert argv_template is not None
    if kind == "works" and key == ("init",):
        token = make_token(tmp_path / "token", f"env-{uuid.uuid4().hex[:8]}")
        places["token"] = token.label
        Path(places["pin"]).write_text(TEST_USER_PIN)
        extra_env["SOFTHSM2_CONF"] = str(token.conf)
    argv = [part.format(**{k: str(v) for k, v in places.items()}) for part in argv_template]
    read_only = [p for name, p in (("home", home), ("workspace", ws))
                 if name in condition.read_only.split(",") and p.exists()]
    before = tree_hashes(ws) if row.base else {}

    result = run(argv, condition, home=home, read_only=read_only, method=read_only_method,
                 cwd=tmp_path, extra_env=extra_env)

    assert result.status != 97, "the read-only bind mount failed"
    check_invariants(result, condition, bases)
    ro_workspace = "workspace" in condition.read_only and row.base is not None
    errors = [line for line in result.err.splitlines() if line.startswith("ceremony: error:")]
    if kind == "works":
        if ro_workspace:
            assert result.status == ExitCode.FAILED, result.err
            assert "read-only" in errors[0] and "damaged" not in errors[0], errors
        else:
            expected = set(row.works_status)
            if condition.stdout == "closed":  # every command writes to stdout when it works
                expected = {ExitCode.OUTPUT_CLOSED} | (expected - {ExitCode.OK})
            elif condition.stdout == "cut":
                expected |= {ExitCode.OUTPUT_CLOSED}
            assert result.status in expected, (result.status, result.err[-3000:])
    else:
        assert result.status in (ExitCode.FAILED, ExitCode.USAGE), result.err[-3000:]
        assert len(errors) == 1, result.err
        if not ro_workspace:
            assert row.refusal in errors[0], errors[0]
        assert not new.exists(), "a refused command created its target"
    succeeded = result.status in (ExitCode.OK, ExitCode.OUTPUT_CLOSED)
    if row.base and not (kind == "works" and row.mutating and succeeded):
        assert tree_hashes(ws) == before, "the workspace changed"


def row_base(bases: Bases, row: Row) -> Path:
    return {"idle": bases.idle, "open": bases.open, "four": bases.four}[row.base or "idle"]


def check_invariants(result: Outcome, condition: Condition, bases: Bases) -> None:
    assert result.status in ALLOWED, (result.status, result.err[-3000:])
    for marker in ("Traceback", "Warning:", "Exception ignored"):
        assert marker not in result.err, result.err[-3000:]
    errors = [line for line in result.err.splitlines() if line.startswith("ceremony: error:")]
    assert len(errors) <= 1, result.err
    if result.status == ExitCode.USAGE:
        assert len(errors) == 1, result.err
    both = result.stdout + result.stderr
    assert b"\x1b" not in both, "an escape sequence was written"
    for secret in (*bases.passphrases, "hunter2"):
        assert secret.encode() not in both, "a passphrase was written out"
    if condition.env.get("LC_ALL") == "C":
        assert both.isascii(), both[:300]


# --- prompting on a real terminal -------------------------------------------------------------


def _approve_on_a_terminal(bases: Bases, tmp_path: Path, keys: bytes) -> tuple[int, str, Path]:
    ws = clone(bases.open, tmp_path / "ws")
    before = tree_hashes(ws)
    session = PtySession([CEREMONY, "approve", bases.plan, "--officer", "carol", "--card",
                          f"carol={bases.cards / 'carol.card'}", "--workspace", str(ws),
                          "--yes"],
                         env=_env(tmp_path), cwd=tmp_path)
    try:
        session.read_until(b"passphrase for carol's card: ")
        assert not session.echo_on()
        session.send(keys)
        status = session.wait()
    finally:
        session.kill()
    changed = tree_hashes(ws) != before
    assert not changed or status == 0
    return status, session.output.decode("utf-8", "replace"), ws


def test_a_passphrase_typed_on_the_terminal_is_not_echoed(bases: Bases, tmp_path: Path) -> None:
    secret = (bases.cards / "carol.pass").read_text().strip()
    status, output, _ = _approve_on_a_terminal(bases, tmp_path, secret.encode() + b"\n")
    assert status == 0, output
    assert "carol signed plan" in output and secret not in output


@pytest.mark.parametrize(("keys", "status", "line"), [
    (b"\x04", ExitCode.FAILED, "ceremony: error: input ended (Ctrl-D)"),
    (b"\x03", ExitCode.INTERRUPTED, "ceremony: interrupted"),
], ids=["ctrl-d", "ctrl-c"])
def test_leaving_the_prompt_is_one_line_and_changes_nothing(
        bases: Bases, tmp_path: Path, keys: bytes, status: int, line: str) -> None:
    got, output, _ = _approve_on_a_terminal(bases, tmp_path, keys)
    assert got == status, output
    assert line in output and "Traceback" not in output

"""Bad input to the ceremony commands: one clear error line, the right exit code, no change.

Every case runs the real CLI in a subprocess against a copy of a demo workspace (its own
SoftHSM2 token). Each must exit 1 (2 for usage errors) with exactly one `ceremony: error:` line
and no traceback, and change nothing but the ledger's record of the refusal: only
`ceremony.step.failed` / `ceremony.approval_refused` / `ceremony.execution_refused` entries
may be added, and the exports,
the sealed PIN and the token's objects stay as they were.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import (
    FAST_KDF,
    PYTHON,
    _env,
    after,
    assert_one_error,
    cli,
    clone,
    ledger_entries,
    ledger_rows,
    make_demo,
    ok,
    set_config,
    sha256_tree,
    status,
)
from tests.softhsm import P11KitServer

pytestmark = pytest.mark.hsm

ALLOWED_NEW = {"ceremony.step.failed", "ceremony.approval_refused",
               "ceremony.execution_refused", "ceremony.unlock_failed"}
"""Refusals the ledger records for the auditor (never with secret material)."""
OFFICERS = ("--officer", "alice", "--officer", "bob")


@dataclass(frozen=True)
class Approved:
    root: Path
    plan_id: str
    now: str
    expires_at: str


@pytest.fixture(scope="module")
def approved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Approved]:
    """A demo workspace with an approved, not yet executed, quarterly-rotation plan."""
    base = tmp_path_factory.mktemp("bad-input")
    root = clone(make_demo(base / "demo"), base / "approved")
    now = after(root, 91)
    plan = json.loads(ok(root, "plan", "quarterly-rotation", "--now", now, "--json"))
    for officer in ("alice", "bob"):
        ok(root, "approve", plan["plan_id"], "--officer", officer, "--now", now)
    yield Approved(root, plan["plan_id"], now, plan["expires_at"])


@pytest.fixture
def ws(approved: Approved, tmp_path: Path) -> Path:
    return clone(approved.root, tmp_path / "ws")


def _snapshot(ws: Path) -> tuple[list[tuple[int, str]], dict[str, str]]:
    rows = [(r.seq, r.type) for r in ledger_rows(ws)]
    files = {**{f"exports/{k}": v for k, v in sha256_tree(ws / "exports").items()},
             **{f"tokens/{k}": v for k, v in sha256_tree(ws / "softhsm" / "tokens").items()},
             **sha256_tree_of(ws, "pin.sealed", "ceremony.toml", "policy.toml")}
    return rows, files


def sha256_tree_of(ws: Path, *names: str) -> dict[str, str]:
    import hashlib

    return {n: hashlib.sha256((ws / n).read_bytes()).hexdigest() for n in names}


def _refused(ws: Path, run: Callable[[], subprocess.CompletedProcess[str]], *,
             code: int | tuple[int, ...] = 1,
             contains: str | None = None, allow_files: set[str] | None = None) -> str:
    rows, files = _snapshot(ws)
    line = assert_one_error(run(), code, contains)
    after_rows, after_files = _snapshot(ws)
    assert after_rows[: len(rows)] == rows
    added = {t for _, t in after_rows[len(rows):]}
    assert added <= ALLOWED_NEW, f"the refusal wrote {added - ALLOWED_NEW}"
    changed = {k for k in files.keys() | after_files.keys() if files.get(k) != after_files.get(k)}
    assert changed <= (allow_files or set()), f"files changed: {sorted(changed)}"
    return line


def test_unknown_script(ws: Path, approved: Approved) -> None:
    _refused(ws, lambda: cli(ws, "plan", "no-such-ceremony", "--now", approved.now),
             code=(1, 2), contains="no-such")


def test_malformed_script_file(ws: Path, approved: Approved, tmp_path: Path) -> None:
    """A script is named, never a path; a malformed workspace script is refused by name (and a
    workspace script that is not recorded refuses everything: tests/security)."""
    bad = tmp_path / "broken.toml"
    bad.write_text('[script]\nname = "broken\nclass = routine\n[[steps]]\naction = 3\n')
    _refused(ws, lambda: cli(ws, "plan", str(bad), "--now", approved.now), code=(1, 2),
             contains="scripts are named")
    (ws / "ceremonies").mkdir()
    (ws / "ceremonies" / "odd.toml").write_text(
        '[script]\nname = "odd"\nclass = "routine"\ndescription = "x"\n\n'
        '[[steps]]\naction = "format_the_disk"\n')
    _refused(ws, lambda: cli(ws, "plan", "odd", "--now", approved.now),
             contains="script odd")


def test_expired_plan(ws: Path, approved: Approved) -> None:
    late = approved.expires_at
    _refused(ws, lambda: cli(ws, "approve", approved.plan_id, "--officer", "carol",
                             "--now", late), contains="expired")
    _refused(ws, lambda: cli(ws, "execute", approved.plan_id, *OFFICERS, "--now", late),
             contains="expired")


def test_wrong_passphrase(ws: Path, approved: Approved, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-alices-passphrase-at-all\n")
    _refused(ws, lambda: cli(ws, "execute", approved.plan_id, *OFFICERS,
                             "--passphrase-file", f"alice={wrong}", "--now", approved.now))
    failed = [e for e in ledger_entries(ws) if e["type"] == "ceremony.unlock_failed"]
    assert [(e["data"]["officer"], e["data"]["plan_id"]) for e in failed] == [
        ("alice", approved.plan_id)]
    assert "not-alices" not in json.dumps(failed)


def test_too_few_officers(ws: Path, approved: Approved) -> None:
    _refused(ws, lambda: cli(ws, "execute", approved.plan_id, "--officer", "alice",
                             "--now", approved.now))


def test_officer_who_did_not_approve(ws: Path, approved: Approved) -> None:
    line = _refused(ws, lambda: cli(ws, "execute", approved.plan_id, "--officer", "alice",
                                    "--officer", "carol", "--now", approved.now))
    assert "carol" in line


def test_missing_token(ws: Path, approved: Approved) -> None:
    """The token is unplugged (its SoftHSM2 folder moved away): one line naming the token."""
    tokens = ws / "softhsm" / "tokens"
    away = ws / "softhsm" / "unplugged"
    tokens.rename(away)
    tokens.mkdir()
    moved = {f"tokens/{name}" for name in sha256_tree(away)}
    _refused(ws, lambda: cli(ws, "execute", approved.plan_id, *OFFICERS, "--now", approved.now),
             contains="demo-token", allow_files=moved)


def test_token_label_edited_is_a_configuration_change(ws: Path, approved: Approved) -> None:
    set_config(ws, r'^token_label = ".*"$', 'token_label = "no-such-token"')
    _refused(ws, lambda: cli(ws, "execute", approved.plan_id, *OFFICERS, "--now", approved.now),
             contains="config-change", allow_files={"ceremony.toml"})


def test_plan_already_executed(ws: Path, approved: Approved) -> None:
    ok(ws, "execute", approved.plan_id, *OFFICERS, "--now", approved.now)
    _refused(ws, lambda: cli(ws, "execute", approved.plan_id, *OFFICERS, "--now", approved.now),
             contains="executed")
    _refused(ws, lambda: cli(ws, "approve", approved.plan_id, "--officer", "carol",
                             "--now", approved.now), contains="executed")


def test_second_open_plan_for_the_same_keyset(ws: Path, approved: Approved) -> None:
    _refused(ws, lambda: cli(ws, "plan", "quarterly-rotation", "--now", approved.now),
             contains=approved.plan_id)
    _refused(ws, lambda: cli(ws, "plan", "export-only", "--keyset", "demo-api",
                             "--now", approved.now), contains="still open")


def test_now_in_a_production_workspace(ws: Path, approved: Approved) -> None:
    set_config(ws, r"^rehearsal = true$", "rehearsal = false")
    # Production has no demo cards: each officer brings card and passphrase file.
    cards = [arg for name in ("alice", "bob", "carol") for arg in (
        "--card", f"{name}={ws / 'demo-cards' / (name + '.card')}",
        "--passphrase-file", f"{name}={ws / 'demo-cards' / (name + '.pass')}")]
    for args in (("plan", "export-only", "--now", approved.now),
                 ("execute", approved.plan_id, *OFFICERS, "--officer", "carol", *cards,
                  "--now", approved.now),
                 ("approve", approved.plan_id, "--officer", "carol", *cards[8:],
                  "--now", approved.now)):
        _refused(ws, lambda a=args: cli(ws, *a), contains="rehearsal",  # type: ignore[misc]
                 allow_files={"ceremony.toml"})


def test_clock_going_backwards(ws: Path, approved: Approved) -> None:
    earlier = status(ws)["keysets"][0]["keys"][0]["created_at"]
    for args in (("plan", "export-only", "--now", earlier),
                 ("execute", approved.plan_id, *OFFICERS, "--now", earlier),
                 ("resume", *OFFICERS, "--now", earlier)):
        _refused(ws, lambda a=args: cli(ws, *a), contains="earlier")  # type: ignore[misc]


def test_usage_errors_exit_2(ws: Path, approved: Approved) -> None:
    _refused(ws, lambda: cli(ws, "execute", approved.plan_id, "--officer", "alice",
                             "--officer", "alice", "--now", approved.now), code=2)
    _refused(ws, lambda: cli(ws, "run", "quarterly-rotation", "--now", approved.now), code=2)
    _refused(ws, lambda: cli(ws, "plan", "quarterly-rotation", "--now", "next tuesday"),
             code=(1, 2))


def test_interrupted_execute_is_refused_and_resume_is_the_way(ws: Path,
                                                              approved: Approved) -> None:
    crashed = cli(ws, "execute", approved.plan_id, *OFFICERS, "--now", approved.now,
                  env={"CEREMONY_UNSAFE_CRASH_AT": "effect:4"})
    assert crashed.returncode == -9
    _refused(ws, lambda: cli(ws, "execute", approved.plan_id, *OFFICERS, "--now", approved.now),
             contains="resume")
    _refused(ws, lambda: cli(ws, "resume", "--officer", "alice", "--officer", "carol",
                             "--now", approved.now), contains="carol")
    assert "completed" in ok(ws, "resume", *OFFICERS, "--now", approved.now)


# --- the network HSM dies in the middle of a step ------------------------------------------

NET_POLICY = """\
[keysets.net-api]
issuer = "https://net.example/api"
alg = "RS256"
rsa_bits = 4096
cryptoperiod = "90d"
max_token_lifetime = "1h"
clock_skew = "1m"
margin = "1d"
destruction_wait = "30d"
bundle_lifetime = "120d"

[[keysets.net-api.consumers]]
name = "envoy-edge"
type = "envoy"
cache_lifetime = "10m"
"""


@pytest.mark.network_hsm
def test_hsm_killed_mid_step_then_restarted_and_resumed(p11kit_server: P11KitServer,
                                                        tmp_path: Path) -> None:
    """A workspace on the session's SoftHSM2 behind `p11-kit server`; the server and its
    connections are killed while an RSA-4096 key is being generated (long enough to land
    inside the step). The console reports one line and exits 1; once the server is back,
    `ceremony resume` completes the ceremony and the token matches the ledger."""
    from console.quorum.cards import create_card

    cards = tmp_path / "cards"
    cards.mkdir()
    args: list[str] = []
    for name in ("alice", "bob", "carol"):
        passphrase = f"{name}-network-rehearsal-passphrase-7"
        (cards / f"{name}.card").write_bytes(create_card(
            name, passphrase, now=datetime.now(UTC), unsafe_kdf_cost_for_tests=FAST_KDF))
        (cards / f"{name}.pass").write_text(passphrase + "\n")
    officers = [a for name in ("alice", "bob") for a in (
        "--officer", name, "--card", f"{name}={cards / (name + '.card')}",
        "--passphrase-file", f"{name}={cards / (name + '.pass')}")]
    for name in ("alice", "bob", "carol"):
        args += ["--officer-card", str(cards / f"{name}.card")]
    (tmp_path / "policy.toml").write_text(NET_POLICY)
    (tmp_path / "pin").write_text(p11kit_server.token.user_pin + "\n")
    ws = tmp_path / "net-ws"
    env = p11kit_server.env()
    ok(None, "--workspace", str(ws), "init", "--org", "net", "--module", "p11-kit",
       "--token-label", p11kit_server.token.label, *args, "--quorum", "routine=2/3",
       "--quorum", "destructive=3/3", "--quorum", "emergency=2/3", "--pin-file",
       str(tmp_path / "pin"), "--rehearsal", "--policy", str(tmp_path / "policy.toml"), env=env)

    proc = subprocess.Popen([PYTHON, "-m", "console", "run", "genesis", "--yes", *officers],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env({**env, "CEREMONY_WORKSPACE": str(ws)}), cwd=ws)
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if re.match(r"… \d+/\d+ generate RS256", line):
            time.sleep(0.2)  # inside C_GenerateKeyPair of a 4096-bit key
            p11kit_server.kill_connections()
            break
    else:
        pytest.fail("the ceremony never reached an RSA generation:\n" + "".join(lines))
    rest = proc.communicate(timeout=60)
    failed = subprocess.CompletedProcess(proc.args, proc.returncode, rest[0],
                                         "".join(lines) + rest[1])
    assert_one_error(failed, 1)
    types = [r.type for r in ledger_rows(ws)]
    assert "ceremony.step.failed" in types and "ceremony.completed" not in types

    p11kit_server.start()  # the operator brings the network HSM back
    resumed = ok(ws, "resume", *officers, env=env)
    assert "completed" in resumed
    explained = cli(ws, "reconcile", "--json", env=env)
    assert explained.returncode == 0, explained.stdout + explained.stderr
    assert json.loads(explained.stdout)["clean"]
    report = status(ws)
    states = sorted(k["state"] for k in report["keysets"][0]["keys"])
    assert states == ["active", "published"]

"""Shared helpers for the end-to-end ceremony tests: demo workspaces, CLI subprocesses, checks.

SoftHSM2 reads SOFTHSM2_CONF once per process and the test session already loaded its own, so
every command against a demo workspace (which has its own token) runs in a subprocess. Checks
that need the token logged in (the private-object inventory, signing a JWT with the active key)
run this module as a script in a subprocess: `python -m tests.integration.ceremony_helpers
inspect|sign WORKSPACE ...`, which opens the sealed PIN with alice's and bob's demo cards.
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
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.softhsm import P11KitServer

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
FAST_KDF = 2**10
"""scrypt cost of the cards of the fast demo workspaces (production cost is ~0.3 s per unlock)."""
CRASH_VARIABLE = "CEREMONY_UNSAFE_CRASH_AT"
INTERRUPT_VARIABLE = "CEREMONY_UNSAFE_INTERRUPT_AT"
TIMEOUT = 120


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in (CRASH_VARIABLE, INTERRUPT_VARIABLE, "CEREMONY_WORKSPACE",
                        "SOFTHSM2_CONF")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


CARD_COMMANDS = ("run", "approve", "execute", "resume", "enroll", "revoke")


def demo_officer_args(ws: Path, args: tuple[str, ...]) -> tuple[str, ...]:
    """What an officer at a rehearsal console types, given as options: the demo card's
    passphrase file for every --officer without one, and --yes for the digest words (a
    rehearsal-only option) unless the test gives --words itself."""
    if not any(command in args for command in CARD_COMMANDS):
        return args
    names = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--officer"]
    given = {args[i + 1].split("=", 1)[0] for i, a in enumerate(args[:-1])
             if a == "--passphrase-file"}
    extra: list[str] = []
    for name in names:
        secret = ws / "demo-cards" / f"{name}.pass"
        if name not in given and secret.is_file():
            extra += ["--passphrase-file", f"{name}={secret}"]
    if "--words" not in args and "--yes" not in args:
        extra.append("--yes")
    return (*args, *extra)


def cli(ws: Path | None, *args: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `ceremony ARGS` in a subprocess against workspace `ws` (via CEREMONY_WORKSPACE);
    officers' commands get the demo's passphrase files and --yes (see `demo_officer_args`)."""
    extra = dict(env or {})
    if ws is not None:
        extra["CEREMONY_WORKSPACE"] = str(ws)
        args = demo_officer_args(ws, args)
    return subprocess.run([PYTHON, "-m", "console", *args], capture_output=True, text=True,
                          env=_env(extra), cwd=cwd or ws or REPO, timeout=TIMEOUT, check=False)


def ok(ws: Path | None, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a command that must succeed; return its stdout."""
    result = cli(ws, *args, env=env)
    assert result.returncode == 0, (
        f"`ceremony {' '.join(args)}` exited {result.returncode}\n"
        f"stdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-4000:]}")
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def assert_one_error(result: subprocess.CompletedProcess[str],
                     code: int | tuple[int, ...] = 1, contains: str | None = None) -> str:
    """The CLI failed cleanly: exit `code` (or one of them), one `ceremony: error:` line, no
    traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("ceremony: error:")]
    codes = code if isinstance(code, tuple) else (code,)
    assert result.returncode in codes, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1, result.stderr
    if contains is not None:
        assert contains.lower() in errors[0].lower(), errors[0]
    return errors[0]


# --- workspaces ----------------------------------------------------------------------------


def keyset_toml(name: str, consumer: str = "envoy-edge") -> str:
    """policy.toml's table of one more ES256 keyset with the demo's timings, served to one
    Envoy consumer (for workspaces with several keysets)."""
    return f"""
[keysets.{name}]
issuer = "https://demo.example/{name}"
alg = "ES256"
cryptoperiod = "90d"
max_token_lifetime = "1h"
clock_skew = "1m"
margin = "1d"
destruction_wait = "30d"
bundle_lifetime = "120d"

[[keysets.{name}.consumers]]
name = "{consumer}"
type = "envoy"
cache_lifetime = "10m"
"""


def make_demo(root: Path, *, fast: bool = True) -> Path:
    """A demo workspace at `root` (genesis 91 days back, one quarterly rotation now).

    `fast` makes the officers' cards with a low scrypt cost by calling the demo builder
    directly (in a subprocess: it loads the workspace's own SoftHSM2); otherwise it runs
    `ceremony demo --headless`, exactly as a user would.
    """
    if not fast:
        ok(None, "--workspace", str(root), "demo", "--headless")
        return root
    code = ("import sys; from pathlib import Path; from console.ceremony.demo import run_demo; "
            "run_demo(Path(sys.argv[1]), progress=lambda m: None, "
            f"unsafe_kdf_cost_for_tests={FAST_KDF})")
    subprocess.run([PYTHON, "-c", code, str(root)], env=_env(), cwd=REPO, check=True,
                   capture_output=True, timeout=TIMEOUT)
    return root


def clone(source: Path, target: Path) -> Path:
    """Copy a demo workspace; its SoftHSM2 config must then name the copy's token folder."""
    shutil.copytree(source, target, symlinks=True)
    conf = target / "softhsm" / "softhsm2.conf"
    text = conf.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^directories\.tokendir = .*$",
                  f"directories.tokendir = {(target / 'softhsm' / 'tokens').resolve()}", text)
    conf.write_text(text, encoding="utf-8")
    return target


def set_config(ws: Path, pattern: str, replacement: str) -> None:
    path = ws / "ceremony.toml"
    text = path.read_text(encoding="utf-8")
    new = re.sub(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert new != text, f"{pattern!r} not found in ceremony.toml"
    path.write_text(new, encoding="utf-8")


def serve_over_p11kit(ws: Path, socket_dir: Path) -> P11KitServer:
    """Turn a demo workspace into a network-HSM one: its own SoftHSM2 token is served by a
    `p11-kit server` (started here, with the workspace's SOFTHSM2_CONF), and ceremony.toml
    names the p11-kit client instead (`module = "p11-kit"`, no `softhsm_conf`). Every command
    then needs the server's `env()` (P11_KIT_SERVER_ADDRESS)."""
    from tests.softhsm import SOFTHSM_MODULE_CANDIDATES, SoftHsmToken, find_first

    module = find_first(SOFTHSM_MODULE_CANDIDATES)
    assert module is not None, "SoftHSM2 is not installed"
    label = re.search(r'(?m)^token_label = "(.*)"$', (ws / "ceremony.toml").read_text())
    assert label is not None, "the workspace names no token_label"
    set_config(ws, r'^module = "softhsm"$', 'module = "p11-kit"')
    set_config(ws, r'^softhsm_conf = .*\n', "")
    # A new module is a configuration change: the officers record it under the quorum.
    ok(ws, "run", "config-change", "--now", after(ws), "--officer", "alice", "--officer", "bob",
       "--officer", "carol")
    token = SoftHsmToken(conf=(ws / "softhsm" / "softhsm2.conf").resolve(), module=module,
                         label=label.group(1))
    server = P11KitServer(token, socket_dir)
    server.start()
    return server


# --- reading state -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    type: str
    time: str
    ceremony: str | None


def ledger_rows(ws: Path) -> list[Row]:
    """The ledger's entries, read with sqlite3 directly (not through the console)."""
    uri = f"file:{ws / 'ledger.sqlite'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        return [Row(int(s), str(t), str(tm), c) for s, t, tm, c in
                db.execute("SELECT seq, type, time, ceremony FROM entries ORDER BY seq")]


def ledger_entries(ws: Path) -> list[dict[str, Any]]:
    """The ledger's entries as JSON objects, parsed from the stored bytes with sqlite3 and
    `json` (not through the console), for checks that replay the ledger independently."""
    uri = f"file:{ws / 'ledger.sqlite'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        return [json.loads(bytes(raw)) for (raw,) in
                db.execute("SELECT raw FROM entries ORDER BY seq")]


def last_time(ws: Path) -> datetime:
    return datetime.fromisoformat(ledger_rows(ws)[-1].time.replace("Z", "+00:00"))


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def after(ws: Path, days: float = 0, seconds: float = 60) -> str:
    """A rehearsal time `days` (plus a minute) after the ledger's last entry."""
    return stamp(last_time(ws) + timedelta(days=days, seconds=seconds))


def status(ws: Path, now: str | None = None, *,
           env: dict[str, str] | None = None) -> dict[str, Any]:
    args = ["status", "--json"] + (["--now", now] if now else [])
    report: dict[str, Any] = json.loads(ok(ws, *args, env=env))
    return report


def keyset(report: dict[str, Any], name: str = "demo-api") -> dict[str, Any]:
    found: dict[str, Any] = next(k for k in report["keysets"] if k["name"] == name)
    return found


def keys_in(report: dict[str, Any], state: str, name: str = "demo-api") -> list[dict[str, Any]]:
    return [k for k in keyset(report, name)["keys"] if k["state"] == state]


def export_dirs(ws: Path, name: str = "demo-api") -> list[Path]:
    base = ws / "exports" / name
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if not p.name.startswith(".")),
                  key=lambda p: int(p.name))


def jwks_kids(export: Path) -> set[str]:
    return {str(k["kid"]) for k in json.loads((export / "jwks.json").read_text())["keys"]}


def check_manifest(export: Path) -> None:
    """Every visible export folder's MANIFEST is accepted by coreutils `sha256sum -c`."""
    manifest = export / "MANIFEST.sha256"
    assert manifest.is_file(), f"{export} has no MANIFEST.sha256"
    result = subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "MANIFEST.sha256"],
                            cwd=export, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{export}: {result.stdout}{result.stderr}"
    listed = {line.split("  ", 1)[1] for line in manifest.read_text().splitlines() if line}
    present = {str(p.relative_to(export)) for p in export.rglob("*")
               if p.is_file() and p.name != "MANIFEST.sha256"}
    assert present == listed, f"{export}: files not in the manifest: {present ^ listed}"


def verify_everything(ws: Path, out: Path, *, all_bundles: bool = False,
                      env: dict[str, str] | None = None) -> None:
    """A fresh audit pack verifies, the latest bundle (or every one) verifies against its
    predecessor, and every visible export folder is complete."""
    verify_audit(ws, out, env=env)
    verify_bundles(ws, all_bundles=all_bundles)


def verify_audit(ws: Path, out: Path, *, env: dict[str, str] | None = None) -> Path:
    """`ceremony audit export` a fresh pack into `out`, then `ceremony verify audit` it (offline,
    no workspace); return the pack."""
    pack = out / f"audit-{len(ledger_rows(ws))}"
    ok(ws, "audit", "export", "--out", str(pack), env=env)
    ok(None, "verify", "audit", str(pack))
    return pack


def verify_bundles(ws: Path, *, all_bundles: bool = False, name: str = "demo-api") -> None:
    """Every visible export folder is complete (MANIFEST), and the newest bundle (or every one,
    in order) passes `ceremony verify bundle --previous` against its predecessor, each as of its
    own issue time."""
    trust = ws / "exports" / "bundle-signing-key.jwk"
    exports = export_dirs(ws, name)
    for export in exports:
        check_manifest(export)
    chain = exports if all_bundles else exports[-2:]
    previous: Path | None = None
    for i, export in enumerate(chain):
        if not all_bundles and len(chain) == 2 and i == 0:
            previous = export
            continue
        args = ["verify", "bundle", str(export / "jwks.jwt"), "--trust", str(trust)]
        if previous is not None:
            args += ["--previous", str(previous / "jwks.jwt")]
        # Each bundle is checked as of a time it was valid: its own issue time.
        claims = _jwt_claims((export / "jwks.jwt").read_text().strip())
        args += ["--now", stamp(datetime.fromtimestamp(int(claims["iat"]), tz=_utc()))]
        ok(None, *args)
        previous = export


def _utc() -> Any:
    from datetime import UTC

    return UTC


def _jwt_claims(token: str) -> dict[str, Any]:
    import base64

    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return claims


def helper(ws: Path, command: str, *args: str,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run this module's logged-in `inspect`/`sign` side in a subprocess (any outcome)."""
    return subprocess.run([PYTHON, "-m", "tests.integration.ceremony_helpers", command,
                           str(ws), *args], capture_output=True, text=True, env=_env(env),
                          cwd=REPO, timeout=TIMEOUT, check=False)


def run_helper(ws: Path, command: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = helper(ws, command, *args, env=env)
    assert result.returncode == 0, f"helper {command}: {result.stderr[-3000:]}"
    return result.stdout


def inspect(ws: Path, officers: tuple[str, ...] = ("alice", "bob"), *,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    """Logged-in inventory: objects per CKA_ID, a reconciliation seeing private keys, and the
    ledger's keys (every keyset, the bundle-signing one too) with their states."""
    report: dict[str, Any] = json.loads(run_helper(ws, "inspect", *officers, env=env))
    return report


def sign_jwt(ws: Path, kid: str, claims: dict[str, Any], *,
             env: dict[str, str] | None = None) -> str:
    """A JWT signed inside the workspace's HSM by the key `kid`."""
    return run_helper(ws, "sign", kid, json.dumps(claims), env=env).strip()


def sha256_tree(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


# --- subprocess side (runs with the workspace's own SOFTHSM2_CONF) --------------------------


def _logged_in(ws_path: Path, officers: list[str]) -> Any:
    from console.quorum.cards import unlock_card
    from console.quorum.pin_gate import open_pin
    from console.workspace import Workspace

    ws = Workspace.open(ws_path)
    cards = []
    for name in officers:
        card, secret = ws.demo_card(name) or (ws_path / f"{name}.card", ws_path / f"{name}.pass")
        cards.append(unlock_card(card.read_bytes(), secret.read_text().rstrip("\r\n")))
    pin = open_pin(ws.sealed_pin_path.read_bytes(), cards)
    ws.hsm().login(pin)
    return ws


def _inspect_main(ws_path: Path, officers: list[str]) -> None:
    from console.ceremony.journal import replay_plans
    from console.ceremony.reconcile import reconcile
    from console.lifecycle import replay

    ws = _logged_in(ws_path, officers)
    try:
        inventory = ws.hsm().inventory()
        entries = list(ws.ledger.entries())
        report = reconcile(inventory, replay(entries).keysets, replay_plans(entries),
                           private_visible=True)
        objects: dict[str, list[list[str]]] = {}
        for obj in inventory:
            objects.setdefault(obj.cka_id.hex(), []).append([obj.object_class, obj.label])
        keys = [{"keyset": name, "kid": k.kid, "state": k.state.value, "cka_id": k.cka_id}
                for name, state in replay(entries).keysets.items() for k in state.keys]
        print(json.dumps({"objects": objects, "reconcile": report.to_json(), "keys": keys}))
    finally:
        ws.close()


def _sign_main(ws_path: Path, kid: str, claims_json: str) -> None:
    import base64

    from console.lifecycle import replay

    ws = _logged_in(ws_path, ["alice", "bob"])
    try:
        keys = [k for s in replay(ws.ledger.entries()).keysets.values() for k in s.keys
                if k.kid == kid]
        assert keys, f"no key {kid} in the ledger"
        key = keys[0]

        def b64(raw: bytes) -> str:
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
        signing_input = (b64(json.dumps(header).encode()) + "." + b64(claims_json.encode()))
        signature = ws.hsm().sign(bytes.fromhex(key.cka_id), key.alg, signing_input.encode())
        print(signing_input + "." + b64(signature))
    finally:
        ws.close()


if __name__ == "__main__":
    command, workspace, *rest = sys.argv[1:]
    if command == "inspect":
        _inspect_main(Path(workspace), rest)
    elif command == "sign":
        _sign_main(Path(workspace), rest[0], rest[1])
    else:
        raise SystemExit(f"unknown helper command {command}")

"""`ceremony demo`: a rehearsal workspace on a SoftHSM2 token made inside it.

Officers alice, bob and carol (routine quorum 2 of 3) get throwaway cards whose passphrases sit
next to them in `demo-cards/` — the one, clearly marked, exception to "no secret in the
workspace". Genesis runs on the rehearsal clock 91 days back (keyset `demo-api`, ES256), then one
quarterly rotation now, so the dashboard shows a real rollover: a retired key in its grace, an
active key, and a published successor.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from console.ceremony.officers import write_private_file
from console.ceremony.progress import LineProgress
from console.clock import wall_clock
from console.config import SOFTHSM_MODULE_PATHS
from console.errors import HsmError, WorkspaceError
from console.quorum.cards import create_card
from console.quorum.words import wordlist
from console.workspace import Workspace

OFFICERS = ("alice", "bob", "carol")
TOKEN_LABEL = "demo-token"
SOFTHSM_CONF = "softhsm/softhsm2.conf"

DEMO_POLICY = """\
# Demo policy: one ES256 keyset served to four gateways.
[keysets.demo-api]
issuer = "https://demo.example/api"
alg = "ES256"
cryptoperiod = "90d"
max_token_lifetime = "1h"
clock_skew = "1m"
margin = "1d"
destruction_wait = "30d"
bundle_lifetime = "120d"

[[keysets.demo-api.consumers]]
name = "envoy-edge"
type = "envoy"
cache_lifetime = "10m"

[[keysets.demo-api.consumers]]
name = "istio-mesh"
type = "istio"
cache_lifetime = "20m"

[[keysets.demo-api.consumers]]
name = "kong-partners"
type = "kong"
cache_lifetime = "5m"
install_delay = "3d"

[[keysets.demo-api.consumers]]
name = "nginx-plus"
type = "nginx"
cache_lifetime = "1h"
"""

CARDS_README = """\
THROWAWAY DEMO CARDS — NOT FOR PRODUCTION

These officer cards and their passphrases exist only so that the rehearsal demo can run
unattended. A real officer keeps their card on their own medium and their passphrase in their
head; neither ever enters a workspace.
"""


def run_demo(root: Path, *, progress: Callable[[str], None],
             unsafe_kdf_cost_for_tests: int | None = None) -> None:
    """Build the demo workspace at `root` and run its two ceremonies (a no-op if it exists).

    Raises:
        WorkspaceError: `root` holds something that is not a demo workspace.
        HsmError: SoftHSM2 is missing.
    """
    from console.ceremony.init import init_workspace
    from console.ceremony.session import Session

    if (root / "ceremony.toml").exists():
        if (root / "demo-cards").is_dir():
            progress(f"the demo workspace in {root} exists; delete it for a fresh demo")
            return
        raise WorkspaceError(f"{root} holds a workspace that is not a demo",
                             "give the demo its own folder with --workspace")
    if root.exists() and any(root.iterdir()):
        raise WorkspaceError(f"{root} is not empty", "give the demo an empty or new folder")
    softhsm_util = shutil.which("softhsm2-util")
    if softhsm_util is None or not any(Path(p).exists() for p in SOFTHSM_MODULE_PATHS):
        raise HsmError("SoftHSM2 is not installed",
                       "run `make demo`, which installs it, or apt install softhsm2")
    root.mkdir(parents=True, exist_ok=True)
    conf = _make_softhsm(root)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    # softhsm2-util takes PINs only as arguments: these two throwaway PINs are replaced by
    # random ones within the second (the user PIN by init, the SO PIN below).
    initial_pin = secrets.token_hex(8)
    so_pin = secrets.token_hex(8)
    progress("making the SoftHSM2 demo token")
    subprocess.run(
        [softhsm_util, "--init-token", "--free", "--label", TOKEN_LABEL,
         "--so-pin", so_pin, "--pin", initial_pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)}, check=True, capture_output=True,
    )
    cards = root / "demo-cards"
    cards.mkdir()
    (cards / "README.txt").write_text(CARDS_README, encoding="utf-8")
    now = wall_clock()
    genesis_at = now - timedelta(days=91)
    passphrases: dict[str, str] = {}
    for name in OFFICERS:
        passphrase = "-".join(secrets.choice(wordlist()) for _ in range(6))
        progress(f"making {name}'s demo card")
        data = create_card(name, passphrase, now=genesis_at,
                           unsafe_kdf_cost_for_tests=unsafe_kdf_cost_for_tests)
        write_private_file(cards / f"{name}.card", data)
        write_private_file(cards / f"{name}.pass", passphrase.encode("utf-8") + b"\n")
        passphrases[name] = passphrase
    policy = root / ".demo-policy.toml"
    policy.write_text(DEMO_POLICY, encoding="utf-8")
    ws = init_workspace(
        root, org="demo", module="softhsm", token_label=TOKEN_LABEL, token_serial=None,
        officer_cards=[cards / f"{n}.card" for n in OFFICERS],
        quorum=["routine=2/3", "destructive=3/3", "emergency=2/3"],
        current_pin=initial_pin.encode(), rehearsal=True, policy_file=policy,
        progress=progress, now=genesis_at, softhsm_conf=SOFTHSM_CONF,
    )
    policy.unlink()
    _forget_so_pin(ws, so_pin)
    sink = LineProgress(progress)
    source = _DemoCards(root / "demo-cards", passphrases)
    try:
        for script, when in (("genesis", genesis_at), ("quarterly-rotation", now)):
            progress(f"— {script} at {when.isoformat()} —")
            session = Session(ws, now=when)
            view = session.plan(script)
            progress(view.render())
            for name in ("alice", "bob"):
                approved = session.approve(view.plan_id, name, source, confirm=lambda _: None)
                progress(approved.message)
            progress(session.execute(view.plan_id, ["alice", "bob"], source, progress=sink))
            ws.close_hsm()
    finally:
        ws.close()


class _DemoCards:
    """The demo's throwaway cards and passphrases, as a `CardSource`."""

    def __init__(self, folder: Path, passphrases: dict[str, str]) -> None:
        self.folder = folder
        self.passphrases = passphrases

    def card_path(self, officer: str) -> Path:
        return self.folder / f"{officer}.card"

    def passphrase(self, officer: str, attempt: int) -> str:
        return self.passphrases[officer]


def _make_softhsm(root: Path) -> Path:
    tokens = root / "softhsm" / "tokens"
    tokens.mkdir(parents=True)
    conf = root / SOFTHSM_CONF
    conf.write_text(
        f"directories.tokendir = {tokens.resolve()}\n"
        "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
        encoding="utf-8",
    )
    return conf


def _forget_so_pin(ws: Workspace, so_pin: str) -> None:
    """Replace the demo token's SO PIN by a random one nobody keeps: a demo needs no SO."""
    ws.hsm().set_so_pin(so_pin.encode(), secrets.token_hex(16).encode())
    ws.close_hsm()

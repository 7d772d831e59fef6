"""TUI benchmarks (run by hand: `python -m tests.bench.bench_tui [--keysets N] [--entries N]
[--big N]`), reported as ratios against a baseline measured in the same run.

1. Time to the first painted dashboard on a workspace with 200 keysets and 100,000 ledger
   entries, vs a minimal Textual app (goal <= 1.3x); also the time until the keysets are loaded
   (the status worker replays the ledger).
2. Resident memory while scrolling a 1,000,000-entry ledger from top to bottom in pages
   (goal <= 200 MB).
Workspaces are built with software keys straight into a real ledger (no HSM needed).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from textual.app import App, ComposeResult
from textual.widgets import OptionList, Static

from console.exports import public_jwk
from console.ledger import Ledger
from console.lifecycle import jwk_thumbprint
from console.tui.app import CeremonyApp
from console.tui.backend import Backend
from console.tui.widgets.ledger_view import LedgerView
from console.workspace import Workspace
from tests.tui.snapshot_app import FIXTURE

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = """[keysets.{name}]
issuer = "https://bench.example/{name}"
alg = "ES256"
max_token_lifetime = "1h"

[[keysets.{name}.consumers]]
name = "edge"
type = "envoy"
cache_lifetime = "10m"
"""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_workspace(root: Path, keysets: int, entries: int) -> Path:
    root.mkdir(parents=True)
    shutil.copy(FIXTURE / "ceremony.toml", root / "ceremony.toml")
    names = [f"ks-{i:03d}" for i in range(keysets)]
    (root / "policy.toml").write_text("\n".join(POLICY.format(name=n) for n in names))
    from console.config import load_workspace_config

    origin = load_workspace_config(root / "ceremony.toml").origin
    ledger = Ledger.create(root / "ledger.sqlite", origin=origin,
                           checkpoint_file=root / ".checkpoint")
    batch: list[tuple[str, dict[str, object], datetime, str, str | None]] = []
    when = T0
    for i, name in enumerate(names):
        key = ec.derive_private_key(1000 + i, ec.SECP256R1()).public_key()
        jwk = public_jwk(key, "ES256")
        kid = jwk_thumbprint(jwk)
        batch.append(("key.generated", {"keyset": name, "kid": kid, "alg": "ES256",
                                        "label": f"{name}-1", "cka_id": f"{i:032x}",
                                        "purpose": "token", "jwk": jwk}, when, "console", None))
        for src, dst in (("generated", "published"), ("published", "active")):
            batch.append(("key.state_changed", {"keyset": name, "kid": kid, "from": src,
                                                "to": dst, "reason": "bench"},
                          when, "console", None))
    n = len(batch)
    while n < entries:
        when = T0 + timedelta(seconds=n)
        batch.append(("reconcile.finding", {"note": f"bench filler {n}"}, when, "console",
                      None))
        n += 1
        if len(batch) >= 20000:
            ledger.append_many(batch)
            batch = []
    if batch:
        ledger.append_many(batch)
    ledger.close()
    return root


class Minimal(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("hello")


async def first_paint(app: App[None], ready: object) -> float:
    start = time.perf_counter()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        painted = time.perf_counter() - start
        if callable(ready):
            while not ready(app):
                await pilot.pause(0.01)
    return painted


async def dashboard_times(root: Path) -> tuple[float, float]:
    start = time.perf_counter()
    ws = Workspace.open(root)
    app = CeremonyApp(Backend(ws), check_health=False)
    loaded: list[float] = []

    def ready(a: App[None]) -> bool:
        if a.screen.query(OptionList) and a.screen.query_one(OptionList).option_count:
            loaded.append(time.perf_counter() - start)
            return True
        return False

    painted = await first_paint(app, ready)
    ws.close()
    return painted + 0.0, loaded[0]


async def scroll_memory(root: Path) -> tuple[float, float, int]:
    ws = Workspace.open(root)
    app = CeremonyApp(Backend(ws), check_health=False)
    peak = 0.0
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("l")
        await app.workers.wait_for_complete()
        await pilot.pause()
        view = app.screen.query_one(LedgerView)
        before = rss_mb()
        step = max(view.total // 400, 1)
        for target in range(0, view.total, step):
            view.cursor = target
            await pilot.pause()
            await app.workers.wait_for_complete()
            peak = max(peak, rss_mb())
        pages = view.pages_loaded
    ws.close()
    return before, peak, pages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keysets", type=int, default=200)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        ws_root = build_workspace(Path(tmp) / "ws", args.keysets, args.entries)
        print(f"built {args.keysets} keysets / {args.entries:,} entries in "
              f"{time.perf_counter() - t:.1f} s")
        baseline = asyncio.run(first_paint(Minimal(), None))
        painted, loaded = asyncio.run(dashboard_times(ws_root))
        print(f"first paint: minimal app {baseline:.3f} s, dashboard {painted:.3f} s "
              f"-> ratio {painted / baseline:.2f}x (goal <= 1.3x)")
        print(f"dashboard with every keyset loaded: {loaded:.3f} s")
        t = time.perf_counter()
        big = build_workspace(Path(tmp) / "big", 1, args.big)
        print(f"built {args.big:,} entries in {time.perf_counter() - t:.1f} s")
        before, peak, pages = asyncio.run(scroll_memory(big))
        print(f"scrolling {args.big:,} entries: RSS {before:.0f} MB before, peak {peak:.0f} MB "
              f"({pages} pages loaded; goal <= 200 MB)")


if __name__ == "__main__":
    main()

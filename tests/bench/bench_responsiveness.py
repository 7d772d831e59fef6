"""Benchmark: how late the TUI's 20 ms timer fires while an RSA-4096 key generation runs on a
worker (run by hand: `python -m tests.bench.bench_responsiveness`).

This was a timed assertion in tests/tui/test_ceremony_flow.py; the test now checks only that
keys were handled and the timer fired while the HSM worked, and the lateness is measured here.
The Pilot run (tests/tui/pilot_ceremony.py, part 1 only) happens in a subprocess on a fresh demo
workspace: the demo token has its own SOFTHSM2_CONF.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench import Result, print_table

GAP_GOAL_S = 0.5


def run() -> list[Result]:
    """The worst gap between two ticks of the UI thread's 20 ms timer during RSA-4096 work."""
    from tests.tui.conftest import REPO, make_demo, subprocess_env

    with tempfile.TemporaryDirectory(prefix="bench-responsive-") as tmp:
        root = make_demo(Path(tmp) / "demo")
        out = Path(tmp) / "out.json"
        child = subprocess.run([sys.executable, "-m", "tests.tui.pilot_ceremony", str(root),
                                str(out), "--responsiveness-only"], capture_output=True,
                               text=True, timeout=600, env=subprocess_env(), cwd=REPO,
                               check=False)
        if child.returncode != 0:
            raise RuntimeError(f"pilot failed:\n{child.stderr[-3000:]}")
        r = json.loads(out.read_text())["responsiveness"]
    gap = float(r["worst_timer_gap"])
    print(f"RSA-4096 generation on a worker for {r['generation_seconds']:.1f} s "
          f"({len(r['rsa_bits'])} keys): {r['ticks']} ticks of the 20 ms timer, worst gap "
          f"{gap * 1000:.0f} ms (goal < {GAP_GOAL_S * 1000:.0f} ms); keys handled meanwhile: "
          f"{[h['key'] for h in r['handled'] if h['worker_running']]}")
    return [Result.below("UI timer's worst gap during RSA-4096 generation", gap * 1000,
                         GAP_GOAL_S * 1000, " ms", digits=0)]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None
                            ).parse_args(argv)
    print_table("bench_responsiveness", run())
    return 0


if __name__ == "__main__":
    sys.exit(main())

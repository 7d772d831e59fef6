"""Ledger benchmark (run by hand: `python -m tests.bench.bench_ledger [--appends N] [--pack N]`).

Reports append throughput (batched transactions) and the audit-pack verify time as a ratio to
`sha256sum` over the same entries.jsonl, measured in the same run (goal: <= 5x).
Not collected by pytest (tests/bench is in norecursedirs).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from console.ledger import Ledger, export_audit_pack, verify_audit_pack
from tests.unit.test_ledger_support import T0, checkpoint_now, new_ledger

Row = tuple[str, dict[str, object], datetime, str, str | None]


def batches(total: int, size: int, offset: int, base: datetime) -> list[list[Row]]:
    out: list[list[Row]] = []
    for start in range(0, total, size):
        out.append(
            [
                (
                    "key.state_changed",
                    {
                        "keyset": "api-prod",
                        "kid": f"kid-{offset + i:08d}",
                        "from": "published",
                        "to": "active",
                        "reason": "scheduled rotation",
                    },
                    base + timedelta(seconds=(offset + i) // 100),
                    "console",
                    "bench",
                )
                for i in range(start, min(start + size, total))
            ]
        )
    return out


def fill_to(ledger: Ledger, total: int, batch: int, base: datetime) -> float:
    start = time.perf_counter()
    done = ledger.size
    for chunk in batches(total - done, batch, done, base):
        ledger.append_many(chunk)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=100_000)
    parser.add_argument("--pack", type=int, default=1_000_000, help="entries in the pack")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        folder = Path(tmp)
        ledger = new_ledger(folder)
        n = args.appends
        elapsed = fill_to(ledger, n, args.batch, T0)
        print(
            f"append: {n} entries in {elapsed:.2f} s = {n / elapsed:,.0f} entries/s "
            f"(batches of {args.batch})"
        )
        start = time.perf_counter()
        for i in range(1000):
            ledger.append("note", {"i": i}, time=T0 + timedelta(days=30), actor="console")
        single = time.perf_counter() - start
        print(f"append: 1000 single-entry transactions = {1000 / single:,.0f} entries/s")
        fill_to(ledger, args.pack, 10_000, T0 + timedelta(days=60))
        checkpoint_now(ledger, minutes=60 * 24 * 200)
        start = time.perf_counter()
        pack = export_audit_pack(ledger, folder / "pack")
        print(f"export: {args.pack} entries in {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        ledger.verify_tree()
        print(f"verify_tree: {time.perf_counter() - start:.2f} s")
        ledger.close()
        start = time.perf_counter()
        subprocess.run(
            ["sha256sum", str(pack / "entries.jsonl")], check=True, stdout=subprocess.DEVNULL
        )
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        report = verify_audit_pack(pack)
        verify = time.perf_counter() - start
        size_mb = (pack / "entries.jsonl").stat().st_size / 1e6
        print(f"sha256sum entries.jsonl ({size_mb:.0f} MB): {baseline:.2f} s")
        print(
            f"verify_audit_pack ({report.size} entries): {verify:.2f} s = "
            f"{verify / baseline:.1f}x sha256sum (goal <= 5x)"
        )


if __name__ == "__main__":
    main()

"""`make bench`: run every benchmark in this folder, one after the other.

Each benchmark is a module `bench_*.py` runnable on its own (`python -m tests.bench.bench_hsm`)
that reports ratios against a baseline measured in the same run; none is a timed test.
"""

from __future__ import annotations

import pkgutil
import runpy
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    wanted = sys.argv[1:] or names
    for name in wanted:
        print(f"=== {name} ===", flush=True)
        runpy.run_module(f"tests.bench.{name}", run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())

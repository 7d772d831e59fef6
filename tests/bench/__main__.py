"""`make bench`: run every benchmark in this folder (or those named), then print one table
of every result and the issue's table (tests/bench/issue.py: measure, as filed, now, goal, met).

`python -m tests.bench [bench_hsm bench_tui ...]` runs each benchmark's `run()` with its default
options, each in a fresh interpreter: SoftHSM2 reads its configuration once per process, and
memory and loaded modules left by one benchmark must not count in the next. A benchmark's
details stream as it runs; its results come back through a JSON file. The exit status is 1 when
a benchmark failed to run; a goal not met is reported in the table, not as a failure (the
numbers depend on the machine's load).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench import Result, format_table
from tests.bench.issue import issue_table


def bench_names() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def run_isolated(name: str) -> list[Result] | None:
    """Run one benchmark in a child interpreter; None when it failed (its error is above)."""
    with tempfile.TemporaryDirectory(prefix="bench-results-") as tmp:
        out = Path(tmp) / "results.json"
        # Unbuffered, so that a benchmark's details stream as it runs, in a log file too.
        child = subprocess.run([sys.executable, "-m", "tests.bench", "--child", name, str(out)],
                               env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
        if child.returncode != 0:
            return None
        return [Result(**row) for row in json.loads(out.read_text())]


def _child(name: str, out: Path) -> None:
    module = importlib.import_module(f"tests.bench.{name}")
    results: list[Result] = module.run()
    out.write_text(json.dumps([dataclasses.asdict(r) for r in results]))


def main(argv: list[str] | None = None) -> int:
    names = bench_names()
    parser = argparse.ArgumentParser(prog="python -m tests.bench",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("benchmarks", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(names)})")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "RESULTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return 0
    unknown = [n for n in args.benchmarks if n not in names]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(names)})")
    rows: list[tuple[str, Result]] = []
    failed = False
    for name in args.benchmarks or names:
        print(f"=== {name} ===", flush=True)
        results = run_isolated(name)
        if results is None:
            failed = True
            results = [Result("the benchmark", "failed (see above)", None, "runs", False)]
        rows += [(name, result) for result in results]
    print(f"\n{format_table(rows)}")
    print(f"\n{issue_table(rows)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

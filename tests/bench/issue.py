"""The issue's table ("Speed", issue 16) that `make bench` ends with: each of its measures as
filed, as measured now, its goal and whether it is met.

Each row picks its figure from the results of the benchmarks (by benchmark and the start of
the measure's name; several results give the worst). A measure nothing reported is "not run".
The fault campaigns' figures come from the JSON lines `tests/reliability` writes when
CEREMONY_FAULT_FIGURES=FILE is set (`make test` or `make soak` with it): that row is read, not
run, because the campaigns take minutes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.bench import Result

__all__ = ["ISSUE_ROWS", "fault_figures", "issue_table"]


@dataclass(frozen=True, slots=True)
class IssueRow:
    measure: str
    filed: str  # the figure when the issue was filed
    bench: str
    prefix: str  # the start of the benchmark's measure name


ISSUE_ROWS = (
    IssueRow("HSM layer vs bare python-pkcs11 (1,000 signs; local and p11-kit; worst)", "1.05x",
             "bench_hsm", "signing / bare python-pkcs11"),
    IssueRow("Quarterly rotation of 1 ES256 keyset vs bare python-pkcs11", "4.43x",
             "bench_ceremony", "rotation of 1 keyset / bare"),
    IssueRow("Rotation over 200 keysets: time per keyset beyond the HSM's", "35.0 ms",
             "bench_ceremony", "rotation of 200 keysets, per keyset"),
    IssueRow("Verify a 1,000,000-entry audit pack vs sha256sum of entries.jsonl", "5.4x",
             "bench_ledger", "verify_audit_pack"),
    IssueRow("Ledger screen's verify tree (1,000,000 entries) vs the pack verification",
             "30.2 s", "bench_ledger", "verify tree ("),
    IssueRow("Launch to the dashboard's keyset rows, from process start, vs minimal app",
             "2.92x", "bench_tui", "launch to keyset rows (demo)"),
    IssueRow("Dashboard painted: 200 keysets / 100,000 entries vs the demo workspace", "1.24x",
             "bench_tui", "first paint: big workspace / demo"),
    IssueRow("Opening a 1,000,000-entry workspace (the trust checks at every open)", "-",
             "bench_tui", "open 1,000,000"),
    IssueRow("Worst UI timer gap during RSA-4096 generation (was a timed test)", "< 500 ms",
             "bench_responsiveness", "UI timer"),
)


def _pick(row: IssueRow, results: Sequence[tuple[str, Result]]) -> list[Result]:
    return [r for bench, r in results if bench == row.bench and r.measure.startswith(row.prefix)]


def fault_figures(path: Path | None) -> tuple[str, str, bool | None]:
    """(value, goal, met) of the fault campaigns from a CEREMONY_FAULT_FIGURES file."""
    goal = "0 lost, twice, torn, hangs"
    if path is None or not path.is_file():
        return ("not run (make test with CEREMONY_FAULT_FIGURES=FILE, then make bench with it)",
                goal, None)
    total: Counter[str] = Counter()
    campaigns = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        campaigns += 1
        for key, value in json.loads(line).items():
            if isinstance(value, int | float) and key != "seconds":
                total[key] += int(value)
    bad = sum(total[k] for k in ("commits lost", "keys twice", "torn exports", "hangs"))
    value = (f"{campaigns} campaigns, {total['faults injected'] + total['kills']} faults/kills, "
             f"{total['commits lost']} lost, {total['keys twice']} twice, "
             f"{total['torn exports']} torn, {total['hangs']} hangs")
    return value, goal, bad == 0


def issue_table(results: Sequence[tuple[str, Result]]) -> str:
    header = ("measure (issue 16)", "filed", "now", "goal", "met")
    cells: list[tuple[str, ...]] = [header]
    for row in ISSUE_ROWS:
        found = _pick(row, results)
        if not found:
            cells.append((row.measure, row.filed, "not run", "-", "-"))
            continue
        scored = [r for r in found if r.number is not None]
        worst = max(scored, key=lambda r: (r.met is False, r.number or 0.0)) if scored \
            else found[0]
        met = None if any(r.met is None for r in found if r.goal != "-") else \
            all(r.met for r in found if r.met is not None) if any(
                r.met is not None for r in found) else None
        cells.append((row.measure, row.filed, worst.value, worst.goal,
                      "-" if met is None else "yes" if met else "NO"))
    target = os.environ.get("CEREMONY_FAULT_FIGURES")
    value, goal, met = fault_figures(Path(target) if target else None)
    cells.append(("Fault campaigns (tests/reliability figures)", "0 lost", value, goal,
                  "-" if met is None else "yes" if met else "NO"))
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    marks = [c[4] for c in cells[1:] if c[4] in ("yes", "NO")]
    lines.append(f"{marks.count('yes')} of {len(marks)} of the issue's goals met")
    return "\n".join(lines)

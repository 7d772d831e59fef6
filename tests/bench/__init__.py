"""Benchmarks (`make bench`), and the one result type they all report.

Each benchmark is a module `bench_*.py` in this folder with a `run(**options) -> list[Result]`
(its defaults give the standard measurement) and a `main(argv)` that parses those options, calls
`run` and ends with `print_table`. It may print details while it runs; what counts is the list
it returns. `python -m tests.bench` runs every such module and ends with one table. Adding a
measure is returning one more `Result`; adding a benchmark is adding a module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Result", "format_table", "print_table"]


@dataclass(frozen=True, slots=True)
class Result:
    """One measure of a benchmark and, when it has one, its goal.

    `value` is the result as shown (e.g. "1.04x", "12.3 ms"), `number` the figure compared with
    the goal (a ratio or a number; None when nothing was measured), `met` None when the measure
    has no goal and is reported for context.
    """

    measure: str
    value: str
    number: float | None
    goal: str
    met: bool | None

    @classmethod
    def at_most(cls, measure: str, number: float, goal: float, unit: str = "x", *,
                digits: int = 2) -> Result:
        """`number` must not exceed `goal` (`unit` is appended to both, e.g. "x" or " ms")."""
        return cls(measure, f"{number:.{digits}f}{unit}", number, f"<= {goal:g}{unit}",
                   number <= goal)

    @classmethod
    def below(cls, measure: str, number: float, goal: float, unit: str = "x", *,
              digits: int = 2) -> Result:
        """`number` must stay strictly under `goal`."""
        return cls(measure, f"{number:.{digits}f}{unit}", number, f"< {goal:g}{unit}",
                   number < goal)

    @classmethod
    def info(cls, measure: str, value: str, number: float | None = None) -> Result:
        """A figure reported for context, with no goal."""
        return cls(measure, value, number, "-", None)


def format_table(rows: Sequence[tuple[str, Result]]) -> str:
    """The rows (benchmark name, result) as one text table, then how many goals were met."""
    header = ("benchmark", "measure", "result", "goal", "met")
    cells = [header] + [
        (bench, r.measure, r.value, r.goal, "-" if r.met is None else "yes" if r.met else "NO")
        for bench, r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    goals = [r.met for _, r in rows if r.met is not None]
    lines.append(f"{sum(goals)} of {len(goals)} goals met")
    return "\n".join(lines)


def print_table(bench: str, results: Sequence[Result]) -> None:
    """What a benchmark's own `main` ends with."""
    print(f"\n{format_table([(bench, r) for r in results])}")

"""`make bench`: every benchmark module can be run by the runner, and the runner ends with one
table. The benchmarks themselves take minutes and are run by hand; these tests replace them."""

from __future__ import annotations

import importlib
import inspect
import json
import types
from pathlib import Path

import pytest

from tests.bench import Result, format_table
from tests.bench import __main__ as runner


def test_results_compare_with_their_goal() -> None:
    assert Result.at_most("r", 1.1, 1.1) == Result("r", "1.10x", 1.1, "<= 1.1x", True)
    assert Result.at_most("m", 201.4, 200, " MB", digits=0).met is False
    assert Result.below("t", 20.0, 20, " ms", digits=1) == Result("t", "20.0 ms", 20.0,
                                                                  "< 20 ms", False)
    assert Result.info("i", "12 entries/s").met is None


def test_table_has_one_row_per_result_and_counts_goals() -> None:
    table = format_table([("bench_a", Result.at_most("ratio", 0.5, 1)),
                          ("bench_b", Result.below("time", 30, 20, " ms")),
                          ("bench_b", Result.info("throughput", "9 /s"))])
    lines = table.splitlines()
    assert lines[0].split() == ["benchmark", "measure", "result", "goal", "met"]
    assert lines[2].split() == ["bench_a", "ratio", "0.50x", "<=", "1x", "yes"]
    assert lines[3].split()[-1] == "NO" and lines[4].split()[-1] == "-"
    assert lines[-1] == "1 of 2 goals met"


@pytest.mark.parametrize("name", runner.bench_names())
def test_every_benchmark_runs_with_default_options(name: str) -> None:
    module = importlib.import_module(f"tests.bench.{name}")
    signature = inspect.signature(module.run)
    assert all(p.default is not p.empty for p in signature.parameters.values())
    assert signature.return_annotation == "list[Result]"
    assert callable(module.main)


def test_runner_runs_all_or_the_named_ones_and_ends_with_the_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[str] = []

    def fake(name: str) -> list[Result] | None:
        ran.append(name)
        return None if name == "bench_hsm" else [Result.at_most(f"{name} ratio", 1.0, 2.0)]

    monkeypatch.setattr(runner, "run_isolated", fake)
    assert runner.main([]) == 1  # one benchmark failed to run
    assert ran == runner.bench_names()
    out = capsys.readouterr().out
    assert f"\n{len(ran) - 1} of {len(ran)} goals met\n" in out
    assert "failed (see above)" in out
    assert out.rstrip().endswith("of the issue's goals met")  # the issue's table comes last

    ran.clear()
    assert runner.main(["bench_ledger"]) == 0
    assert ran == ["bench_ledger"]
    with pytest.raises(SystemExit) as refused:
        runner.main(["bench_nope"])
    assert refused.value.code == 2


def test_child_hands_results_back_through_a_file(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    results = [Result.at_most("ratio", 1.5, 2), Result.info("rate", "3 /s", 3.0)]
    fake = types.SimpleNamespace(run=lambda: results)
    monkeypatch.setattr(runner.importlib, "import_module", lambda name: fake)
    out = tmp_path / "results.json"
    runner._child("bench_fake", out)
    assert [Result(**row) for row in json.loads(out.read_text())] == results


def test_a_benchmark_that_cannot_run_is_reported_not_raised() -> None:
    assert runner.run_isolated("bench_that_does_not_exist") is None


def test_issue_table_takes_the_worst_figure_of_each_measure(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from tests.bench.issue import ISSUE_ROWS, issue_table

    figures = tmp_path / "figures.jsonl"
    figures.write_text(json.dumps({"campaign": "kills", "kills": 5, "commits lost": 0}) + "\n")
    monkeypatch.setenv("CEREMONY_FAULT_FIGURES", str(figures))
    rows = [("bench_hsm", Result.at_most("signing / bare python-pkcs11, local ES256", 1.02, 1.1)),
            ("bench_hsm", Result.at_most("signing / bare python-pkcs11, p11-kit ES256", 1.2, 1.1)),
            ("bench_ledger", Result.at_most("verify_audit_pack (9 entries) / sha256sum", 2, 3))]
    lines = issue_table(rows).splitlines()
    assert len(lines) == 2 + len(ISSUE_ROWS) + 1 + 1  # header, rule, rows, faults, count
    hsm = next(line for line in lines if line.startswith("HSM layer"))
    assert "1.20x" in hsm and hsm.endswith("NO")
    assert next(line for line in lines if line.startswith("Verify a")).endswith("yes")
    assert "not run" in next(line for line in lines if line.startswith("Launch"))
    assert "1 campaigns, 5 faults/kills, 0 lost" in lines[-2] and lines[-2].endswith("yes")
    assert lines[-1] == "2 of 3 of the issue's goals met"

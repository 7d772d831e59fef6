"""The command-line contract: exit codes, one-line errors, no tracebacks (DESIGN.md §10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from console import __version__
from console.cli import ExitCode, exit_code_for, main
from console.errors import ConfigError, UsageError


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ceremony {__version__}"


def test_help_lists_the_contract_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "init", "status", "plan", "approve", "execute", "run", "resume",
                    "reconcile", "export", "audit", "verify", "officer", "doctor"):
        assert command in out


@pytest.mark.parametrize(
    "argv",
    [["no-such-command"], ["plan"], ["status", "--bogus"], ["verify", "bundle", "x.jwt"]],
)
def test_usage_errors_exit_2_with_one_line(argv: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("ceremony: error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["status"], ["reconcile"], ["officer", "list"],
                                  ["audit", "export"], ["plan", "genesis"]])
def test_no_workspace_says_so_and_suggests_demo_or_init(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--workspace", str(tmp_path)]) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert "no workspace" in err and "ceremony demo" in err and "ceremony init" in err
    assert err.count("\n") == 1


def test_exit_code_mapping_is_in_one_place() -> None:
    assert exit_code_for(UsageError("x")) is ExitCode.USAGE
    assert exit_code_for(ConfigError("x")) is ExitCode.FAILED
    assert exit_code_for(KeyboardInterrupt()) is ExitCode.INTERRUPTED

"""The fault campaigns' figures at the end of the test output, even when pytest captures it."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.reliability.fault_kit import REPORTED

    if REPORTED:
        terminalreporter.write_sep("-", "fault campaign figures")
        for line in REPORTED:
            terminalreporter.write_line(line)

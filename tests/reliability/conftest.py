"""The fault campaigns' figures travel back with each test's report (a user property), so that
tests/conftest.py prints them at the end even when the tests ran on xdist workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

FIGURES = "fault campaign figures"  # the key tests/conftest.py looks for


@pytest.fixture(autouse=True)
def _figures_in_the_report(request: pytest.FixtureRequest) -> Iterator[None]:
    from tests.reliability.fault_kit import REPORTED

    before = len(REPORTED)
    yield
    for line in REPORTED[before:]:
        request.node.user_properties.append((FIGURES, line))


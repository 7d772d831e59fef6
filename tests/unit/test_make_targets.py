"""The Makefile's set-up and test targets: what the README tells a developer (and CI) to run.

`make` runs here with `-o setup`, so that no test reinstalls the package or calls apt-get; the
probe of `system-packages` runs with a PATH on which neither apt-get nor sudo exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _make(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    assert MAKE is not None
    env = {**os.environ, "PATH": path} if path is not None else dict(os.environ)
    return subprocess.run([MAKE, "--no-print-directory", "-C", str(REPO), *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_system_packages_names_exactly_what_is_missing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ls", "tr", "sh"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")  # not root, and no sudo on this PATH
    (bin_dir / "id").chmod(0o755)
    present = tmp_path / "present.so"
    present.touch()
    packages = (
        f"cmd-present=ls file-present=/nonexistent/*.so,{tmp_path}/pre*.so "
        "cmd-absent=no-such-tool file-absent=/nonexistent/tool"
    )
    out = _make("system-packages", f"SYSTEM_PACKAGES={packages}", path=str(bin_dir))
    assert out.returncode != 0
    (line,) = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: missing system packages: cmd-absent file-absent — ")
    assert "present" not in line


def test_make_test_fails_when_pytest_collects_nothing() -> None:
    bin_dir = str(Path(sys.executable).parent)
    out = _make("-o", "setup", "test", f"BIN={bin_dir}",
                "PYTEST_ARGS=tests/unit/test_packaging.py -k no_test_has_this_name")
    assert out.returncode != 0
    assert "error: pytest collected no tests" in out.stderr


def test_make_test_reports_the_slowest_tests() -> None:
    bin_dir = str(Path(sys.executable).parent)
    out = _make("-o", "setup", "test", f"BIN={bin_dir}", "PYTEST_ARGS=tests/unit/test_packaging.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "slowest 15 durations" in out.stdout

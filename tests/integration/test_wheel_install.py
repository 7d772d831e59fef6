"""The console works as an installed wheel, not only from a checkout.

The package is built into a wheel from a copy of the files a release ships (pyproject.toml,
README.md, console/, ceremonies/), so that the build cannot write into the checkout. The wheel is
installed with its dependencies from the package index (pip's cache makes this take seconds on a
developer machine) into a fresh venv without system site-packages, and `ceremony demo` runs from
an unrelated folder: the shipped ceremony scripts must come from the installed package data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.hsm,
    pytest.mark.skipif(shutil.which("softhsm2-util") is None, reason="SoftHSM2 missing"),
]

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.name for p in (REPO / "ceremonies").glob("*.toml"))
# What would point the installed console back at this checkout or at a test's token.
_LEAKY_ENV = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CEREMONY_WORKSPACE", "SOFTHSM2_CONF",
              "P11_KIT_SERVER_ADDRESS")


def _run(cmd: list[str | Path], *, cwd: Path, env: dict[str, str],
         timeout: float) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out


def test_wheel_runs_the_demo_from_an_unrelated_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("console", "ceremonies"):
        shutil.copytree(REPO / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", dist,
          source], cwd=tmp_path, env=env, timeout=120)
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"console/shipped_ceremonies/{n}" for n in SHIPPED} <= names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env, timeout=120)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], cwd=tmp_path,
         env=env, timeout=300)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # pyrage: a declared dependency no module imports yet; its wheel must install here too.
    where = _run([venv / "bin" / "python", "-c",
                  "import pyrage\nfrom console.ceremony.script import SHIPPED_DIR\n"
                  "print(SHIPPED_DIR)"], cwd=elsewhere, env=env, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(venv)

    demo = tmp_path / "demo"
    _run([venv / "bin" / "ceremony", "demo", "--headless", "--workspace", demo], cwd=elsewhere,
         env=env, timeout=120)
    assert (demo / "ledger.sqlite").is_file()
    assert list((demo / "exports").glob("demo-api/*/jwks.json"))

"""What pyproject.toml ships: every package under console/, and the ceremony scripts as data.

The package list is explicit (a package mapped from another folder, `console.shipped_ceremonies`
from ceremonies/, rules out `packages.find`), so a new package under console/ must be added to
it; this test says so before a wheel is found to lack it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from console.ceremony.script import SHIPPED_DIR, load_script, shipped_scripts

REPO = Path(__file__).resolve().parents[2]


def _setuptools() -> dict[str, Any]:
    section: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]
    return section


def test_every_package_under_console_is_listed() -> None:
    on_disk = {
        ".".join(folder.relative_to(REPO).parts)
        for folder in [REPO / "console", *(REPO / "console").rglob("*")]
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py"))
    }
    assert set(_setuptools()["packages"]) == on_disk | {"console.shipped_ceremonies"}


def test_the_ceremonies_folder_is_the_shipped_package() -> None:
    config = _setuptools()
    assert config["package-dir"] == {"console.shipped_ceremonies": "ceremonies"}
    assert config["package-data"]["console.shipped_ceremonies"] == ["*.toml"]


def test_shipped_scripts_are_read_through_the_package() -> None:
    # In a checkout (editable install) the package data is the repository's folder itself.
    assert SHIPPED_DIR.samefile(REPO / "ceremonies")
    assert shipped_scripts() == sorted(p.stem for p in (REPO / "ceremonies").glob("*.toml"))
    for name in shipped_scripts():
        assert Path(load_script(name).path).parent == SHIPPED_DIR

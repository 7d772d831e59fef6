"""The domain core imports no UI code, and the offline verifier imports no HSM code.

Each check runs in a fresh interpreter so that modules imported by other tests cannot hide an
import; the assertion is on `sys.modules` after importing exactly one module.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import console.exports

PACKAGE = Path(__file__).resolve().parents[2] / "console"
CORE = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py")
    if "tui" not in path.relative_to(PACKAGE).parts and path.name != "__main__.py"
)
"""Every module of the console but the TUI's: the domain core and the CLI face."""
UI_MODULES = {"textual", "rich"}
HSM_MODULES = {"pkcs11", "console.hsm"}


def _imported_after(module: str) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_ui(module: str) -> None:
    loaded = _imported_after(module)
    assert not {m.split(".")[0] for m in loaded} & UI_MODULES, f"{module} pulls in UI code"


def test_verifier_imports_no_hsm_code() -> None:
    loaded = _imported_after("console.verify")
    assert not {m for m in loaded if m in HSM_MODULES or m.startswith("console.hsm.")}


def test_verifier_loads_no_qr_encoder_nor_target_writers() -> None:
    """The auditor's path: `console.exports` re-exports lazily, so the verifier's import of
    `console.exports.verify_bundle` does not drag in `qrcode` or the gateway file writers."""
    loaded = _imported_after("console.verify")
    assert not {m.split(".")[0] for m in loaded} & {"qrcode", "textual", "pkcs11"}
    assert not {m for m in loaded if m.startswith("console.exports.targets")}


def test_exports_lazy_names_are_the_public_names() -> None:
    """Each public name of `console.exports` is its home module's object, whether it was
    imported eagerly (the verifier) or on first use; and `verify_bundle` stays the function."""
    verifier = importlib.import_module("console.exports.verify_bundle")
    for name in console.exports.__all__:
        home = console.exports._MODULE_OF.get(name)
        module = verifier if home is None else importlib.import_module(home)
        assert getattr(console.exports, name) is getattr(module, name), name
    assert set(console.exports._MODULE_OF) <= set(console.exports.__all__)
    assert console.exports.verify_bundle is verifier.verify_bundle
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = console.exports.nope  # type: ignore[attr-defined]


def test_package_import_is_light() -> None:
    loaded = _imported_after("console")
    heavy = {"textual", "rich", "pkcs11", "cryptography", "jwcrypto", "sqlite_utils"}
    assert not {m.split(".")[0] for m in loaded} & heavy


@pytest.mark.parametrize("module", ["console.jose", "console.b64", "console.consumers"])
def test_vocabulary_modules_import_nothing_heavy(module: str) -> None:
    # The algorithm vocabulary and the codec are read by the verifier, the config loader and
    # the faces: they must not drag in the HSM library, the crypto backend or the UI.
    loaded = _imported_after(module)
    heavy = {"pkcs11", "cryptography", "textual", "rich", "jwcrypto", "qrcode"}
    assert not {m.split(".")[0] for m in loaded} & heavy
    # The consumer table is read by the policy loader: it must not load the target writers.
    assert not {m for m in loaded if m.startswith("console.exports")}


HEAVY_BEFORE_PAINT = {"cryptography", "pkcs11", "jwcrypto", "qrcode", "console.exports"}
"""What the console's first screen does not need: it paints before any of these load (the
workspace opens, the ledger is checked and the data arrives through workers afterwards)."""


def test_the_tui_app_module_imports_nothing_heavy() -> None:
    imported = _imported_after("console.tui.app")
    loaded = {m for m in imported if m in HEAVY_BEFORE_PAINT
              or any(m.startswith(f"{h}.") for h in HEAVY_BEFORE_PAINT)}
    assert loaded == set(), sorted(loaded)
    assert "textual.app" in imported  # the check ran on the real module

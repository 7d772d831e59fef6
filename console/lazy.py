"""Packages that import their public names on first use.

`console.ledger`, `console.quorum` and `console.exports` re-export names from their modules, but
the TUI's first paint and the auditor's verifier must not pay for modules they never touch
(cryptography, qrcode, the gateway renderers). Each package maps a name to its module and gets
its `__getattr__` (PEP 562) from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping


def lazy_getattr(package: str, module_of: Mapping[str, str],
                 namespace: MutableMapping[str, object]) -> Callable[[str], object]:
    """A module `__getattr__` that imports `name` from `module_of[name]` and keeps it in
    `namespace` (the package's globals), so each name is imported once."""

    def __getattr__(name: str) -> object:
        module = module_of.get(name)
        if module is None:
            # Also how `from package import submodule` falls through to the submodule.
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


__all__ = ["lazy_getattr"]

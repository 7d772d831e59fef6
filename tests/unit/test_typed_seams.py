"""The house stays typed and its rooms small (issue 12, items 4 and 5).

Two static checks over the source of `console/`, by AST and line count, so that they hold for
code no test happens to run:

- no function signature (parameters, `*args`, `**kwargs`, return) mentions `Any` in the
  packages listed in `TYPED_PACKAGES`: JSON crosses those seams as `console.jsontypes`
  (`JsonObject`, `JsonMapping`) or as `object` narrowed by a parser, never as `Any`;
- no module is longer than `MAX_MODULE_LINES`, except those in `OVERSIZED_ALLOWLIST`, which is
  only ever shortened: an entry whose module has been split (or is gone) fails the test until
  it is removed.

Extend `TYPED_PACKAGES` as packages are cleaned (next: console/ceremony, console/tui).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONSOLE = REPO / "console"

TYPED_PACKAGES: tuple[str, ...] = (
    "console",  # the top-level modules only; each package is listed on its own
    "console/ceremony",
    "console/ceremony/steps",
    "console/cli",
    "console/cli/commands",
    "console/config",
    "console/exports",
    "console/exports/targets",
    "console/ledger",
    "console/lifecycle",
    "console/quorum",
    "console/tui",
    "console/tui/dialogs",
    "console/tui/screens",
    "console/tui/widgets",
)
"""Folders (relative to the repository) whose own modules have no `Any` in a signature."""

ANY_PENDING: frozenset[str] = frozenset({
    "console/exports/bundle.py",
    "console/exports/writer.py",
})
"""Modules of a typed package still being typed elsewhere (rotation work); shrink only."""

MAX_MODULE_LINES = 500

OVERSIZED_ALLOWLIST: frozenset[str] = frozenset({
})
"""Modules over `MAX_MODULE_LINES` that are being split now; the lead empties this."""

_ANY_IN_TEXT = re.compile(r"\bAny\b")


def _mentions_any(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id == "Any":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Any":
            return True
        # A quoted annotation, e.g. "dict[str, Any]".
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _ANY_IN_TEXT.search(node.value):
            return True
    return False


def any_in_signatures(source: str) -> list[tuple[int, str]]:
    """(line, function name) of every function whose signature mentions `Any`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = node.args
        annotations = [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
        annotations += [args.vararg.annotation if args.vararg else None,
                        args.kwarg.annotation if args.kwarg else None, node.returns]
        if any(_mentions_any(a) for a in annotations):
            found.append((node.lineno, node.name))
    return sorted(found)


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _typed_modules() -> Iterator[Path]:
    for package in TYPED_PACKAGES:
        for path in sorted((REPO / package).glob("*.py")):
            if _relative(path) not in ANY_PENDING:
                yield path


@pytest.mark.parametrize("package", TYPED_PACKAGES)
def test_typed_package_exists(package: str) -> None:
    assert list((REPO / package).glob("*.py")), f"{package} has no modules: update the list"


def test_no_any_in_signatures_of_typed_packages() -> None:
    offenders = [f"{_relative(path)}:{line} {name}"
                 for path in _typed_modules()
                 for line, name in any_in_signatures(path.read_text(encoding="utf-8"))]
    assert not offenders, "Any in a signature (use console.jsontypes, a TypedDict, a Protocol " \
                          "or object narrowed by a parser):\n" + "\n".join(offenders)


def test_pending_modules_are_in_typed_packages_and_still_pending() -> None:
    """The pending set only shrinks: an entry that is clean, or gone, must be removed."""
    for name in ANY_PENDING:
        path = REPO / name
        assert path.is_file(), f"{name} is gone: remove it from ANY_PENDING"
        assert _relative(path.parent) in TYPED_PACKAGES, name
        assert any_in_signatures(path.read_text(encoding="utf-8")), \
            f"{name} has no Any in its signatures any more: remove it from ANY_PENDING"


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_over_the_limit() -> None:
    oversized = sorted(
        f"{_relative(path)} ({_line_count(path)} lines)"
        for path in CONSOLE.rglob("*.py")
        if _line_count(path) > MAX_MODULE_LINES and _relative(path) not in OVERSIZED_ALLOWLIST
    )
    assert not oversized, f"modules over {MAX_MODULE_LINES} lines (split them by concern):\n" \
                          + "\n".join(oversized)


def test_the_oversized_allowlist_only_shrinks() -> None:
    for name in sorted(OVERSIZED_ALLOWLIST):
        path = REPO / name
        assert path.is_file(), f"{name} is gone: remove it from OVERSIZED_ALLOWLIST"
        assert _line_count(path) > MAX_MODULE_LINES, \
            f"{name} is {_line_count(path)} lines now: remove it from OVERSIZED_ALLOWLIST"


@pytest.mark.parametrize(("source", "expected"), [
    ("def f(x: Any) -> None: ...", [(1, "f")]),
    ("def f(*a: Any) -> None: ...", [(1, "f")]),
    ("def f(**k: Any) -> None: ...", [(1, "f")]),
    ("def f() -> dict[str, Any]: ...", [(1, "f")]),
    ("def f(x: typing.Any) -> None: ...", [(1, "f")]),
    ("def f(x: 'Mapping[str, Any]') -> None: ...", [(1, "f")]),
    ("async def f(*, x: list[Any] | None = None) -> None: ...", [(1, "f")]),
    ("class C:\n    def m(self, x: Any) -> None: ...", [(2, "m")]),
    ("def f(x: object) -> dict[str, object]:\n    y: Any = x\n    return {}", []),
    ("def f(x: 'Anything') -> None: ...", []),
])
def test_the_scan_sees_any_wherever_a_signature_hides_it(
        source: str, expected: list[tuple[int, str]]) -> None:
    assert any_in_signatures(source) == expected

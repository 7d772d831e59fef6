"""The house stays typed and its rooms small (issue 12, items 4 and 5).

Two static checks over the source of `console/`, by AST and line count, so that they hold for
code no test happens to run:

- no function signature (parameters, `*args`, `**kwargs`, return) mentions `Any`: JSON crosses
  the seams as `console.jsontypes` (`JsonObject`, `JsonMapping`) or as `object` narrowed by a
  parser, python-pkcs11's handles as its own types, reports as TypedDicts;
- no module is longer than `MAX_MODULE_LINES`: a room that grows past it is split by concern.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONSOLE = REPO / "console"

MAX_MODULE_LINES = 500

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


def _modules() -> list[Path]:
    return sorted(CONSOLE.rglob("*.py"))


def test_the_scan_finds_the_package() -> None:
    assert len(_modules()) > 100, "console/ moved: update CONSOLE"


def test_no_any_in_a_function_signature() -> None:
    offenders = [f"{_relative(path)}:{line} {name}"
                 for path in _modules()
                 for line, name in any_in_signatures(path.read_text(encoding="utf-8"))]
    assert not offenders, "Any in a signature (use console.jsontypes, a TypedDict, a Protocol " \
                          "or object narrowed by a parser):\n" + "\n".join(offenders)


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_over_the_limit() -> None:
    oversized = sorted(
        f"{_relative(path)} ({_line_count(path)} lines)"
        for path in _modules()
        if _line_count(path) > MAX_MODULE_LINES
    )
    assert not oversized, f"modules over {MAX_MODULE_LINES} lines (split them by concern):\n" \
                          + "\n".join(oversized)


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

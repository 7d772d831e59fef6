"""The TUI's house rules (issue 12): rooms under 500 lines, no `Any` in a function signature,
and a launch that imports only what the dashboard's first frame needs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

TUI = Path(__file__).resolve().parents[2] / "console" / "tui"
MAX_LINES = 500


def _modules() -> list[Path]:
    return sorted(TUI.rglob("*.py"))


def _mentions_any(node: ast.expr | None) -> bool:
    if node is None:
        return False
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id == "Any":
            return True
        if isinstance(sub, ast.Attribute) and sub.attr == "Any":
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and "Any" in sub.value:
            return True
    return False


def test_no_tui_module_is_over_500_lines() -> None:
    long = {p.relative_to(TUI).as_posix(): n for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_no_any_in_a_tui_function_signature() -> None:
    found: list[str] = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            args = node.args
            annotations = [a.annotation for a in (*args.posonlyargs, *args.args,
                                                  *args.kwonlyargs)]
            annotations += [args.vararg.annotation if args.vararg else None,
                            args.kwarg.annotation if args.kwarg else None, node.returns]
            if any(_mentions_any(a) for a in annotations):
                found.append(f"{path.relative_to(TUI)}:{node.lineno} {node.name}")
    assert found == []


def test_the_app_loads_the_dashboard_alone() -> None:
    """Launching imports the dashboard; the other screens and every dialog load when shown."""
    code = ("import json, sys\nimport console.tui.app\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('console.tui'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    loaded = set(json.loads(out.stdout))
    assert "console.tui.screens.dashboard" in loaded
    later = {m for m in loaded if m.startswith("console.tui.dialogs.")
             or (m.startswith("console.tui.screens.") and not m.endswith(("dashboard", "_base")))}
    assert later == set()

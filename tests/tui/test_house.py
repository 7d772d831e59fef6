"""The TUI's launch imports only what the dashboard's first frame needs (issue 12; rooms under
500 lines and signatures without `Any` are kept by tests/unit/test_typed_seams.py)."""

from __future__ import annotations

import json
import subprocess
import sys


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

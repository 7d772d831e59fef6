"""`protect_process` turns core dumps and same-user ptrace off, checked from outside our code
(the C library opened by name, in a fresh interpreter: both are one-way for a process), and it
starts no subprocess to find the C library."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import ctypes, resource, subprocess
def refuse(*a, **k):
    raise AssertionError("a subprocess was started")
subprocess.Popen.__init__ = refuse
from console.hardening import is_protected, protect_process
libc = ctypes.CDLL("libc.so.6")
assert libc.prctl(3, 0, 0, 0, 0) == 1 and not is_protected()  # PR_GET_DUMPABLE
protect_process()
assert libc.prctl(3, 0, 0, 0, 0) == 0
assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
assert is_protected()
print("ok")
"""


def test_protect_process_without_a_subprocess() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         check=False, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
